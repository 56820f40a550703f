// Compaction of the queue's log: the snapshot writer (what a compaction writes) and the trigger
// policy (when one starts on its own). The design, and why a crash at any step loses nothing,
// are argued in docs/compaction.md.
//
// A compaction cuts the log and, in the same tick, captures the index (index-capture.ts: the
// columns are shared, and the index saves a slot there before changing it): that capture is
// exactly the state after the last record before the cut. It then asks the engine to replace
// every segment up to the cut by one segment holding one record per live job and then the id
// lease: its added record as it is, header and all, if it never started (copied by the scan in
// runs of adjacent records), otherwise a snapshot record (its state, attempts, stalls and
// run-at, and its added and last outcome records). Either way the bytes are copied from the
// segments being replaced, reading only the ranges that hold live records, and keep the
// checksums they had. Records after the cut are not touched and replay on top of the output as
// they did on top of the history it replaces.
//
// Promises:
// - Replaying the output and then the records after the cut rebuilds the state the queue had.
// - The engine's rewrite commits by one rename after the output is fsynced: a crash before it
//   leaves the old segments, a crash after it the snapshot; both replay to the same state.
// - One compaction at a time; enqueues and processing go on meanwhile, and jobs whose records
//   did not change after the cut are pointed at their copies once the rewrite has committed.
// - Memory: a copy of the id table, the saved values of slots the queue changes meanwhile (at
//   most a copy of the index columns), lists of the live jobs, and bounded buffers; the log is
//   streamed, never loaded.
// - While appends are being fsynced, the output is written at most policy.maxBytesPerSecond
//   (the engine's RewritePacer), so their fdatasyncs do not queue behind it.
import { assert, fail, verify } from '../engine/assert.ts';
import { crc32, crc32Combine, crc32Range, crc32WithoutPrefix } from '../engine/crc.ts';
import { locationAfter } from '../engine/log.ts';
import type { Log, RewriteOutput, ScanBatch } from '../engine/log.ts';
import { Turns } from '../engine/turns.ts';
import { ClosedError, PoisonedError } from '../errors.ts';
import type { IndexCapture } from './index-capture.ts';
import type { JobIndex } from './job-index.ts';
import { NO_LOCATION } from './job-index.ts';
import {
  RecordKind,
  ADDED_RUN_AT_OFFSET,
  SNAPSHOT_ADDED_LENGTH_OFFSET,
  SNAPSHOT_HEADER_SIZE,
  SNAPSHOT_OUTCOME_LENGTH_OFFSET,
  StateCode,
  addedPart,
  encodeMeta,
  encodeSnapshotHeader,
  recordId,
} from './job-records.ts';
import type { SnapshotState } from './job-records.ts';
import type { CompactionPolicy } from './queue-options.ts';

/** What one compaction did; also the argument of the `'compacted'` event. */
export interface CompactionReport {
  /** Bytes of the segment files the compaction replaced (everything up to its cut). */
  readonly bytesBefore: number;
  /** Bytes of the one segment that replaced them. */
  readonly bytesAfter: number;
  /** From the cut until the index pointed at the new segment, in ms. */
  readonly durationMs: number;
  /** Live jobs written (one snapshot record each). */
  readonly jobs: number;
}

/** Compaction counters since the queue was opened. */
export interface CompactionStats {
  /** A compaction is running now. */
  readonly running: boolean;
  /** Compactions that completed. */
  readonly runs: number;
  /** Compactions that failed (the log was left as it was; see lastError). */
  readonly failures: number;
  /** Sum over completed compactions of bytesBefore − bytesAfter. */
  readonly bytesReclaimed: number;
  /** Sum of bytesAfter: the live data compaction wrote. */
  readonly bytesWritten: number;
  /** Sum of durationMs. */
  readonly durationMs: number;
  readonly last: CompactionReport | undefined;
  /** Why the latest failed compaction failed, if one did. */
  readonly lastError: Error | undefined;
}

/** Size of the log and of its live part, and what compaction did about the rest. */
export interface QueueStats {
  /** Bytes of every segment file of the log. */
  readonly logBytes: number;
  readonly segments: number;
  /**
   * Bytes a compaction would write now: a record per live job (its added record as it is if it
   * never started, else a snapshot: its added and last outcome records plus 64 bytes) and the
   * id lease. Kept in memory, not measured on disk.
   */
  readonly liveBytes: number;
  readonly compaction: CompactionStats;
}

