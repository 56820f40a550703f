// Group commit: many appends share one write and one fdatasync.
//
//   1. append() encodes nothing yet: it adds the payload to the open batch (the last queued
//      batch that is not yet being written) and returns that batch's shared promise.
//   2. One flush loop runs at a time (single flight). It takes the oldest queued item, builds
//      the batch's bytes, stamps each header's durableLsn with what is synced *now*, and writes.
//   3. If the log is in 'sync' mode or any append of the batch asked for 'sync', one fdatasync
//      follows; then every waiter of the batch resolves at once.
//   4. Appends that arrive while a write or sync is in flight form the next batch. There is no
//      linger timer: an idle log flushes a lone append at once.
//   5. Any failed write or sync poisons the committer: every queued and later append rejects.
// Items are processed strictly in order, so a batch never overtakes a segment roll or barrier
// queued before it, and appends resolve in LSN order.
import { PoisonedError } from '../errors.ts';
import { assert } from './assert.ts';
import type { Durability } from './log-options.ts';
import { encodeRecordHeader, RECORD_HEADER_SIZE, RecordFlag, RecordType } from './record-format.ts';

/** A promise with its settle functions, shared by every waiter of one batch. */
export class Deferred {
  readonly promise: Promise<void>;
  resolve!: () => void;
  reject!: (error: Error) => void;
  constructor() {
    this.promise = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // A batch promise nobody awaited must not crash the process when the log is poisoned;
    // every caller that holds it still sees the rejection.
    this.promise.catch(() => undefined);
  }
}

export interface Batch {
  readonly kind: 'batch';
  readonly firstLsn: number;
  readonly payloads: Uint8Array[];
  readonly payloadCrcs: number[];
  readonly flags: number[];
  /** Bytes this batch adds to its segment (headers + payloads). */
  sizeBytes: number;
  /** Some append of this batch asked for 'sync' durability. */
  forceSync: boolean;
  written: Deferred | undefined;
  durable: Deferred | undefined;
}

/** Seal the active segment and start the next one, whose first LSN is `baseLsn`. */
export interface Roll {
  readonly kind: 'roll';
  readonly baseLsn: number;
  readonly ordinal: number;
}

/** Resolves once everything queued before it is written (and synced when `sync`). */
export interface Barrier {
  readonly kind: 'barrier';
  readonly sync: boolean;
  readonly deferred: Deferred;
}

export type CommitItem = Batch | Roll | Barrier;

/** What the committer drives; implemented by the Log over its active segment. */
export interface CommitTarget {
  /** Writes `bytes` at the end of the active segment; rejects on an error or a short write. */
  write(bytes: Buffer, lastLsn: number): Promise<void>;
  /**
   * Writes synchronously if the active segment's handle can; returns false if it cannot.
   * Throws on an error or a short write.
   */
  writeNow(bytes: Buffer, lastLsn: number): boolean;
  /** fdatasync of the active segment. */
  sync(): Promise<void>;
  /** Seals the active segment (SEAL record + fdatasync) and creates the next one durably. */
  roll(baseLsn: number, ordinal: number, durableLsn: number): Promise<void>;
  /** Called once, with the first I/O failure. */
  poisoned(error: Error): void;
}

export class GroupCommit {
  readonly #target: CommitTarget;
  readonly #mode: Durability;
  readonly #maxBatchBytes: number;
  readonly #items: CommitItem[] = [];
  #head = 0;
  #open: Batch | undefined;
  #running = false;
  #syncWanted = false;
  #poison: Error | undefined;
  /** Highest LSN handed to the OS. */
  writtenLsn: number;
  /** Highest LSN known to be on stable storage. Invariant: durableLsn <= writtenLsn. */
  durableLsn: number;
  syncCount = 0;
  batchCount = 0;

  constructor(target: CommitTarget, mode: Durability, maxBatchBytes: number, lastLsn: number) {
    this.#target = target;
    this.#mode = mode;
    this.#maxBatchBytes = maxBatchBytes;
    this.writtenLsn = lastLsn;
    this.durableLsn = lastLsn;
  }

  get poison(): Error | undefined {
    return this.#poison;
  }

  /** True while anything is queued or being written. */
  get busy(): boolean {
    return this.#running || this.#head < this.#items.length;
  }

  /**
   * Adds records with LSNs `firstLsn…` to the open batch (or a new one) and returns the promise
   * that settles per `durability`. `atomic` records always share one batch.
   */
  add(
    payloads: readonly Uint8Array[],
    payloadCrcs: readonly number[],
    firstLsn: number,
    durability: Durability,
    atomic: boolean,
  ): Promise<void> {
    let sizeBytes = 0;
    for (const payload of payloads) sizeBytes += RECORD_HEADER_SIZE + payload.length;
    let batch = this.#open;
    if (batch === undefined || batch.sizeBytes + sizeBytes > this.#maxBatchBytes) {
      batch = {
        kind: 'batch',
        firstLsn,
        payloads: [],
        payloadCrcs: [],
        flags: [],
        sizeBytes: 0,
        forceSync: false,
        written: undefined,
        durable: undefined,
      };
      this.#push(batch);
      this.#open = batch;
    }
    assert(batch.firstLsn + batch.payloads.length === firstLsn, 'batch LSNs are dense');
    for (let i = 0; i < payloads.length; i++) {
      batch.payloads.push(payloads[i]!);
      batch.payloadCrcs.push(payloadCrcs[i]!);
      batch.flags.push(atomic && i < payloads.length - 1 ? RecordFlag.groupContinues : 0);
    }
    batch.sizeBytes += sizeBytes;
    if (durability === 'sync') {
      batch.forceSync = true;
      return (batch.durable ??= new Deferred()).promise;
    }
    return (batch.written ??= new Deferred()).promise;
  }

