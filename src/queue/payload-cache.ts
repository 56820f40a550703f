// Encoded added records of jobs enqueued by this process, kept until the job starts so that
// dispatch need not read them back from the log. Bounded by a byte budget: past it, jobs are
// simply not cached and dispatch reads them from disk. Jobs found at open are never cached.
// Indexed by the job's index slot (an array store, not a hash map: this is on the enqueue hot
// path); an entry leaves when its job starts, before the slot can be reused.

export class PayloadCache {
  readonly #records: (Buffer | undefined)[] = [];
  readonly #budgetBytes: number;
  #sizeBytes = 0;

  constructor(budgetBytes: number) {
    this.#budgetBytes = budgetBytes;
  }

  get sizeBytes(): number {
    return this.#sizeBytes;
  }

  /** Keeps `record` for the job in `slot` if the budget allows; otherwise forgets it. */
  offer(slot: number, record: Buffer): void {
    if (this.#sizeBytes + record.length > this.#budgetBytes) return;
    // Fill up to the slot so the array stays packed instead of turning into a dictionary.
    while (this.#records.length < slot) this.#records.push(undefined);
    this.#records[slot] = record;
    this.#sizeBytes += record.length;
  }

  get(slot: number): Buffer | undefined {
    return this.#records[slot];
  }

  /** Returns and forgets the record of the job in `slot`. */
  take(slot: number): Buffer | undefined {
    const record = this.#records[slot];
    if (record === undefined) return undefined;
    this.#records[slot] = undefined;
    this.#sizeBytes -= record.length;
    return record;
  }
}
