// IndexCapture: the job index as it was at one moment (a compaction's cut), without copying it.
// Copying every column at the cut held the event loop ~12 ms per 500,000 slots, most of it page
// faults on the fresh arrays; a compaction then reads far more slots than the queue changes
// meanwhile.
//
// How: the capture shares the index's columns. Before the index changes a slot below the
// capture's high-water mark it calls save() with the slot's values (JobIndex.#keep), and marks
// the slot in its `changed` column with this capture's epoch. A getter reads the saved values of
// a marked slot, the shared columns otherwise. Columns the index outgrows stay with the capture
// as they were: the index writes only to its new ones from then on.
//
// Promises: every getter returns what the slot held when the capture was taken, for as long as
// the index keeps it open (JobIndex.endCapture ends it). Under BLERO_VERIFY=1 the index also
// copies the columns at the cut and checks every slot against them when the capture ends.
import type { IdTable } from './id-table.ts';

/** The columns a capture shares with the index (slot-indexed), and the index's `changed` marks. */
export interface CapturedColumns {
  readonly ids: Float64Array;
  readonly states: Uint8Array;
  readonly runAts: Float64Array;
  readonly locations: Float64Array;
  readonly outcomeLocations: Float64Array;
  readonly stalls: Uint16Array;
  readonly attemptsMade: Uint32Array;
  /** 1 where the job's location holds a snapshot record rather than its added record. */
  readonly atSnapshot: Uint8Array;
  /** 1 where compaction must write the job as a snapshot record (see JobIndex.#needsSnapshot). */
  readonly needsSnapshot: Uint8Array;
}

/** Saved values, in columns of the capture's length: zeroed, so only saved slots' pages are touched. */
function emptyColumns(length: number): CapturedColumns {
  return {
    ids: new Float64Array(length),
    states: new Uint8Array(length),
    runAts: new Float64Array(length),
    locations: new Float64Array(length),
    outcomeLocations: new Float64Array(length),
    stalls: new Uint16Array(length),
    attemptsMade: new Uint32Array(length),
    atSnapshot: new Uint8Array(length),
    needsSnapshot: new Uint8Array(length),
  };
}

export class IndexCapture {
  /** Live jobs at the cut. */
  readonly liveJobs: number;
  readonly recordBytes: number;
  readonly leaseBound: number;
  /** Id → slot at the cut (a copy). */
  readonly slots: IdTable;
  /** Slots [0, highWater) were ever used at the cut; a free one has state none. */
  readonly highWater: number;
  /** Marks this capture's saved slots in the index's `changed` column. */
  readonly epoch: number;
  readonly #changed: Uint32Array;
  // The shared columns, one field each: the getters run once per job in compaction's loops.
  readonly #ids: Float64Array;
  readonly #states: Uint8Array;
  readonly #runAts: Float64Array;
  readonly #locations: Float64Array;
  readonly #outcomeLocations: Float64Array;
  readonly #stalls: Uint16Array;
  readonly #attemptsMade: Uint32Array;
  readonly #atSnapshot: Uint8Array;
  readonly #needsSnapshot: Uint8Array;
  #saved: CapturedColumns | undefined;
  #savedSlots = 0;

  constructor(
    counts: { readonly liveJobs: number; readonly recordBytes: number; readonly leaseBound: number },
    slots: IdTable,
    highWater: number,
    epoch: number,
    columns: CapturedColumns,
    changed: Uint32Array,
  ) {
    this.liveJobs = counts.liveJobs;
    this.recordBytes = counts.recordBytes;
    this.leaseBound = counts.leaseBound;
    this.slots = slots;
    this.highWater = highWater;
    this.epoch = epoch;
    this.#changed = changed;
    this.#ids = columns.ids;
    this.#states = columns.states;
    this.#runAts = columns.runAts;
    this.#locations = columns.locations;
    this.#outcomeLocations = columns.outcomeLocations;
    this.#stalls = columns.stalls;
    this.#attemptsMade = columns.attemptsMade;
    this.#atSnapshot = columns.atSnapshot;
    this.#needsSnapshot = columns.needsSnapshot;
  }

  /** Slots the index changed since the capture (their values were saved here first). */
  get savedSlots(): number {
    return this.#savedSlots;
  }

  /** Keeps the values `slot` holds in `live` (the index's columns now) before the index changes them. */
  save(slot: number, live: CapturedColumns): void {
    const saved = (this.#saved ??= emptyColumns(this.highWater));
    saved.ids[slot] = live.ids[slot]!;
    saved.states[slot] = live.states[slot]!;
    saved.runAts[slot] = live.runAts[slot]!;
    saved.locations[slot] = live.locations[slot]!;
    saved.outcomeLocations[slot] = live.outcomeLocations[slot]!;
    saved.stalls[slot] = live.stalls[slot]!;
    saved.attemptsMade[slot] = live.attemptsMade[slot]!;
    saved.atSnapshot[slot] = live.atSnapshot[slot]!;
    saved.needsSnapshot[slot] = live.needsSnapshot[slot]!;
    this.#savedSlots++;
  }

  /** True once the index has changed `slot` since the capture (its values here are saved ones). */
  isSaved(slot: number): boolean {
    return this.#changed[slot] === this.epoch;
  }

  id(slot: number): number {
    return this.#changed[slot] === this.epoch ? this.#saved!.ids[slot]! : this.#ids[slot]!;
  }

  /** StateCode.none: no job in `slot`. */
  state(slot: number): number {
    return this.#changed[slot] === this.epoch ? this.#saved!.states[slot]! : this.#states[slot]!;
  }

  runAt(slot: number): number {
    return this.#changed[slot] === this.epoch ? this.#saved!.runAts[slot]! : this.#runAts[slot]!;
  }

  location(slot: number): number {
    return this.#changed[slot] === this.epoch ? this.#saved!.locations[slot]! : this.#locations[slot]!;
  }

  outcomeLocation(slot: number): number {
    return this.#changed[slot] === this.epoch ? this.#saved!.outcomeLocations[slot]! : this.#outcomeLocations[slot]!;
  }

  stalls(slot: number): number {
    return this.#changed[slot] === this.epoch ? this.#saved!.stalls[slot]! : this.#stalls[slot]!;
  }

  attemptsMade(slot: number): number {
    return this.#changed[slot] === this.epoch ? this.#saved!.attemptsMade[slot]! : this.#attemptsMade[slot]!;
  }

  atSnapshot(slot: number): number {
    return this.#changed[slot] === this.epoch ? this.#saved!.atSnapshot[slot]! : this.#atSnapshot[slot]!;
  }

  needsSnapshot(slot: number): number {
    return this.#changed[slot] === this.epoch ? this.#saved!.needsSnapshot[slot]! : this.#needsSnapshot[slot]!;
  }
}
