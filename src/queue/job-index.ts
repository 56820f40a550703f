// The in-memory index of every live job: its state, its place in the pending or delayed heap,
// where its records are in the log, its idempotency key, and the retained completed/failed
// jobs. It holds no payloads and no per-job objects: each job is a slot in a set of typed-array
// columns (about 52 bytes) plus 4 bytes in the id→slot table, so a backlog of millions of
// replayed jobs stays small (docs/queue.md has the measured figure). It does no I/O; the queue decides what
// to append and then updates the index.
//
// It also keeps, per job, the bytes of its added and last outcome records, and their sum over
// all live jobs: what a snapshot of the queue would hold, which compaction's trigger compares
// with the size of the log without reading anything.
//
// Two modes: while replaying, state changes only set columns (a started record can name a job
// deep inside the heap); finishReplay() then builds both heaps in O(n). After that, every
// change keeps the heaps current and dispatch is O(log n).
import { assert, verify, verifyEnabled, fail } from '../engine/assert.ts';
import { StateCode } from './job-records.ts';
import { IdTable } from './id-table.ts';
import { IndexCapture } from './index-capture.ts';
import type { CapturedColumns } from './index-capture.ts';
import { RetainedJobs } from './retained-jobs.ts';
import { SlotHeap } from './slot-heap.ts';
import type { JobCounts } from './job.ts';

/** How many finished jobs of one kind to keep, and for how long. Infinity means no limit. */
export interface RetentionLimits {
  readonly count: number;
  readonly ageMs: number;
}

export interface Retention {
  readonly completed: RetentionLimits;
  readonly failed: RetentionLimits;
}

/** Sentinel for "no record" in the location columns. */
export const NO_LOCATION = -1;

const NO_SIZES = { addedBytes: 0, outcomeBytes: 0 } as const;

const INITIAL_CAPACITY = 1024;

export class JobIndex {
  // Columns, indexed by slot. A slot is free when its state is StateCode.none.
  #ids = new Float64Array(INITIAL_CAPACITY);
  #priorities = new Int32Array(INITIAL_CAPACITY);
  #runAts = new Float64Array(INITIAL_CAPACITY);
  /** Location of the job's added (or snapshot) record: its name, options and data. */
  #locations = new Float64Array(INITIAL_CAPACITY);
  /** Location of its last completed/failed (or snapshot) record, or NO_LOCATION. */
  #outcomeLocations = new Float64Array(INITIAL_CAPACITY);
  #states = new Uint8Array(INITIAL_CAPACITY);
  #stalls = new Uint16Array(INITIAL_CAPACITY);
  #attemptsMade = new Uint32Array(INITIAL_CAPACITY);
  /** Payload bytes of the job's added record (0 when the caller did not say). */
  #addedBytes = new Uint32Array(INITIAL_CAPACITY);
  /** Payload bytes of its last completed/failed record, 0 when none. */
  #outcomeBytes = new Uint32Array(INITIAL_CAPACITY);
  /**
   * 1 when the job's location holds a snapshot record (restored from one, or relocated to one by
   * compaction), 0 when it holds its added record. A job that needs no snapshot and sits at its
   * added record is copied by compaction as it is, without a look at its bytes.
   */
  #atSnapshot = new Uint8Array(INITIAL_CAPACITY);
  /** 1 when compaction must write the job as a snapshot record (see needsSnapshot). */
  #snapshotFlags = new Uint8Array(INITIAL_CAPACITY);
  /** Invariant: the number of slots whose snapshot flag is set. */
  #snapshotJobs = 0;
  /** Sum of #addedBytes and #outcomeBytes over live jobs. */
  #recordBytes = 0;
  /** Slots ever used; slots at or above it are untouched. */
  #highWater = 0;
  /** The open capture (see capture()): a slot below its high water is saved there before it changes. */
  #capture: IndexCapture | undefined;
  #captureEpoch = 0;
  /** Per slot, the epoch of the capture that saved it last (see IndexCapture). */
  #changed = new Uint32Array(INITIAL_CAPACITY);
  /** The open capture shares the columns in use (they have not been outgrown since). */
  #captureShares = false;
  /** Under BLERO_VERIFY, the columns copied at the open capture's cut, to check it against when it ends. */
  #capturedCopy: CapturedColumns | undefined;
  #freeSlots = new Int32Array(256);
  #freeCount = 0;

