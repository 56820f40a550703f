// Maps the ids of live jobs to their index slots. Ids are handed out in increasing order and
// mostly finish in roughly that order, so pages of consecutive ids (an Int32Array holding
// slot + 1, 0 for none) replace a hash map: 4 bytes per id, sequential memory, no rehashing.
// A page left with few live ids (say, one job delayed for days among thousands that finished)
// moves them into a small Map and is dropped, which bounds what a scattered survivor costs at
// about PAGE_SIZE * 4 / SPARSE_LIVE bytes instead of a whole page.
import { fail } from '../engine/assert.ts';

const PAGE_SIZE = 1024;
/** A page with this many live ids or fewer moves them to the sparse map (unless it is the newest). */
const SPARSE_LIVE = 16;

interface Page {
  readonly slots: Int32Array;
  live: number;
}

export class IdTable {
  readonly #pages = new Map<number, Page>();
  readonly #sparse = new Map<number, number>();
  /** The page of the highest id seen: never dropped, new ids land there. */
  #newestPageNumber = -1;
  #newestPage: Page | undefined;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** The slot of `id`, or -1. */
  get(id: number): number {
    const pageNumber = Math.floor(id / PAGE_SIZE);
    const page = pageNumber === this.#newestPageNumber ? this.#newestPage : this.#pages.get(pageNumber);
    if (page !== undefined) {
      const stored = page.slots[id - pageNumber * PAGE_SIZE]!;
      if (stored !== 0) return stored - 1;
    }
    return this.#sparse.size === 0 ? -1 : (this.#sparse.get(id) ?? -1);
  }

  /** Adds `id` (which must not be present). */
  set(id: number, slot: number): void {
    if (!(slot >= 0 && slot < 2 ** 31 - 1)) fail(`slot ${slot}`);
    const pageNumber = Math.floor(id / PAGE_SIZE);
    let page = pageNumber === this.#newestPageNumber ? this.#newestPage : this.#pages.get(pageNumber);
    if (page === undefined) {
      page = { slots: new Int32Array(PAGE_SIZE), live: 0 };
      this.#pages.set(pageNumber, page);
    }
    if (pageNumber > this.#newestPageNumber) {
      this.#newestPageNumber = pageNumber;
      this.#newestPage = page;
    }
    const offset = id - pageNumber * PAGE_SIZE;
    if (page.slots[offset] !== 0) fail(`id ${id} is already in the table`);
    page.slots[offset] = slot + 1;
    page.live++;
    this.#size++;
  }

  /** Removes `id`; false when it was not there. */
  delete(id: number): boolean {
    const pageNumber = Math.floor(id / PAGE_SIZE);
    const page = pageNumber === this.#newestPageNumber ? this.#newestPage : this.#pages.get(pageNumber);
    const offset = id - pageNumber * PAGE_SIZE;
    if (page !== undefined && page.slots[offset] !== 0) {
      page.slots[offset] = 0;
      page.live--;
      this.#size--;
      if (page.live <= SPARSE_LIVE && pageNumber !== this.#newestPageNumber) this.#dropPage(pageNumber, page);
      return true;
    }
    if (!this.#sparse.delete(id)) return false;
    this.#size--;
    return true;
  }

  /**
   * An independent copy (pages are copied, not shared): compaction keeps the id→slot map of the
   * moment it cut the log while the live table moves on. O(pages + sparse ids), a memcpy each.
   */
  clone(): IdTable {
    const copy = new IdTable();
    for (const [pageNumber, page] of this.#pages) copy.#pages.set(pageNumber, { slots: page.slots.slice(), live: page.live });
    for (const [id, slot] of this.#sparse) copy.#sparse.set(id, slot);
    copy.#newestPageNumber = this.#newestPageNumber;
    copy.#newestPage = copy.#pages.get(this.#newestPageNumber);
    copy.#size = this.#size;
    return copy;
  }

  /**
   * The slot of every id, in increasing id order: compaction lists live jobs this way, since
   * added records are appended in id order. O(pages × PAGE_SIZE + sparse ids × log).
   */
  slotsInIdOrder(): Int32Array {
    const slots = new Int32Array(this.#size);
    const pageNumbers = [...this.#pages.keys()].sort((a, b) => a - b);
    const sparseIds = [...this.#sparse.keys()].sort((a, b) => a - b);
    let count = 0;
    let sparseAt = 0;
    for (const pageNumber of pageNumbers) {
      const base = pageNumber * PAGE_SIZE;
      const page = this.#pages.get(pageNumber)!.slots;
      for (; sparseAt < sparseIds.length && sparseIds[sparseAt]! < base; sparseAt++) slots[count++] = this.#sparse.get(sparseIds[sparseAt]!)!;
      if (!(sparseAt < sparseIds.length && sparseIds[sparseAt]! < base + PAGE_SIZE)) {
        count = pageSlotsInto(page, slots, count);
        continue;
      }
      // A page dropped and made again (an older id added after its page went sparse): its old ids
      // are in the sparse map, interleaved with the page's.
      for (let offset = 0; offset < PAGE_SIZE; offset++) {
        if (sparseIds[sparseAt] === base + offset) slots[count++] = this.#sparse.get(sparseIds[sparseAt++]!)!;
        else if (page[offset] !== 0) slots[count++] = page[offset]! - 1;
      }
    }
    for (; sparseAt < sparseIds.length; sparseAt++) slots[count++] = this.#sparse.get(sparseIds[sparseAt]!)!;
    if (count !== slots.length) fail(`id table holds ${count} ids, counted ${slots.length}`);
    return slots;
  }

  #dropPage(pageNumber: number, page: Page): void {
    const base = pageNumber * PAGE_SIZE;
    for (let offset = 0; page.live > 0 && offset < PAGE_SIZE; offset++) {
      const stored = page.slots[offset]!;
      if (stored === 0) continue;
      this.#sparse.set(base + offset, stored - 1);
      page.live--;
    }
    this.#pages.delete(pageNumber);
  }
}

/** Appends the slots a page holds (stored as slot + 1, 0 for none) to `into` from `count` on; returns the new count. */
function pageSlotsInto(page: Int32Array, into: Int32Array, count: number): number {
  for (let offset = 0; offset < page.length; offset++) {
    const stored = page[offset]!;
    if (stored !== 0) into[count++] = stored - 1;
  }
  return count;
}
