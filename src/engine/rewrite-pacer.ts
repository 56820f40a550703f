// How fast a rewrite (compaction) may write while the log's own appends are being synced.
// A rewrite at full speed fills the disk's queue and the journal, and an append's fdatasync then
// waits behind it (docs/compaction.md: the raw disk's p99 fdatasync grew ~20x beside a writer at
// 800 MB/s, ~3x at 100 MB/s). So while appends have been synced recently, the rewrite is held to
// a byte rate; when nobody syncs, it runs at full speed.
// Promises: delay() never asks to wait when no append was synced within BUSY_WINDOW_MS and none
// is waiting for a sync now; while appends sync, the bytes let through over any span stay within
// rate × span plus one burst.

/** A sync seen this recently (ms) means appends are waiting on the disk. */
export const BUSY_WINDOW_MS = 100;
/** The most a rewrite may write at once after a pause, in seconds of its rate. */
const BURST_SECONDS = 0.02;

export class RewritePacer {
  readonly #bytesPerSecond: number;
  #seenSyncs: number;
  #busyAt = -Infinity;
  /** Bytes the rewrite may still write now (negative: it is ahead of its rate). */
  #allowance = 0;
  #allowanceAt: number;

  constructor(bytesPerSecond: number, syncCount: number, now: number) {
    this.#bytesPerSecond = bytesPerSecond;
    this.#seenSyncs = syncCount;
    this.#allowanceAt = now;
  }

  /**
   * Milliseconds to wait before writing `bytes`, given the log's count of synced appends, whether
   * an append is waiting for a sync right now (a slow fdatasync, which is when appends suffer
   * most, may take longer than the window), and the time now. The caller waits, then writes.
   */
  delay(bytes: number, syncCount: number, now: number, syncAwaited = false): number {
    if (this.#bytesPerSecond === Infinity) return 0;
    if (syncCount !== this.#seenSyncs || syncAwaited) {
      this.#seenSyncs = syncCount;
      this.#busyAt = now;
    }
    if (now - this.#busyAt >= BUSY_WINDOW_MS) {
      this.#allowance = 0;
      this.#allowanceAt = now;
      return 0;
    }
    const rate = this.#bytesPerSecond;
    this.#allowance = Math.min(this.#allowance + ((now - this.#allowanceAt) / 1000) * rate, rate * BURST_SECONDS) - bytes;
    this.#allowanceAt = now;
    if (this.#allowance >= 0) return 0;
    const wait = (-this.#allowance / rate) * 1000;
    // The wait pays the debt: the allowance starts again from zero when it ends.
    this.#allowance = 0;
    this.#allowanceAt = now + wait;
    return wait;
  }
}
