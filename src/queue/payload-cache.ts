// Encoded added records of jobs enqueued by this process, kept until the job starts so that
// dispatch need not read them back from the log. Bounded by a byte budget: past it, jobs are
// simply not cached and dispatch reads them from disk. Jobs found at open are never cached.

export class PayloadCache {
  readonly #records = new Map<number, Buffer>();
  readonly #budgetBytes: number;
  #sizeBytes = 0;

  constructor(budgetBytes: number) {
    this.#budgetBytes = budgetBytes;
  }

  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  /** Keeps `record` for job `id` if the budget allows; otherwise forgets it. */
  offer(id: number, record: Buffer): void {
    if (this.#sizeBytes + record.length > this.#budgetBytes) return;
    this.#records.set(id, record);
    this.#sizeBytes += record.length;
  }

  get(id: number): Buffer | undefined {
    return this.#records.get(id);
  }

  /** Returns and forgets the record of job `id`. */
  take(id: number): Buffer | undefined {
    const record = this.#records.get(id);
    if (record === undefined) return undefined;
    this.#records.delete(id);
    this.#sizeBytes -= record.length;
    return record;
  }
}