  readonly #slotById = new IdTable();
  readonly #idByKey = new Map<string, number>();
  readonly #keyById = new Map<number, string>();
  readonly #pending = new SlotHeap((a, b) => this.#pendingBefore(a, b));
  readonly #delayed = new SlotHeap((a, b) => this.#delayedBefore(a, b));
  readonly #completed = new RetainedJobs();
  readonly #failed = new RetainedJobs();
  readonly #retention: Retention;

  #replaying = true;
  #nextId = 1;
  #leaseBound = 0;
  /** Jobs per state, indexed by StateCode (index 0, free slots, is not kept up to date). */
  readonly #counts = new Float64Array(6);

  constructor(retention: Retention) {
    this.#retention = retention;
  }

  // -------------------------------------------------------------------------------------------
  // Ids and lookups

  /** The id the next enqueue gets: above every id the log has held or leased. */
  get nextId(): number {
    return this.#nextId;
  }

  /** Takes the next id. The caller checks `leaseBound` first (see leaseNeeded). */
  reserveId(): number {
    return this.#nextId++;
  }

  /** Raises nextId above `id` (replay of a record that names a job). */
  noteId(id: number): void {
    if (id >= this.#nextId) this.#nextId = id + 1;
  }

  /**
   * Ids below `bound` may have been handed out: a meta record, durable before any of them was
   * acknowledged, says so. Replay uses the highest bound as nextId, so ids handed out by a
   * process whose records were lost in a power cut are never handed out again.
   */
  noteLease(bound: number): void {
    if (bound > this.#leaseBound) this.#leaseBound = bound;
  }

  /** Exclusive upper bound of the ids that may be handed out without a new lease. */
  get leaseBound(): number {
    return this.#leaseBound;
  }

  get size(): number {
    return this.#slotById.size;
  }

  /** Payload bytes of the added and last outcome records of every live job. */
  get recordBytes(): number {
    return this.#recordBytes;
  }

  /** The slot of a live job, or -1. */
  slotOf(id: number): number {
    return this.#slotById.get(id);
  }

  id(slot: number): number {
    return this.#ids[slot]!;
  }
  state(slot: number): StateCode {
    return this.#states[slot]! as StateCode;
  }
  priority(slot: number): number {
    return this.#priorities[slot]!;
  }
  runAt(slot: number): number {
    return this.#runAts[slot]!;
  }
  location(slot: number): number {
    return this.#locations[slot]!;
  }
  outcomeLocation(slot: number): number {
    return this.#outcomeLocations[slot]!;
  }
  stalls(slot: number): number {
    return this.#stalls[slot]!;
  }
  attemptsMade(slot: number): number {
    return this.#attemptsMade[slot]!;
  }

  /** The id of the live (pending, delayed or active) job holding `key`, if any. */
  idForKey(key: string): number | undefined {
    return this.#idByKey.get(key);
  }

  counts(): JobCounts {
    const counts = this.#counts;
    return {
      pending: counts[StateCode.pending]!,
      delayed: counts[StateCode.delayed]!,
      active: counts[StateCode.active]!,
      completed: counts[StateCode.completed]!,
      failed: counts[StateCode.failed]!,
    };
  }

  /** Pending jobs a processor could take now. */
  get pendingCount(): number {
    return this.#counts[StateCode.pending]!;
  }

  get activeCount(): number {
    return this.#counts[StateCode.active]!;
  }

  // -------------------------------------------------------------------------------------------
  // Changes. Each one is the in-memory side of one record kind; the caller has already checked
  // the transition with assertTransition.

  /** A new job (added record of `addedBytes` payload bytes). Returns its slot. */
  add(id: number, priority: number, runAt: number, location: number, key: string, now: number, addedBytes = 0): number {
    // Replay checks that added ids increase and enqueue takes fresh ids: a duplicate is a bug.
    if (verifyEnabled) assert(this.#slotById.get(id) === -1, `job ${id} added twice`);
    const slot = this.#allocateSlot(id);
    this.#priorities[slot] = priority;
    this.#runAts[slot] = runAt;
    this.#locations[slot] = location;
    this.#atSnapshot[slot] = 0;
    this.#outcomeLocations[slot] = NO_LOCATION;
    this.#stalls[slot] = 0;
    this.#attemptsMade[slot] = 0;
    this.#setRecordBytes(slot, addedBytes, 0);
    if (key !== '') this.#holdKey(id, key);
    this.noteId(id);
    this.#enterWaiting(slot, runAt, now);
    return slot;
  }

  /** A job restored whole from a snapshot record (compaction output). */
  restore(
    id: number,
    state: StateCode,
    fields: { priority: number; runAt: number; attemptsMade: number; stalls: number; key: string; finishedAt: number },
    location: number,
    hasOutcome: boolean,
    now: number,
    sizes: { addedBytes: number; outcomeBytes: number } = NO_SIZES,
  ): number {
    if (this.#slotById.get(id) !== -1) fail(`job ${id} restored twice`);
    assert(state !== StateCode.none, 'a snapshot is of a live job');
    const slot = this.#allocateSlot(id);
    this.#priorities[slot] = fields.priority;
    this.#runAts[slot] = fields.runAt;
    this.#locations[slot] = location;
    this.#atSnapshot[slot] = 1;
    this.#outcomeLocations[slot] = hasOutcome ? location : NO_LOCATION;
    this.#stalls[slot] = fields.stalls;
    this.#attemptsMade[slot] = fields.attemptsMade;
    this.#setRecordBytes(slot, sizes.addedBytes, sizes.outcomeBytes);
    this.noteId(id);
    if (state === StateCode.pending || state === StateCode.delayed) {
      if (fields.key !== '') this.#holdKey(id, fields.key);
      this.#enterWaiting(slot, fields.runAt, now);
    } else if (state === StateCode.active) {
      if (fields.key !== '') this.#holdKey(id, fields.key);
      this.#setState(slot, StateCode.active);
    } else {
      this.#finish(slot, state, fields.finishedAt);
    }
    return slot;
  }

  /** Takes the first pending job (highest priority, then lowest id) and marks it active; -1 if none. */
  startNext(): number {
    assert(!this.#replaying, 'no dispatch during replay');
    const slot = this.#pending.pop();
    if (slot === -1) return -1;
    // Invariant: the pending heap holds exactly the slots in state pending.
    if (this.#states[slot] !== StateCode.pending) fail(`heap slot ${slot} in state ${this.#states[slot]}`);
    this.#setState(slot, StateCode.active);
    return slot;
  }

  /** A started record replayed: the job is active (it left its heap before replay built heaps). */
  markStarted(slot: number): void {
    assert(this.#replaying, 'only replay starts a job by slot');
    this.#setState(slot, StateCode.active);
  }

  completed(slot: number, finishedAt: number, outcomeLocation: number, outcomeBytes = 0): void {
    this.#keep(slot);
    this.#attemptsMade[slot] = this.#attemptsMade[slot]! + 1;
    this.#outcomeLocations[slot] = outcomeLocation;
    this.#setRecordBytes(slot, this.#addedBytes[slot]!, outcomeBytes);
    this.#finish(slot, StateCode.completed, finishedAt);
  }

  failed(slot: number, finishedAt: number, outcomeLocation: number, stalled: boolean, outcomeBytes = 0): void {
    this.#keep(slot);
    if (stalled) this.#stalls[slot] = this.#stalls[slot]! + 1;
    this.#attemptsMade[slot] = this.#attemptsMade[slot]! + 1;
    this.#outcomeLocations[slot] = outcomeLocation;
    this.#setRecordBytes(slot, this.#addedBytes[slot]!, outcomeBytes);
    this.#finish(slot, StateCode.failed, finishedAt);
  }

  /** A failed attempt with attempts left: waiting again until `retryAt`. */
  retrying(slot: number, retryAt: number, outcomeLocation: number, now: number, outcomeBytes = 0): void {
    this.#keep(slot);
    this.#attemptsMade[slot] = this.#attemptsMade[slot]! + 1;
    this.#outcomeLocations[slot] = outcomeLocation;
    this.#setRecordBytes(slot, this.#addedBytes[slot]!, outcomeBytes);
    this.#runAts[slot] = retryAt;
    this.#enterWaiting(slot, retryAt, now);
  }

  /** Back to pending without using up an attempt: released by close(), or stalled with `stalls`. */
  requeued(slot: number, stalls: number, now: number): void {
    this.#keep(slot);
    this.#stalls[slot] = stalls;
    this.#enterWaiting(slot, this.#runAts[slot]!, now);
  }

  /** A removed record: the job is gone. Only replay removes waiting jobs (heaps are not built yet). */
  removed(slot: number): void {
    const state = this.#states[slot]!;
    assert(this.#replaying || state === StateCode.completed || state === StateCode.failed, 'live removal of a waiting job');
    this.#releaseSlot(slot);
  }

  /**
   * relocate() for the captured jobs in slots[from, to) that are still in the index, in one pass
   * over the columns (compaction moves every live job; a call per job cost ~0.4 µs each before
   * the JIT warmed up). `slots[k]` is a slot of `capture`, `newLocations[k]` where its job was
   * written, `snapshotted[k]` 1 if as a snapshot record (none: all were copied as they are). A
   * job that finished after the cut keeps its new outcome location; its own location cannot
   * have changed (only compaction moves it); a job that is gone is skipped.
   */
  relocateCaptured(capture: IndexCapture, slots: Int32Array, newLocations: Float64Array, snapshotted: Uint8Array | undefined, from: number, to: number): void {
    const ids = this.#ids;
    const states = this.#states;
    const locations = this.#locations;
    const outcomes = this.#outcomeLocations;
    const atSnapshot = this.#atSnapshot;
    const highWater = this.#highWater;
    // The failures are reported by a call, not formatted here: a template string with a job's
    // id in this loop made it seven times slower, even never reached (V8 boxed the id each time).
    // The capture stays open meanwhile (a job that changes between two slices is saved first);
    // this loop writes the locations it shares without saving them: nothing reads them again.
    const shares = this.#capture === capture && this.#captureShares;
    for (let k = from; k < to; k++) {
      const at = slots[k]!;
      // The job's slot now and its outcome location at the cut.
      let slot = at;
      let outcome: number;
      if (shares && !capture.isSaved(at)) {
        // Unchanged since the cut (the index would have saved it): the same job, at the same locations.
        if (states[at] === StateCode.none) relocationFailed('captured slot holds no job', at, -1);
        outcome = outcomes[at]!;
      } else {
        if (capture.state(at) === StateCode.none) relocationFailed('captured slot holds no job', at, -1);
        const id = capture.id(at);
        // Usually the job still sits in the slot it was captured from (slots are only reused once freed).
        slot = at < highWater && ids[at] === id && states[at] !== StateCode.none ? at : this.#slotById.get(id);
        if (slot === -1) continue;
        // Only compaction moves a job's location, and one runs at a time.
        if (locations[slot] !== capture.location(at)) relocationFailed('job moved during a compaction', at, id);
        outcome = capture.outcomeLocation(at);
      }
      const newLocation = newLocations[k]!;
      if (newLocation === NO_LOCATION) relocationFailed('job was not written by the compaction', at, ids[slot]!);
      locations[slot] = newLocation;
      atSnapshot[slot] = snapshotted === undefined ? 0 : snapshotted[k]!;
      if (outcome !== NO_LOCATION && outcomes[slot] === outcome) outcomes[slot] = newLocation;
    }
  }

  /**
   * Points a job at the copies of its records a compaction wrote (the old ones go away with the
   * next compaction). Changes nothing else: the copies hold the same bytes.
   */
  relocate(slot: number, location: number, outcomeLocation: number, atSnapshot: boolean): void {
    if (this.#states[slot] === StateCode.none) fail(`relocating free slot ${slot}`);
    this.#keep(slot);
    this.#locations[slot] = location;
    this.#atSnapshot[slot] = atSnapshot ? 1 : 0;
    this.#outcomeLocations[slot] = outcomeLocation;
  }

  /** The columns an IndexCapture shares, as they are now. */
  #columns(): CapturedColumns {
    return {
      ids: this.#ids,
      states: this.#states,
      runAts: this.#runAts,
      locations: this.#locations,
      outcomeLocations: this.#outcomeLocations,
      stalls: this.#stalls,
      attemptsMade: this.#attemptsMade,
      atSnapshot: this.#atSnapshot,
      needsSnapshot: this.#snapshotFlags,
    };
  }

  /**
   * What a snapshot needs of every live job, as it is right now, without copying the columns
   * (see index-capture.ts): until endCapture(), a slot's values are saved in the capture before
   * they change. Compaction calls it in the same tick as log.cut(), so the capture holds exactly
   * the effect of the records up to the cut. One capture at a time.
   */
  capture(): IndexCapture {
    if (this.#capture !== undefined) fail('a capture is already open');
    const epoch = ++this.#captureEpoch;
    const capture = new IndexCapture(
      { liveJobs: this.#slotById.size, recordBytes: this.#recordBytes, leaseBound: this.#leaseBound },
      this.#slotById.clone(),
      this.#highWater,
      epoch,
      this.#columns(),
      this.#changed,
    );
    this.#capture = capture;
    this.#captureShares = true;
    if (verifyEnabled) {
      const end = this.#highWater;
      const columns = this.#columns();
      this.#capturedCopy = {
        ids: columns.ids.slice(0, end),
        states: columns.states.slice(0, end),
        runAts: columns.runAts.slice(0, end),
        locations: columns.locations.slice(0, end),
        outcomeLocations: columns.outcomeLocations.slice(0, end),
        stalls: columns.stalls.slice(0, end),
        attemptsMade: columns.attemptsMade.slice(0, end),
        atSnapshot: columns.atSnapshot.slice(0, end),
        needsSnapshot: columns.needsSnapshot.slice(0, end),
      };
    }
    return capture;
  }

  /** Ends `capture` (if it is the open one): the index stops saving slots for it. */
  endCapture(capture: IndexCapture): void {
    if (this.#capture !== capture) return;
    this.#capture = undefined;
    this.#capturedCopy = undefined;
  }

  /**
   * Under BLERO_VERIFY: checks that the open capture still reads, slot by slot, what the index
   * held at the cut. Compaction calls it before relocating (which rewrites locations in place).
   */
  checkCapture(capture: IndexCapture): void {
    const copy = this.#capturedCopy;
    if (this.#capture === capture && copy !== undefined) {
      for (let slot = 0; slot < capture.highWater; slot++) {
        const same =
          capture.id(slot) === copy.ids[slot] &&
          capture.state(slot) === copy.states[slot] &&
          Object.is(capture.runAt(slot), copy.runAts[slot]) &&
          capture.location(slot) === copy.locations[slot] &&
          capture.outcomeLocation(slot) === copy.outcomeLocations[slot] &&
          capture.stalls(slot) === copy.stalls[slot] &&
          capture.attemptsMade(slot) === copy.attemptsMade[slot] &&
          capture.atSnapshot(slot) === copy.atSnapshot[slot] &&
          capture.needsSnapshot(slot) === copy.needsSnapshot[slot];
        if (!same) fail(`capture of slot ${slot} changed after the cut`);
      }
    }
  }

  /** Saves `slot` in the open capture before its first change since the cut. */
  #keep(slot: number): void {
    const capture = this.#capture;
    if (capture === undefined || slot >= capture.highWater || this.#changed[slot] === capture.epoch) return;
    capture.save(slot, this.#columns());
    this.#changed[slot] = capture.epoch;
  }

  // -------------------------------------------------------------------------------------------
  // Time

  /** Moves delayed jobs that are due by `now` to pending; returns how many moved. */
  promoteDue(now: number): number {
    if (this.#replaying) return 0;
    let moved = 0;
    for (let slot = this.#delayed.peek(); slot !== -1 && this.#runAts[slot]! <= now; slot = this.#delayed.peek()) {
      this.#delayed.pop();
      this.#setState(slot, StateCode.pending);
      this.#pending.push(slot);
      moved++;
    }
    return moved;
  }

  /** runAt of the earliest delayed job; Infinity when none. */
  nextDueAt(): number {
    const slot = this.#delayed.peek();
    return slot === -1 ? Infinity : this.#runAts[slot]!;
  }

  /** Drops retained jobs older than their age limit. */
  evictExpired(now: number): void {
    this.#evictOld(this.#completed, StateCode.completed, this.#retention.completed.ageMs, now);
    this.#evictOld(this.#failed, StateCode.failed, this.#retention.failed.ageMs, now);
  }

  /** When the oldest retained job passes its age limit; Infinity when never. */
  nextExpiryAt(): number {
    return Math.min(
      this.#completed.oldestFinishedAt() + this.#retention.completed.ageMs,
      this.#failed.oldestFinishedAt() + this.#retention.failed.ageMs,
    );
  }

  // -------------------------------------------------------------------------------------------
  // Replay

  get replaying(): boolean {
    return this.#replaying;
  }

  /** Slots of jobs that are active: at the end of replay, the jobs the last process was running. */
  activeSlots(): number[] {
    const slots: number[] = [];
    for (let slot = 0; slot < this.#highWater; slot++) {
      if (this.#states[slot] === StateCode.active) slots.push(slot);
    }
    return slots;
  }

  /** Ends replay: builds the heaps in O(n) from the states, and applies age limits. */
  finishReplay(now: number): void {
    assert(this.#replaying, 'finishReplay twice');
    for (let slot = 0; slot < this.#highWater; slot++) {
      const state = this.#states[slot]!;
      if (state !== StateCode.pending && state !== StateCode.delayed) continue;
      const due = this.#runAts[slot]! <= now;
      if (state === StateCode.delayed && due) this.#setState(slot, StateCode.pending);
      if (state === StateCode.pending && !due) this.#setState(slot, StateCode.delayed);
      (due ? this.#pending : this.#delayed).pushUnordered(slot);
    }
    this.#pending.heapify();
    this.#delayed.heapify();
    // The rest of the last lease may have been handed out and lost with the records that held it.
    if (this.#leaseBound > this.#nextId) this.#nextId = this.#leaseBound;
    this.#replaying = false;
    this.evictExpired(now);
    verify(() => this.check());
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  #pendingBefore(a: number, b: number): boolean {
    const priorityA = this.#priorities[a]!;
    const priorityB = this.#priorities[b]!;
    if (priorityA !== priorityB) return priorityA > priorityB;
    return this.#ids[a]! < this.#ids[b]!;
  }

  #delayedBefore(a: number, b: number): boolean {
    const runAtA = this.#runAts[a]!;
    const runAtB = this.#runAts[b]!;
    if (runAtA !== runAtB) return runAtA < runAtB;
    return this.#ids[a]! < this.#ids[b]!;
  }

  #enterWaiting(slot: number, runAt: number, now: number): void {
    const due = runAt <= now;
    this.#setState(slot, due ? StateCode.pending : StateCode.delayed);
    if (!this.#replaying) (due ? this.#pending : this.#delayed).push(slot);
  }

  #finish(slot: number, state: typeof StateCode.completed | typeof StateCode.failed, finishedAt: number): void {
    const id = this.#ids[slot]!;
    this.#releaseKey(id);
    this.#setState(slot, state);
    const retained = state === StateCode.completed ? this.#completed : this.#failed;
    const limit = state === StateCode.completed ? this.#retention.completed.count : this.#retention.failed.count;
    retained.push(id, finishedAt);
    // Eviction writes no removed record: replay meets the same outcome records in the same
    // order and applies the same limits, so it evicts the same jobs. A record per eviction would
    // add a fourth write to every job's three, to say what replay can work out for free.
    while (retained.size > limit) this.#evictOldest(retained, state);
  }

  #evictOld(retained: RetainedJobs, state: StateCode, ageMs: number, now: number): void {
    while (retained.size > 0 && retained.oldestFinishedAt() + ageMs <= now) this.#evictOldest(retained, state);
  }

  #evictOldest(retained: RetainedJobs, state: StateCode): void {
    const id = retained.shift()!;
    const slot = this.slotOf(id);
    // A stale entry: the job was removed by a removed record after it finished.
    if (slot === -1 || this.#states[slot] !== state) return;
    this.#releaseSlot(slot);
  }

  #setState(slot: number, state: StateCode): void {
    this.#keep(slot);
    const counts = this.#counts;
    counts[this.#states[slot]!]!--;
    this.#states[slot] = state;
    counts[state]!++;
    // Every change ends in a state change, after its attempts and stalls are set.
    const flag = this.#needsSnapshot(slot) ? 1 : 0;
    this.#snapshotJobs += flag - this.#snapshotFlags[slot]!;
    this.#snapshotFlags[slot] = flag;
  }

  /**
   * Whether replaying the job's added record alone would get its state wrong: it has started,
   * finished, failed an attempt or stalled. Compaction copies the added record of any other live
   * job as it is, and writes a snapshot record (SNAPSHOT_HEADER_SIZE more bytes) for these.
   */
  #needsSnapshot(slot: number): boolean {
    const state = this.#states[slot]!;
    if (state === StateCode.none) return false;
    return (state !== StateCode.pending && state !== StateCode.delayed) || this.#attemptsMade[slot]! > 0 || this.#stalls[slot]! > 0;
  }

  /** Live jobs a compaction would write as snapshot records (the others as their added record). */
  get snapshotJobs(): number {
    return this.#snapshotJobs;
  }

  #setRecordBytes(slot: number, addedBytes: number, outcomeBytes: number): void {
    this.#recordBytes += addedBytes + outcomeBytes - this.#addedBytes[slot]! - this.#outcomeBytes[slot]!;
    this.#addedBytes[slot] = addedBytes;
    this.#outcomeBytes[slot] = outcomeBytes;
  }

  #holdKey(id: number, key: string): void {
    this.#idByKey.set(key, id);
    this.#keyById.set(id, key);
  }

  #releaseKey(id: number): void {
    const key = this.#keyById.get(id);
    if (key === undefined) return;
    this.#keyById.delete(id);
    if (this.#idByKey.get(key) === id) this.#idByKey.delete(key);
  }

  #allocateSlot(id: number): number {
    let slot: number;
    if (this.#freeCount > 0) {
      slot = this.#freeSlots[--this.#freeCount]!;
    } else {
      if (this.#highWater === this.#states.length) this.#growColumns();
      slot = this.#highWater++;
    }
    this.#keep(slot);
    this.#ids[slot] = id;
    this.#slotById.set(id, slot);
    return slot;
  }

  #releaseSlot(slot: number): void {
    const id = this.#ids[slot]!;
    this.#releaseKey(id);
    this.#setRecordBytes(slot, 0, 0);
    this.#setState(slot, StateCode.none);
    this.#slotById.delete(id);
    if (this.#freeCount === this.#freeSlots.length) {
      const grown = new Int32Array(this.#freeSlots.length * 2);
      grown.set(this.#freeSlots);
      this.#freeSlots = grown;
    }
    this.#freeSlots[this.#freeCount++] = slot;
  }

  #growColumns(): void {
    const capacity = this.#states.length * 2;
    this.#ids = grow(this.#ids, new Float64Array(capacity));
    this.#priorities = grow(this.#priorities, new Int32Array(capacity));
    this.#runAts = grow(this.#runAts, new Float64Array(capacity));
    this.#locations = grow(this.#locations, new Float64Array(capacity));
    this.#outcomeLocations = grow(this.#outcomeLocations, new Float64Array(capacity));
    this.#states = grow(this.#states, new Uint8Array(capacity));
    this.#stalls = grow(this.#stalls, new Uint16Array(capacity));
    this.#attemptsMade = grow(this.#attemptsMade, new Uint32Array(capacity));
    this.#addedBytes = grow(this.#addedBytes, new Uint32Array(capacity));
    this.#outcomeBytes = grow(this.#outcomeBytes, new Uint32Array(capacity));
    this.#snapshotFlags = grow(this.#snapshotFlags, new Uint8Array(capacity));
    this.#atSnapshot = grow(this.#atSnapshot, new Uint8Array(capacity));
    // An open capture keeps the old columns (and marks): from here on they no longer change.
    this.#changed = grow(this.#changed, new Uint32Array(capacity));
    this.#captureShares = false;
  }

  /** O(n): counters, heaps, keys and the id map agree with the state column. */
  check(): void {
    const seen = { pending: 0, delayed: 0, active: 0, completed: 0, failed: 0 };
    let live = 0;
    let recordBytes = 0;
    for (let slot = 0; slot < this.#highWater; slot++) {
      const state = this.#states[slot]! as StateCode;
      if (state === StateCode.none) continue;
      live++;
      recordBytes += this.#addedBytes[slot]! + this.#outcomeBytes[slot]!;
      seen[stateName(state)]++;
      if (this.#slotById.get(this.#ids[slot]!) !== slot) fail(`slot ${slot} not in the id map`);
      if (!(this.#ids[slot]! < this.#nextId)) fail(`job ${this.#ids[slot]} not below nextId ${this.#nextId}`);
    }
    if (live !== this.#slotById.size) fail(`id map holds ${this.#slotById.size} jobs, columns ${live}`);
    if (recordBytes !== this.#recordBytes) fail(`record bytes: counted ${this.#recordBytes}, found ${recordBytes}`);
    let snapshotJobs = 0;
    for (let slot = 0; slot < this.#highWater; slot++) {
      const flag = this.#needsSnapshot(slot) ? 1 : 0;
      if (this.#snapshotFlags[slot] !== flag) fail(`slot ${slot}: snapshot flag ${this.#snapshotFlags[slot]}, should be ${flag}`);
      snapshotJobs += flag;
    }
    if (snapshotJobs !== this.#snapshotJobs) fail(`snapshot jobs: counted ${this.#snapshotJobs}, found ${snapshotJobs}`);
    const counted = this.counts();
    for (const name of STATE_NAMES) assert(seen[name] === counted[name], `${name}: counted ${counted[name]}, found ${seen[name]}`);
    if (this.#replaying) return;
    assert(this.#pending.size === seen.pending, 'pending heap size');
    assert(this.#delayed.size === seen.delayed, 'delayed heap size');
    this.#pending.check();
    this.#delayed.check();
    this.#pending.forEach((slot) => assert(this.#states[slot] === StateCode.pending, `pending heap holds slot ${slot}`));
    this.#delayed.forEach((slot) => assert(this.#states[slot] === StateCode.delayed, `delayed heap holds slot ${slot}`));
    for (const [key, id] of this.#idByKey) {
      const state = this.#states[this.slotOf(id)];
      if (!(state === StateCode.pending || state === StateCode.delayed || state === StateCode.active)) fail(`key ${key} held by a finished job`);
    }
  }
}

const STATE_NAMES = ['pending', 'delayed', 'active', 'completed', 'failed'] as const;
type StateName = (typeof STATE_NAMES)[number];

export function stateName(state: StateCode): StateName {
  assert(state !== StateCode.none, 'no name for a free slot');
  return STATE_NAMES[state - 1]!;
}

function grow<T extends Float64Array | Int32Array | Uint8Array | Uint16Array | Uint32Array>(from: T, to: T): T {
  to.set(from as never);
  return to;
}

/** Fails a compaction's relocation (a bug: see JobIndex.relocateCaptured). */
function relocationFailed(what: string, capturedSlot: number, id: number): never {
  fail(`${what}: job ${id}, captured slot ${capturedSlot}`);
}
