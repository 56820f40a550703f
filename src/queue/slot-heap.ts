// A binary min-heap of slot numbers (small non-negative integers) in a growable Int32Array,
// ordered by a comparison the owner supplies. It holds no per-entry objects: 4 bytes per entry
// plus growth slack, which matters for a backlog of millions of jobs.
import { verify, fail } from '../engine/assert.ts';

export class SlotHeap {
  #slots = new Int32Array(1024);
  #size = 0;
  /** True when slot `a` must come out before slot `b`. Must be a strict, total order. */
  readonly #before: (a: number, b: number) => boolean;

  constructor(before: (a: number, b: number) => boolean) {
    this.#before = before;
  }

  get size(): number {
    return this.#size;
  }

  /** The first slot, or -1 when empty. */
  peek(): number {
    return this.#size === 0 ? -1 : this.#slots[0]!;
  }

  push(slot: number): void {
    if (!(slot >= 0)) fail(`slot ${slot}`);
    if (this.#size === this.#slots.length) this.#grow(this.#size + 1);
    this.#slots[this.#size] = slot;
    this.#siftUp(this.#size);
    this.#size++;
  }

  /** Removes and returns the first slot, or -1 when empty. */
  pop(): number {
    if (this.#size === 0) return -1;
    const top = this.#slots[0]!;
    this.#size--;
    if (this.#size > 0) {
      this.#slots[0] = this.#slots[this.#size]!;
      this.#siftDown(0);
    }
    return top;
  }

  /** Adds slots without ordering them; call heapify() before the next peek/pop/push. */
  pushUnordered(slot: number): void {
    if (this.#size === this.#slots.length) this.#grow(this.#size + 1);
    this.#slots[this.#size++] = slot;
  }

  /** Restores the heap order in O(n) after pushUnordered calls. */
  heapify(): void {
    for (let index = (this.#size >> 1) - 1; index >= 0; index--) this.#siftDown(index);
    verify(() => this.check());
  }

  /** Calls `visit` for every slot, in no particular order. */
  forEach(visit: (slot: number) => void): void {
    for (let index = 0; index < this.#size; index++) visit(this.#slots[index]!);
  }

  /** O(n): every parent comes before its children. */
  check(): void {
    for (let index = 1; index < this.#size; index++) {
      const parent = (index - 1) >> 1;
      if (this.#before(this.#slots[index]!, this.#slots[parent]!)) fail(`heap order broken at ${index}`);
    }
  }

  #grow(minimum: number): void {
    let capacity = this.#slots.length * 2;
    while (capacity < minimum) capacity *= 2;
    const slots = new Int32Array(capacity);
    slots.set(this.#slots.subarray(0, this.#size));
    this.#slots = slots;
  }

  #siftUp(start: number): void {
    const slots = this.#slots;
    const slot = slots[start]!;
    let index = start;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const parentSlot = slots[parent]!;
      if (!this.#before(slot, parentSlot)) break;
      slots[index] = parentSlot;
      index = parent;
    }
    slots[index] = slot;
  }

  #siftDown(start: number): void {
    const slots = this.#slots;
    const size = this.#size;
    const slot = slots[start]!;
    let index = start;
    for (;;) {
      const left = 2 * index + 1;
      if (left >= size) break;
      const right = left + 1;
      let child = left;
      if (right < size && this.#before(slots[right]!, slots[left]!)) child = right;
      const childSlot = slots[child]!;
      if (!this.#before(childSlot, slot)) break;
      slots[index] = childSlot;
      index = child;
    }
    slots[index] = slot;
  }
}
