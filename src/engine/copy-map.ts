// CopyMap: where the records a rewrite copied as they are (RewriteOutput.copyRecords, driven by
// Log.scanAt's `copy` option) went, for the copies a caller did not list in log order (in log
// order, scanAt notes each one's new location as it copies). A copy moves a run of adjacent
// records as one block, so the map holds one entry per run, not per record: a record keeps its
// distance from its run's start.
// Promises: find() returns the new location of every record inside a run that was added, and -1
// for any other location. Runs of one source segment must be added in increasing offset order
// (scanAt adds them in log order), which is what lets find() binary-search them.
import { fail } from './assert.ts';
import { LOCATION_SPAN } from './recovery.ts';

interface SegmentRuns {
  /** Source offsets where runs start, increasing; parallel to `to` and `ends`. */
  readonly starts: number[];
  readonly to: number[];
  readonly ends: number[];
}

export class CopyMap {
  readonly #bySegment = new Map<number, SegmentRuns>();
  #records = 0;
  /** The run the last find() hit: lookups in log order hit it again, or the next one. */
  #lastRuns: SegmentRuns | undefined;
  #lastOrdinal = -1;
  #lastRun = 0;

  /** Records copied, over all runs. */
  get records(): number {
    return this.#records;
  }

  /** `records` records at source locations [from, from + bytes) now start at location `to`. */
  add(from: number, to: number, bytes: number, records: number): void {
    const ordinal = Math.floor(from / LOCATION_SPAN);
    const offset = from - ordinal * LOCATION_SPAN;
    let runs = this.#bySegment.get(ordinal);
    if (runs === undefined) this.#bySegment.set(ordinal, (runs = { starts: [], to: [], ends: [] }));
    const last = runs.ends.length - 1;
    if (last >= 0 && offset < runs.ends[last]!) fail(`copy run at ${from} overlaps or precedes the one before it`);
    runs.starts.push(offset);
    runs.to.push(to);
    runs.ends.push(offset + bytes);
    this.#records += records;
  }

  /** New location of the record that was at `location`; -1 when no run holds it. */
  find(location: number): number {
    const ordinal = Math.floor(location / LOCATION_SPAN);
    const offset = location - ordinal * LOCATION_SPAN;
    let runs = this.#lastRuns;
    if (ordinal !== this.#lastOrdinal || runs === undefined) {
      runs = this.#bySegment.get(ordinal);
      if (runs === undefined) return -1;
      this.#lastRuns = runs;
      this.#lastOrdinal = ordinal;
      this.#lastRun = 0;
    }
    const { starts, ends } = runs;
    let run = this.#lastRun;
    if (!(starts[run]! <= offset && offset < ends[run]!)) {
      run = run + 1 < starts.length && starts[run + 1]! <= offset && offset < ends[run + 1]! ? run + 1 : lastStartAtOrBefore(starts, offset);
      if (run < 0 || offset >= ends[run]!) return -1;
      this.#lastRun = run;
    }
    return runs.to[run]! + (offset - starts[run]!);
  }
}

/** Index of the last entry of increasing `starts` that is ≤ `offset`; -1 when none is. */
function lastStartAtOrBefore(starts: readonly number[], offset: number): number {
  let low = -1;
  let high = starts.length - 1;
  while (low < high) {
    const middle = (low + high + 1) >> 1;
    if (starts[middle]! <= offset) low = middle;
    else high = middle - 1;
  }
  return low;
}