  /** Queues a segment roll: records added after it go to the next segment. */
  roll(baseLsn: number, ordinal: number): void {
    this.#open = undefined;
    this.#push({ kind: 'roll', baseLsn, ordinal });
  }

  /** Resolves when everything queued so far is written (`sync`: and synced). */
  barrier(sync: boolean): Promise<void> {
    if (this.#poison) return Promise.reject(new PoisonedError(this.#poison));
    this.#open = undefined;
    const deferred = new Deferred();
    this.#push({ kind: 'barrier', sync, deferred });
    return deferred.promise;
  }

  /** For 'interval' mode: sync what is written, once the loop is free. */
  requestSync(): void {
    if (this.#poison || this.durableLsn === this.writtenLsn) return;
    this.#syncWanted = true;
    this.#kick();
  }

  #push(item: CommitItem): void {
    this.#items.push(item);
    this.#kick();
  }

  #kick(): void {
    if (this.#running || this.#poison) return;
    this.#running = true;
    queueMicrotask(() => void this.#run());
  }

  async #run(): Promise<void> {
    try {
      for (;;) {
        const item = this.#take();
        if (item === undefined) {
          if (!this.#syncWanted) break;
          this.#syncWanted = false;
          if (this.durableLsn < this.writtenLsn) await this.#sync();
          continue;
        }
        if (item.kind === 'batch') await this.#writeBatch(item);
        else if (item.kind === 'roll') {
          await this.#target.roll(item.baseLsn, item.ordinal, this.durableLsn);
          // Sealing synced everything written so far.
          this.durableLsn = this.writtenLsn;
          this.syncCount++;
        } else {
          if (item.sync && this.durableLsn < this.writtenLsn) await this.#sync();
          item.deferred.resolve();
        }
      }
    } catch (error) {
      this.#fail(error instanceof Error ? error : new Error(String(error)));
    } finally {
      this.#running = false;
    }
    // Something may have been queued between the last take() and the end of the loop.
    if (!this.#poison && this.#head < this.#items.length) this.#kick();
  }

  #take(): CommitItem | undefined {
    if (this.#head === this.#items.length) {
      if (this.#head > 0) {
        this.#items.length = 0;
        this.#head = 0;
      }
      return undefined;
    }
    const item = this.#items[this.#head]!;
    this.#head++;
    if (item === this.#open) this.#open = undefined;
    return item;
  }

  async #writeBatch(batch: Batch): Promise<void> {
    const bytes = Buffer.allocUnsafe(batch.sizeBytes);
    let offset = 0;
    // Stamped now, after the previous batch's sync: every batch vouches for all batches before it.
    const durableLsn = this.durableLsn;
    for (let i = 0; i < batch.payloads.length; i++) {
      const payload = batch.payloads[i]!;
      encodeRecordHeader(bytes, offset, RecordType.data, batch.flags[i]!, batch.firstLsn + i, durableLsn, payload.length, batch.payloadCrcs[i]!);
      bytes.set(payload, offset + RECORD_HEADER_SIZE);
      offset += RECORD_HEADER_SIZE + payload.length;
    }
    assert(offset === batch.sizeBytes, 'batch size matches its records');
    const lastLsn = batch.firstLsn + batch.payloads.length - 1;
    const syncNext = this.#mode === 'sync' || batch.forceSync;
    // A batch that is not synced right after is copied into the page cache synchronously: the
    // bytes are in the OS before anyone is told, and no thread-pool round trip is paid. The
    // loop then yields a turn so timers and I/O are not starved by appends resolved in microtasks.
    const wroteNow = !syncNext && this.#target.writeNow(bytes, lastLsn);
    if (!wroteNow) await this.#target.write(bytes, lastLsn);
    this.batchCount++;
    this.writtenLsn = lastLsn;
    batch.written?.resolve();
    if (syncNext) await this.#sync();
    batch.durable?.resolve();
    if (wroteNow) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  async #sync(): Promise<void> {
    const target = this.writtenLsn;
    await this.#target.sync();
    this.syncCount++;
    // Invariant: durableLsn never passes writtenLsn and never moves backwards.
    assert(target >= this.durableLsn, 'durableLsn moves forward');
    this.durableLsn = target;
  }

  /**
   * The file's state is unknown after a failed write or sync: the batch may or may not survive
   * a reopen. Fail everything queued and every later append with the original error; never
   * retry the sync (the kernel may have dropped the dirty pages and would report success).
   */
  #fail(error: Error): void {
    if (this.#poison) return;
    this.#poison = error;
    const rejection = new PoisonedError(error);
    for (let i = 0; i < this.#items.length; i++) {
      const item = this.#items[i]!;
      if (item.kind === 'batch') {
        item.written?.reject(rejection);
        item.durable?.reject(rejection);
      } else if (item.kind === 'barrier') item.deferred.reject(rejection);
    }
    this.#items.length = 0;
    this.#head = 0;
    this.#open = undefined;
    this.#target.poisoned(error);
  }
}
