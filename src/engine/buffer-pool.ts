// Large buffers kept for reuse across scans and rewrites. A fresh multi-MiB buffer costs a page
// fault per 4 KiB on first touch, and counts as external memory that pushes V8 into full
// garbage collections; a compaction used to allocate one per MiB it wrote and two per segment
// it read. Promises: take() returns a buffer of at least the asked size that nobody else holds
// until it is given back; the pool holds at most `limit` buffers (others are left to the GC).
export class BufferPool {
  readonly #free: Buffer[] = [];
  readonly #limit: number;

  constructor(limit: number) {
    this.#limit = limit;
  }

  /** A buffer of at least `size` bytes (its contents are whatever was last written to it). */
  take(size: number): Buffer {
    const free = this.#free;
    for (let at = free.length - 1; at >= 0; at--) {
      const buffer = free[at]!;
      if (buffer.length < size) continue;
      free[at] = free[free.length - 1]!;
      free.pop();
      return buffer;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  /** Hands `buffer` back; the caller must not touch it again. */
  give(buffer: Buffer): void {
    if (this.#free.length < this.#limit) this.#free.push(buffer);
  }
}