/** An enqueue whose added records are appended but not yet indexed (the index learns of them on acknowledgement). */
export interface UnindexedBatch {
  /** Location of the first record; the others follow contiguously. */
  readonly firstLocation: number;
  readonly jobs: readonly { readonly id: number; readonly runAt: number; readonly record: Buffer }[];
  /** Settles once the jobs are indexed (or the append failed). */
  readonly acknowledged: Promise<void>;
}

/** What the compactor needs from the queue that owns it. */
export interface CompactorHost {
  readonly log: Log;
  readonly index: JobIndex;
  readonly policy: CompactionPolicy;
  /** Batches appended but not indexed yet, at this moment. */
  unindexed(): Iterable<UnindexedBatch>;
  /** False once the queue is closing: no compaction may start. */
  accepting(): boolean;
  /** A compaction completed (the queue emits 'compacted'). */
  compacted(report: CompactionReport): void;
}

/** Header bytes of every log record (the engine's framing), as locationAfter reveals them. */
const RECORD_OVERHEAD_BYTES = locationAfter(0, 0);
/** A meta record: the common header only. */
const META_RECORD_BYTES = RECORD_OVERHEAD_BYTES + 8;
/** Added records kept in memory between a job's added record and its outcome record in the scan. */
const HOLD_BUDGET_BYTES = 8 * 1024 * 1024;
const EMPTY = new Uint8Array(0);
/**
 * Longest stretch of scanning without giving the event loop a turn, in ms: records that need no
 * I/O are decided synchronously, and a 2 MiB chunk of them would otherwise hold up enqueues.
 */
const MAX_TURN_MS = 0.25;
/** Captured jobs listed or relocated in one go (about a tenth of a millisecond's work once warm). */
const SLICE_SLOTS = 4096;
/** Records between two looks at the clock. */
const CLOCK_EVERY_RECORDS = 64;

/**
 * Runs compactions for one queue: manual ones (compact()) and automatic ones, which
 * noteAppended() starts when the log is large and mostly dead.
 */
export class Compactor {
  readonly #host: CompactorHost;
  readonly #policy: CompactionPolicy;
  /** Bytes appended between two trigger checks: a check reads log.stats(), so not on every append. */
  readonly #checkEveryBytes: number;
  #sinceCheckBytes = 0;
  #checkScheduled = false;
  /** An automatic compaction waits until the log is at least this large (see #arm). */
  #armedAtBytes = 0;
  #running: Promise<CompactionReport> | undefined;
  #stopping = false;
  /** Aborts the running compaction's paced waits when the queue closes. */
  #abort: AbortController | undefined;
  #runs = 0;
  #failures = 0;
  #bytesReclaimed = 0;
  #bytesWritten = 0;
  #durationMs = 0;
  #last: CompactionReport | undefined;
  #lastError: Error | undefined;
  /**
   * Reads of the log by the queue, counted per epoch; the epoch moves on when a compaction has
   * pointed the index at its output. A read of an earlier epoch may be of a segment that
   * compaction replaced, which the engine keeps open only until its next rewrite starts: that
   * rewrite waits for those reads (see read).
   */
  #readEpoch = 0;
  readonly #readsByEpoch = new Map<number, number>();
  #readsSettled: (() => void) | undefined;

  constructor(host: CompactorHost) {
    this.#host = host;
    this.#policy = host.policy;
    this.#checkEveryBytes = Math.min(1024 * 1024, Math.max(4096, Math.floor(host.policy.minSizeBytes / 64)));
  }

  /** Bytes a compaction would write now (see QueueStats.liveBytes). */
  get liveBytes(): number {
    const index = this.#host.index;
    return index.recordBytes + index.size * RECORD_OVERHEAD_BYTES + index.snapshotJobs * SNAPSHOT_HEADER_SIZE + META_RECORD_BYTES;
  }

  stats(): CompactionStats {
    return {
      running: this.#running !== undefined,
      runs: this.#runs,
      failures: this.#failures,
      bytesReclaimed: this.#bytesReclaimed,
      bytesWritten: this.#bytesWritten,
      durationMs: this.#durationMs,
      last: this.#last,
      lastError: this.#lastError,
    };
  }

  /**
   * Reads the record at `location` (from the index) for the queue. Every such read goes through
   * here: the engine keeps a replaced segment readable until its next rewrite starts, so the
   * next compaction waits until every read that may target one has settled. Reads of the
   * current epoch never do: the index pointed at live segments when they started.
   */
  read(location: number): Promise<Buffer> {
    const read = this.#host.log.read(location);
    const epoch = this.#readEpoch;
    this.#readsByEpoch.set(epoch, (this.#readsByEpoch.get(epoch) ?? 0) + 1);
    const settled = (): void => {
      const left = this.#readsByEpoch.get(epoch)! - 1;
      if (left > 0) {
        this.#readsByEpoch.set(epoch, left);
        return;
      }
      this.#readsByEpoch.delete(epoch);
      this.#readsSettled?.();
    };
    read.then(settled, settled);
    return read;
  }

