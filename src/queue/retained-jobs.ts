// The completed (or failed) jobs kept for getJob, oldest first: a growable ring of
// (id, finishedAt) pairs in typed arrays. Eviction is FIFO by the order outcomes were appended,
// which is also the order replay sees them, so the same limits give the same set after a reopen.
// Entries are ids, not slots: a job removed by other means leaves a stale id that the owner
// skips when it evicts.

export class RetainedJobs {
  #ids = new Float64Array(64);
  #finishedAt = new Float64Array(64);
  #head = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(id: number, finishedAt: number): void {
    if (this.#size === this.#ids.length) this.#grow();
    const index = (this.#head + this.#size) % this.#ids.length;
    this.#ids[index] = id;
    this.#finishedAt[index] = finishedAt;
    this.#size++;
  }

  /** Id of the oldest entry; undefined when empty. */
  oldestId(): number | undefined {
    return this.#size === 0 ? undefined : this.#ids[this.#head]!;
  }

  /** finishedAt of the oldest entry; Infinity when empty. */
  oldestFinishedAt(): number {
    return this.#size === 0 ? Infinity : this.#finishedAt[this.#head]!;
  }

  shift(): number | undefined {
    if (this.#size === 0) return undefined;
    const id = this.#ids[this.#head]!;
    this.#head = (this.#head + 1) % this.#ids.length;
    this.#size--;
    return id;
  }

  #grow(): void {
    const capacity = this.#ids.length * 2;
    const ids = new Float64Array(capacity);
    const finishedAt = new Float64Array(capacity);
    for (let offset = 0; offset < this.#size; offset++) {
      const from = (this.#head + offset) % this.#ids.length;
      ids[offset] = this.#ids[from]!;
      finishedAt[offset] = this.#finishedAt[from]!;
    }
    this.#ids = ids;
    this.#finishedAt = finishedAt;
    this.#head = 0;
  }
}
