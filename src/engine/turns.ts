// Turns: long synchronous work (sorting, scanning, listing a million jobs) cut into slices that
// give the event loop a turn once one has run `turnMs`, so appends, timers and I/O callbacks
// are not held up behind it. The work checks `due` (or awaits give()) between steps of its own
// choosing; a slice never ends in the middle of one.
import { setImmediate as nextTurn } from 'node:timers/promises';

export class Turns {
  readonly #turnMs: number;
  #sliceStartedAt = performance.now();

  constructor(turnMs: number) {
    this.#turnMs = turnMs;
  }

  /** True once the current slice has run `turnMs`. */
  get due(): boolean {
    return performance.now() - this.#sliceStartedAt >= this.#turnMs;
  }

  /** Starts a new slice: after a turn, or after the work waited anyway (for I/O, say). */
  restart(): void {
    this.#sliceStartedAt = performance.now();
  }

  /** Gives the event loop a turn if the slice is due. */
  async give(): Promise<void> {
    if (!this.due) return;
    await this.yield();
  }

  /** Gives the event loop a turn now, and starts a new slice. */
  async yield(): Promise<void> {
    await nextTurn();
    this.restart();
  }
}