  /** Resolves once no read from before the last relocation is in flight. */
  async #readsOfEarlierEpochs(): Promise<void> {
    const current = this.#readEpoch;
    const pending = (): boolean => [...this.#readsByEpoch.keys()].some((epoch) => epoch < current);
    while (pending()) await new Promise<void>((resolve) => (this.#readsSettled = resolve));
    this.#readsSettled = undefined;
  }

  /**
   * Counts a record the queue appended (`payloadBytes` long). Every few appended bytes it checks
   * the trigger, in a microtask: the caller may still be updating the index for the record it
   * just appended, and a compaction must not cut the log between the two.
   */
  noteAppended(payloadBytes: number): void {
    if (!this.#policy.auto) return;
    this.#sinceCheckBytes += payloadBytes + RECORD_OVERHEAD_BYTES;
    if (this.#sinceCheckBytes < this.#checkEveryBytes || this.#checkScheduled) return;
    this.#sinceCheckBytes = 0;
    this.#checkScheduled = true;
    queueMicrotask(() => this.#checkTrigger());
  }

  #checkTrigger(): void {
    this.#checkScheduled = false;
    const { log } = this.#host;
    if (this.#running !== undefined || !this.#host.accepting() || log.status !== 'open' || log.poisonedBy !== undefined) return;
    const sizeBytes = log.stats().sizeBytes;
    if (sizeBytes < this.#policy.minSizeBytes || sizeBytes < this.#armedAtBytes) return;
    const deadBytes = sizeBytes - this.liveBytes;
    if (deadBytes < this.#policy.deadRatio * sizeBytes) return;
    // A failure is in stats().compaction.lastError; the log is left as it was.
    this.compact().catch(() => undefined);
  }

  /**
   * Compacts now, or returns the running compaction's promise. Rejects with ClosedError once the
   * queue is closing, PoisonedError after an I/O failure, or the error that made it fail (the log
   * is then as it was before).
   */
  compact(): Promise<CompactionReport> {
    if (this.#running !== undefined) return this.#running;
    if (!this.#host.accepting() || this.#stopping) return Promise.reject(new ClosedError('queue'));
    const poison = this.#host.log.poisonedBy;
    if (poison !== undefined) return Promise.reject(new PoisonedError(poison));
    const running = this.#run();
    this.#running = running;
    const done = (): void => {
      if (this.#running === running) this.#running = undefined;
    };
    running.then(done, done);
    return running;
  }

  /** Stops a running compaction at its next record (its output is discarded) and waits for it to end. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#abort?.abort(new ClosedError('queue'));
    await this.#running?.catch(() => undefined);
  }

  async #run(): Promise<CompactionReport> {
    const startedAt = performance.now();
    const { log, index } = this.#host;
    // Created before any await: close() may come at any moment and aborts it.
    const abort = (this.#abort = new AbortController());
    // The output ends with the id lease (see SnapshotWriter), under the LSN of a lease record
    // appended here, the last before the cut: no live record has that LSN.
    const leaseLsn = this.#appendLease();
    // No await between the cut and the capture: every record up to the cut is reflected in the
    // index (or in an unindexed batch) and no later one is.
    const cut = log.cut();
    const live = captureLive(index, this.#host.unindexed(), Date.now());
    try {
      if (cut === 0) return this.#completed({ bytesBefore: 0, bytesAfter: 0, durationMs: performance.now() - startedAt, jobs: 0 });
      // Each live job owns at least one record up to the cut, and so does the lease: the output
      // never needs more LSNs than the range it replaces holds.
      if (!(live.records <= cut)) fail(`${live.records} snapshot records for ${cut} LSNs`);
      if (live.capture.leaseBound > 0 && leaseLsn !== cut) fail(`lease record at LSN ${leaseLsn}, cut at ${cut}`);
      const writer = new SnapshotWriter(log, live, cut, () => this.#stopping);
      await this.#readsOfEarlierEpochs();
      const signal = abort.signal;
      const result = await log.rewrite(cut, (output) => writer.write(output, signal), { maxBytesPerSecond: this.#policy.maxBytesPerSecond, signal });
      // Unindexed jobs get their index entries when acknowledged: wait, so they are relocated too.
      await Promise.allSettled(live.acknowledgements);
      verify(() => index.checkCapture(live.capture));
      await writer.relocate(index);
      this.#readEpoch++;
      const report = { bytesBefore: result.bytesBefore, bytesAfter: result.bytesAfter, durationMs: performance.now() - startedAt, jobs: writer.jobs };
      return this.#completed(report);
    } catch (error) {
      this.#failures++;
      this.#lastError = error instanceof Error ? error : new Error(String(error));
      // Retry once the log has grown by the dead ratio (a full disk may have room again by then).
      this.#arm(log.status === 'open' ? log.stats().sizeBytes : 0);
      throw error;
    } finally {
      // The index stops saving slots for the capture once nothing reads it any more.
      index.endCapture(live.capture);
    }
  }

  /**
   * Appends a record of the current id lease (not awaited: the cut's roll syncs it, and a failed
   * sync poisons the log, which makes the rewrite refuse to commit); returns its LSN, or 0 when
   * no id was ever leased.
   */
  #appendLease(): number {
    const { log, index } = this.#host;
    if (index.leaseBound === 0) return 0;
    const before = log.lastLsn;
    log.append(encodeMeta(index.leaseBound)).catch(() => undefined);
    if (log.lastLsn === before) throw new Error('the log refused the lease record of a compaction');
    return log.lastLsn;
  }

  #completed(report: CompactionReport): CompactionReport {
    this.#runs++;
    this.#bytesReclaimed += report.bytesBefore - report.bytesAfter;
    this.#bytesWritten += report.bytesAfter;
    this.#durationMs += report.durationMs;
    this.#last = report;
    this.#arm(report.bytesAfter);
    if (report.bytesBefore > 0) this.#host.compacted(report);
    return report;
  }

  /**
   * The next automatic compaction waits until the log is larger than `bytes` (what this one
   * wrote, or the log it failed on) by the dead ratio. With an accurate live estimate this never
   * binds: the ratio itself is reached later, at about live / (1 − ratio). It bounds the cost if
   * the estimate is off or a compaction keeps failing: each one is paid for by at least ratio ×
   * its size of new appends. Appends made while a compaction runs count towards the next one,
   * so under heavy churn compactions may follow each other directly.
   */
  #arm(logBytes: number): void {
    this.#armedAtBytes = logBytes * (1 + this.#policy.deadRatio);
  }
}

/** The live state at a cut: the index copy and the enqueued jobs not indexed yet. */
interface LiveState {
  readonly capture: IndexCapture;
  /** Unindexed jobs by id: where their added record is and when they run. */
  readonly unindexed: Map<number, { readonly location: number; readonly runAt: number }>;
  readonly acknowledgements: readonly Promise<void>[];
  /** Snapshot records to write, plus the lease record when there is a lease. */
  readonly jobs: number;
  readonly records: number;
  readonly now: number;
}

function captureLive(index: JobIndex, batches: Iterable<UnindexedBatch>, now: number): LiveState {
  const unindexed: LiveState['unindexed'] = new Map();
  const acknowledgements: Promise<void>[] = [];
  for (const batch of batches) {
    let location = batch.firstLocation;
    for (const job of batch.jobs) {
      unindexed.set(job.id, { location, runAt: job.runAt });
      location = locationAfter(location, job.record.length);
    }
    acknowledgements.push(batch.acknowledged);
  }
  // Last: from here the caller ends the capture in a finally (left open, it would refuse the
  // next one and keep saving every slot that changes).
  const capture = index.capture();
  const jobs = capture.liveJobs + unindexed.size;
  return { capture, unindexed, acknowledgements, jobs, records: jobs + (capture.leaseBound > 0 ? 1 : 0), now };
}

/** `array` in one twice as long. */
function grown(array: Float64Array): Float64Array<ArrayBuffer> {
  const larger = new Float64Array(2 * array.length);
  larger.set(array);
  return larger;
}

/** The live jobs of a capture, sorted into what the scan copies and what it visits (see SnapshotWriter.#liveLocations). */
interface LiveList {
  /** Captured slots of the jobs copied as they are, in list order (the id-ordered slots, overwritten from the start)... */
  readonly plainSlots: Int32Array;
  /** ...and their locations; room after them for the unindexed jobs. */
  readonly copy: Float64Array;
  plains: number;
  /** Captured slots of the other jobs... */
  readonly visitSlots: Int32Array;
  visitJobs: number;
  /** ...and the locations of their records, in no order. */
  visit: Float64Array;
  visits: number;
}

/**
 * Sorts the captured jobs in slots order[from, to) into `list`. Apart from the writer, so this
 * loop over every live job is optimized quickly (see Log's extendRun). `list.plainSlots` may be
 * `order` itself: each slot is read before its place is written.
 */
function listLive(capture: IndexCapture, order: Int32Array, from: number, to: number, list: LiveList): void {
  const { plainSlots, copy, visitSlots } = list;
  let plains = list.plains;
  for (let at = from; at < to; at++) {
    const slot = order[at]!;
    if (capture.needsSnapshot(slot) === 0 && capture.atSnapshot(slot) === 0) {
      plainSlots[plains] = slot;
      copy[plains++] = capture.location(slot);
      continue;
    }
    visitSlots[list.visitJobs++] = slot;
    if (list.visits + 2 > list.visit.length) list.visit = grown(list.visit);
    const location = capture.location(slot);
    list.visit[list.visits++] = location;
    const outcome = capture.outcomeLocation(slot);
    if (outcome !== NO_LOCATION && outcome !== location) list.visit[list.visits++] = outcome;
  }
  list.plains = plains;
}

/** Bytes of a record copied into a snapshot, with the checksum they carried in the log. */
interface Part {
  readonly bytes: Uint8Array;
  readonly crc: number;
}

const NO_PART: Part = { bytes: EMPTY, crc: 0 };

/**
 * Writes the live state into a rewrite's output: one record per live job (its added record as
 * it is, header and all, if it never started, else a snapshot record), in the order of the
 * job's last record in the log, then the id lease. Finished jobs are thus written in the order
 * their outcomes were appended, which is the retention order replay rebuilds.
 *
 * LSNs: a copied record keeps its own; a snapshot takes the LSN of the record that completed it
 * (the job's last, where it is written); the lease takes the cut's, which is a lease record's
 * (Compactor.#appendLease). Every output record thus stands for a distinct source record, in
 * log order: its LSNs rise, as the engine requires. Runs of adjacent copied records are copied
 * with one copy (copyRecords); their atomic-group flags come along, and the lease record,
 * last and never in a group, closes any group they leave open.
 *
 * Only the live jobs' records are read (scanAt), and their payloads are not checked against
 * their checksums: a copied record keeps the checksum it carried, and a snapshot's is combined
 * from its parts' (crc32Combine). Damaged bytes thus stay damaged in the copy, where replay or a
 * read finds them, instead of being blessed by a fresh checksum.
 */
class SnapshotWriter {
  readonly #log: Log;
  readonly #live: LiveState;
  readonly #cut: number;
  readonly #stopping: () => boolean;
  /**
   * New location of each visited job (by captured slot), 0 until it is written (no record starts
   * at offset 0 of a segment: its header does); empty when no job is visited.
   */
  #newLocations = new Float64Array(0);
  /** Added records of jobs whose outcome record comes later in the scan (a copy each). */
  readonly #held = new Map<number, Part>();
  #heldBytes = 0;
  /** Where each snapshot header is encoded; out.writeCopy() copies it. */
  readonly #header = Buffer.allocUnsafe(SNAPSHOT_HEADER_SIZE);
  #output: RewriteOutput | undefined;
  readonly #turns = new Turns(MAX_TURN_MS);
  #sinceClock = 0;
  /** Captured slots of the jobs the scan copies, in the order they were listed (see #liveLocations)... */
  #plainSlots: Int32Array = new Int32Array(0);
  /** ...and where the scan copied them; the unindexed jobs' copies follow. */
  #copiedTo: Float64Array = new Float64Array(0);
  /** Captured slots of the jobs the scan visits (all live jobs but the copied ones). */
  #visitSlots: Int32Array = new Int32Array(0);
  /** 1 for each captured slot whose job was written as a snapshot record (sized like #newLocations). */
  #snapshotted = new Uint8Array(0);
  jobs = 0;

  constructor(log: Log, live: LiveState, cut: number, stopping: () => boolean) {
    this.#log = log;
    this.#live = live;
    this.#cut = cut;
    this.#stopping = stopping;
  }

  async write(output: RewriteOutput, signal: AbortSignal): Promise<void> {
    this.#output = output;
    // Only the records of live jobs are read: the dead stretches of the log are skipped. Jobs
    // that never started are copied by the scan itself, a run of adjacent ones at a time; the
    // others are visited.
    const { visit, copy } = await this.#liveLocations();
    // The copies' new locations replace their old ones in place (scanAt allows it; the old
    // ones are in the capture).
    this.#copiedTo = copy;
    const copied = await this.#log.scanAt(visit, (batch) => this.#visitBatch(batch), {
      verifyPayloads: false,
      copy: { locations: copy, into: output, newLocations: copy },
      signal,
    });
    this.jobs += copied;
    const leaseBound = this.#live.capture.leaseBound;
    if (leaseBound > 0) await output.write(encodeMeta(leaseBound), this.#cut);
    // A job missing here would be lost by the commit: refuse to commit instead.
    if (this.jobs !== this.#live.jobs) await this.#explainMissing();
    if (this.jobs !== this.#live.jobs) fail(`compaction found ${this.jobs} of ${this.#live.jobs} live jobs`);
  }

  /**
   * Where the live jobs' records are: `copy`, the added records of jobs that need no snapshot
   * and sit at their added record (replaying it alone rebuilds their state: they never
   * started, failed or stalled, and run-at changes only by a retry, which counts an attempt, or
   * by a snapshot's replay), and `visit`, the added (or snapshot) and last outcome records of
   * every other job, in no order. Jobs are listed in id order, and `copy` is then in log order
   * (added records are appended in id order, and compaction keeps that order), which spares
   * scanAt a sort of what is usually most of the live records and lets it say where each went
   * without a lookup; #plainSlots holds the captured slot of each.
   */
  async #liveLocations(): Promise<{ visit: Float64Array; copy: Float64Array }> {
    const capture = this.#live.capture;
    const order = capture.slots.slotsInIdOrder();
    const list: LiveList = {
      plainSlots: order,
      copy: new Float64Array(order.length + this.#live.unindexed.size),
      plains: 0,
      visitSlots: new Int32Array(order.length),
      visitJobs: 0,
      visit: new Float64Array(Math.max(16, Math.min(2 * order.length, 4096))),
      visits: 0,
    };
    // A slice at a time: a million jobs take tens of ms.
    await this.#inSlices(order.length, (from, to) => listLive(capture, order, from, to, list));
    this.#plainSlots = list.plainSlots.subarray(0, list.plains);
    this.#visitSlots = list.visitSlots.subarray(0, list.visitJobs);
    if (list.visitJobs > 0) {
      // Zeroed, not filled: only the pages of visited jobs are ever touched.
      this.#newLocations = new Float64Array(capture.highWater);
      this.#snapshotted = new Uint8Array(capture.highWater);
    }
    // Enqueued but not yet indexed: never started either, and appended after the others.
    let copies = list.plains;
    for (const job of this.#live.unindexed.values()) list.copy[copies++] = job.location;
    return { visit: list.visit.subarray(0, list.visits), copy: list.copy.subarray(0, copies) };
  }

  /**
   * Damage in the first bytes of a record (its kind or id) hides a live job from the unchecked
   * scan. Reading the missing jobs' records back checks them, so the damage is reported as a
   * CorruptionError naming its file and offset; if they all read fine, the caller's assert
   * reports a bug.
   */
  async #explainMissing(): Promise<void> {
    const capture = this.#live.capture;
    for (const slot of this.#visitSlots) {
      if (this.#newLocations[slot] !== 0) continue;
      await this.#log.read(capture.location(slot));
      if (capture.outcomeLocation(slot) !== NO_LOCATION) await this.#log.read(capture.outcomeLocation(slot));
    }
    // The scan copies every job asked for or fails; this is for completeness.
    const plains = this.#plainSlots.length;
    for (let at = 0; at < plains; at++) if (this.#copiedTo[at] === NO_LOCATION) await this.#log.read(capture.location(this.#plainSlots[at]!));
    let at = plains;
    for (const job of this.#live.unindexed.values()) if (this.#copiedTo[at++] === NO_LOCATION) await this.#log.read(job.location);
  }

  /**
   * Visits one batch of scanned records. Returns undefined when it finished without waiting,
   * so a batch of dead records costs no promise; otherwise continues asynchronously (a full
   * output buffer, a record read back, or a turn given to the event loop every MAX_TURN_MS).
   */
  #visitBatch(batch: ScanBatch, from = 0): Promise<void> | undefined {
    for (let at = from; at < batch.count; at++) {
      if ((++this.#sinceClock & (CLOCK_EVERY_RECORDS - 1)) === 0 && this.#turns.due) {
        return this.#turns.yield().then(() => this.#visitBatch(batch, at));
      }
      const waiting = this.#visit(batch, at);
      if (waiting !== undefined) return waiting.then(() => this.#visitBatch(batch, at + 1));
    }
    return undefined;
  }

  /** Decides, for one record of a live job that the scan did not copy, what to write for it. */
  #visit(batch: ScanBatch, at: number): Promise<void> | undefined {
    // Read from the batch here rather than passed in: locations and checksums above 2^31 would
    // be boxed at every call.
    const chunk = batch.chunk;
    const start = batch.starts[at]!;
    const end = batch.ends[at]!;
    const location = batch.locations[at]!;
    const crc = batch.payloadCrcs[at]!;
    const lsn = batch.lsns[at]!;
    const kind = chunk[start];
    // Transition and meta records are never copied: the snapshot carries their effect.
    if (kind !== RecordKind.added && kind !== RecordKind.snapshot && kind !== RecordKind.completed && kind !== RecordKind.failed) return undefined;
    if (end - start < 8) return undefined; // no room for an id: not a live job's record (the count check would catch a loss)
    const id = chunk.readUIntLE(start + 2, 6);
    const capture = this.#live.capture;
    const slot = capture.slots.get(id);
    if (slot === -1) return undefined; // not a captured job's (unindexed jobs are all copied)
    const outcomeLocation = capture.outcomeLocation(slot);
    if (capture.location(slot) === location) {
      if (kind !== RecordKind.snapshot) {
        const added = { bytes: chunk.subarray(start, end), crc };
        if (outcomeLocation !== NO_LOCATION) {
          this.#hold(id, added);
          return undefined;
        }
        return this.#emit(slot, lsn, added, NO_PART);
      }
      const outcomeLength = chunk.readUInt32LE(start + SNAPSHOT_OUTCOME_LENGTH_OFFSET);
      if (outcomeLocation === location || outcomeLength === 0) {
        // Everything after the old snapshot header is wanted: its checksum follows from the record's.
        const rest = chunk.subarray(start + SNAPSHOT_HEADER_SIZE, end);
        const restCrc = crc32WithoutPrefix(crc, crc32Range(chunk, start, start + SNAPSHOT_HEADER_SIZE), rest.length);
        if (outcomeLocation === NO_LOCATION && this.#isPlainAtSnapshot(slot, rest.readDoubleLE(ADDED_RUN_AT_OFFSET))) return this.#copyPlain(slot, lsn, { bytes: rest, crc: restCrc });
        if (outcomeLocation === location || outcomeLocation === NO_LOCATION) {
          return this.#emit(slot, lsn, { bytes: rest, crc: restCrc }, NO_PART, chunk.readUInt32LE(start + SNAPSHOT_ADDED_LENGTH_OFFSET), outcomeLength);
        }
        this.#hold(id, { bytes: rest, crc: restCrc });
        return undefined;
      }
      // The snapshot's outcome was superseded (its job was retried since): read the record
      // back, which checks it, and checksum the added part afresh.
      return this.#log.read(location).then((payload) => {
        const added = addedPart(payload);
        const part = { bytes: added, crc: crc32(added) };
        if (outcomeLocation === NO_LOCATION) return this.#emit(slot, lsn, part, NO_PART);
        this.#hold(id, part);
        return undefined;
      });
    }
    // Any other outcome record of a live job was superseded by a later one.
    if (outcomeLocation !== location) return undefined;
    const outcome = { bytes: chunk.subarray(start, end), crc };
    const held = this.#held.get(id);
    if (held !== undefined) {
      this.#held.delete(id);
      this.#heldBytes -= held.bytes.length;
      return this.#emit(slot, lsn, held, outcome);
    }
    // Not held (over budget): read it back (checked). The segments being replaced stay readable,
    // and the scan keeps `chunk` valid until this promise settles.
    return this.#log.read(capture.location(slot)).then((payload) => {
      const added = addedPart(payload);
      return this.#emit(slot, lsn, { bytes: added, crc: crc32(added) }, outcome);
    });
  }

  /**
   * For a job at a snapshot record whose added part holds `addedRunAt`: true when replaying that
   * added part alone rebuilds the job's captured state (it needs no snapshot, and its run-at is
   * still the one it was enqueued with). A job released by close() after a compaction wrote it
   * active is like this.
   */
  #isPlainAtSnapshot(slot: number, addedRunAt: number): boolean {
    const capture = this.#live.capture;
    return capture.needsSnapshot(slot) === 0 && capture.runAt(slot) === addedRunAt;
  }

  /** Copies the added part of a plain job at a snapshot record (see #isPlainAtSnapshot) into the output. */
  #copyPlain(slot: number, lsn: number, added: Part): Promise<void> | undefined {
    if (this.#stopping()) throw new ClosedError('queue');
    this.#newLocations[slot] = this.#output!.writeCopyAt(lsn, added.crc, added.bytes);
    this.jobs++;
    return this.#flushIfFull();
  }

  #flushIfFull(): Promise<void> | undefined {
    const output = this.#output!;
    return output.needsFlush ? output.flush() : undefined;
  }

  #hold(id: number, added: Part): void {
    if (this.#heldBytes + added.bytes.length > HOLD_BUDGET_BYTES) return;
    this.#held.set(id, { bytes: Buffer.from(added.bytes), crc: added.crc });
    this.#heldBytes += added.bytes.length;
  }

  /**
   * Writes the snapshot of the captured job in `slot`: its added record, then its outcome
   * record (if any), copied into the output. `added` may hold both (a snapshot's parts, already
   * together): the lengths then say where one ends.
   */
  #emit(slot: number, lsn: number, added: Part, outcome: Part, addedLength = added.bytes.length, outcomeLength = outcome.bytes.length): Promise<void> | undefined {
    const capture = this.#live.capture;
    const id = capture.id(slot);
    if (recordId(added.bytes) !== id) fail(`added record of job ${recordId(added.bytes)} for job ${id}`);
    const state = { state: capture.state(slot) as StateCode, attemptsMade: capture.attemptsMade(slot), stalls: capture.stalls(slot), runAt: capture.runAt(slot) };
    const written = this.#writeSnapshot(id, lsn, state, added, outcome, addedLength, outcomeLength);
    this.#newLocations[slot] = written.location;
    this.#snapshotted[slot] = 1;
    this.jobs++;
    return written.flushed;
  }

  /**
   * Copies one snapshot record (a header, then `first` and `second` back to back) into the
   * output now; returns its location and, when the output's buffer is full, the flush to wait for.
   */
  #writeSnapshot(id: number, lsn: number, state: SnapshotState, first: Part, second: Part, addedLength: number, outcomeLength: number): { location: number; flushed: Promise<void> | undefined } {
    // close() is waiting: give up; the rewrite removes its unfinished output.
    if (this.#stopping()) throw new ClosedError('queue');
    assert(addedLength + outcomeLength === first.bytes.length + second.bytes.length, 'snapshot parts and lengths disagree');
    const header = this.#header;
    encodeSnapshotHeader(header, 0, id, state, addedLength, outcomeLength);
    let crc = crc32Combine(crc32(header), first.crc, first.bytes.length);
    if (second.bytes.length > 0) crc = crc32Combine(crc, second.crc, second.bytes.length);
    const output = this.#output!;
    const location = output.writeCopyAt(lsn, crc, header, first.bytes, second.bytes);
    return { location, flushed: this.#flushIfFull() };
  }

  /**
   * Once the rewrite has committed: points every job still in the index at what was written for
   * it (its copy or its snapshot record), for each of its two locations that has not changed
   * since the cut. A job that completed after the cut keeps its new outcome location; a job
   * that is gone is skipped. Runs in slices that let the event loop in (a million jobs take
   * tens of ms): each job is relocated in one step, and until then its old location stays
   * readable (the engine keeps the replaced segments until the next rewrite, which waits for
   * this one).
   */
  async relocate(index: JobIndex): Promise<void> {
    const capture = this.#live.capture;
    await this.#inSlices(this.#plainSlots.length, (from, to) => index.relocateCaptured(capture, this.#plainSlots, this.#copiedTo, undefined, from, to));
    const visitSlots = this.#visitSlots;
    const newLocations = new Float64Array(visitSlots.length);
    const snapshotted = new Uint8Array(visitSlots.length);
    for (let at = 0; at < visitSlots.length; at++) {
      const written = this.#newLocations[visitSlots[at]!]!;
      newLocations[at] = written === 0 ? NO_LOCATION : written;
      snapshotted[at] = this.#snapshotted[visitSlots[at]!]!;
    }
    await this.#inSlices(visitSlots.length, (from, to) => index.relocateCaptured(capture, visitSlots, newLocations, snapshotted, from, to));
    let at = this.#plainSlots.length;
    for (const [id, job] of this.#live.unindexed) {
      const newLocation = this.#copiedTo[at++]!;
      const slot = index.slotOf(id);
      if (slot === -1 || index.location(slot) !== job.location) continue;
      if (newLocation === NO_LOCATION) fail(`job ${id} was not copied`);
      index.relocate(slot, newLocation, index.outcomeLocation(slot), false);
    }
  }

  /** Calls work(from, to) for [0, count) a slice at a time, giving the event loop turns. */
  async #inSlices(count: number, work: (from: number, to: number) => void): Promise<void> {
    for (let from = 0; from < count; from += SLICE_SLOTS) {
      await this.#turns.give();
      work(from, Math.min(count, from + SLICE_SLOTS));
    }
  }
}
