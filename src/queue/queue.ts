// Queue: the public job queue on top of one Log. It owns the lifecycle (open = replay the log
// into the index, settle the jobs the last process left running; close = stop compacting and
// dispatching, wait or release, close the log), enqueueing (encode, append, then index), reads
// (getJob, counts, stats),
// hands running jobs to the Dispatcher, and lets the Compactor rewrite the log. Semantics:
// docs/queue.md and docs/compaction.md.
import { EventEmitter } from 'node:events';
import { verify, fail } from '../engine/assert.ts';
import { Log, locationAfter } from '../engine/log.ts';
import type { Durability } from '../engine/log.ts';
import { ClosedError, PoisonedError, StalledError } from '../errors.ts';
import { Compactor } from './compaction.ts';
import type { CompactionReport, QueueStats, UnindexedBatch } from './compaction.ts';
import { Dispatcher } from './dispatcher.ts';
import { encodeData, type EncodedData } from './job-data.ts';
import { JobIndex, NO_LOCATION, stateName } from './job-index.ts';
import {
  RecordKind,
  StateCode,
  addedPart,
  assertTransition,
  decodeAdded,
  decodeCompleted,
  decodeFailed,
  encodeAdded,
  encodeFailed,
  encodeMeta,
  encodeStalled,
  outcomePart,
} from './job-records.ts';
import { replayRecord } from './job-replay.ts';
import { jobData, jobErrorOf, jobResultOf, jobView } from './job-view.ts';
import type { DefaultJobMap, EnqueueItem, Job, JobCounts, JobError, JobMap, JobOptions, Processor, ProcessorOptions } from './job.ts';
import { PayloadCache } from './payload-cache.ts';
import type { QueueEvents } from './queue-events.ts';
import {
  checkJobName,
  resolveJobOptions,
  resolveQueueOptions,
  type QueueOptions,
  type ResolvedJobOptions,
  type ResolvedQueueOptions,
} from './queue-options.ts';

/** Options of `close()`. */
export interface CloseOptions {
  /**
   * How long to wait for running jobs, in ms. When it passes, their signals are aborted (with a
   * `ClosedError`) and they are released back to pending, to run again at the next open without
   * counting a stall or an attempt; whatever they return later is discarded.
   * @default wait as long as they run
   */
  readonly timeoutMs?: number | undefined;
}

/** Smallest maxRecordSize a queue accepts: every outcome record must fit (results are dropped if not). */
const MIN_MAX_RECORD_SIZE = 1024;
const DURABILITY_RANK: Record<Durability, number> = { none: 0, interval: 1, sync: 2 };
/** Ids leased per meta record (see #leaseIds). */
const ID_LEASE = 65_536;
const SYNC = { durability: 'sync' } as const;

/** An enqueue whose record is appended but not yet acknowledged: dedup must wait for it. */
interface InflightKey {
  readonly id: number;
  readonly acknowledged: Promise<void>;
}

/** A job of an enqueue call, encoded and given its id; indexed once the append is acknowledged. */
interface PreparedJob {
  readonly id: number;
  readonly record: Buffer;
  readonly priority: number;
  readonly runAt: number;
  readonly key: string;
}

/**
 * A persistent job queue in a directory. `J` maps job names to their data types, so
 * `enqueue('email', data)` checks `data` against `J['email']` and processors receive a job
 * union discriminated by `name`.
 *
 * @example
 * ```ts
 * const queue = await Queue.open<{ email: { to: string } }>('./jobs');
 * queue.registerProcessor(async (job, signal) => sendMail(job.data.to, { signal }), { concurrency: 4 });
 * await queue.enqueue('email', { to: 'a@example.com' }, { attempts: 3, backoff: { type: 'exponential', delayMs: 1000 } });
 * ```
 */
export class Queue<J extends JobMap = DefaultJobMap> extends EventEmitter<QueueEvents<J>> {
  readonly #log: Log;
  readonly #index: JobIndex;
  readonly #options: ResolvedQueueOptions;
  readonly #cache: PayloadCache;
  readonly #dispatcher: Dispatcher;
  readonly #compactor: Compactor;
  readonly #inflightKeys = new Map<string, InflightKey>();
  /** Enqueues appended but not yet indexed: a compaction cutting the log now must keep them. */
  readonly #unindexed = new Set<UnindexedBatch>();
  /** The meta record of the latest id lease, until it is synced. */
  #leaseSyncing: Promise<void> | undefined;
  #status: 'open' | 'closing' | 'closed' = 'open';
  #closing: Promise<void> | undefined;

  private constructor(log: Log, index: JobIndex, options: ResolvedQueueOptions) {
    super();
    this.#log = log;
    this.#index = index;
    this.#options = options;
    this.#cache = new PayloadCache(options.payloadCacheBytes);
    const compactor = new Compactor({
      log,
      index,
      policy: options.compaction,
      unindexed: () => this.#unindexed,
      accepting: () => this.#status === 'open',
      compacted: (report) => this.#emitSafely('compacted', report),
    });
    this.#compactor = compactor;
    this.#dispatcher = new Dispatcher({
      log,
      index,
      cache: this.#cache,
      events: this as unknown as EventEmitter<QueueEvents<DefaultJobMap>>,
      appended: (payloadBytes) => compactor.noteAppended(payloadBytes),
      read: (location) => compactor.read(location),
    });
    log.on('poisoned', (error) => this.#dispatcher.fail(error));
  }

  /**
   * Opens (creating if needed) the queue in `directory`: takes the directory lock, replays the
   * log into memory, and settles the jobs a previous process left active: each goes back to
   * pending with one more stall, or fails with a `StalledError` once past its `maxStalls`.
   * @throws LockedError when another process or queue holds the directory.
   * @throws CorruptionError for damage that is not a torn tail (see `repair`).
   * @throws TypeError / RangeError for invalid options, before anything is written.
   */
  static async open<J extends JobMap = DefaultJobMap>(directory: string, options?: QueueOptions): Promise<Queue<J>> {
    const resolved = resolveQueueOptions(options);
    const given = options ?? {};
    if (given.maxRecordSize !== undefined && typeof given.maxRecordSize === 'number' && given.maxRecordSize < MIN_MAX_RECORD_SIZE) {
      throw new RangeError(`maxRecordSize must be at least ${MIN_MAX_RECORD_SIZE} for a queue, got ${given.maxRecordSize}`);
    }
    const index = new JobIndex(resolved.retention);
    const replayNow = Date.now();
    const log = await Log.open(directory, {
      durability: resolved.durability,
      syncIntervalMs: given.syncIntervalMs,
      segmentSize: given.segmentSize,
      maxRecordSize: given.maxRecordSize,
      maxBatchBytes: given.maxBatchBytes,
      repair: given.repair,
      lock: given.lock,
      fileSystem: given.fileSystem,
      onRecord: (payload, _lsn, location) => replayRecord(index, payload, location, replayNow, directory),
    });
    try {
      await settleStalledJobs(log, index, resolved.durability);
      index.finishReplay(Date.now());
    } catch (error) {
      await log.close().catch(() => undefined);
      throw error;
    }
    const queue = new Queue<J>(log, index, resolved);
    queue.#dispatcher.start();
    return queue;
  }

  /** `'open'` until `close()` is called, `'closing'` while it runs, then `'closed'`. */
  get status(): 'open' | 'closing' | 'closed' {
    return this.#status;
  }

  // -------------------------------------------------------------------------------------------
  // Enqueue

  /**
   * Adds a job and resolves with its id once its record is as durable as `options.durability`
   * (else the queue's) asks. With a `key` held by a pending, delayed or active job, adds
   * nothing and resolves with that job's id.
   * @throws TypeError / RangeError for an invalid name, data or options (nothing is written).
   * @throws RecordTooLargeError when the encoded job exceeds `maxRecordSize` (nothing is written).
   * @throws ClosedError after close(); PoisonedError after an I/O failure.
   */
  async enqueue<N extends keyof J & string>(name: N, data: J[N], options?: JobOptions): Promise<number> {
    const ids = await this.#enqueue([{ name, data, options }]);
    return ids[0]!;
  }

  /**
   * Adds several jobs atomically: after a crash either all of them are in the queue or none.
   * Resolves with their ids in order (a deduplicated item gets the id of the job holding its
   * key, also when an earlier item of the same call holds it).
   */
  async enqueueMany(items: readonly EnqueueItem<J>[]): Promise<number[]> {
    if (!Array.isArray(items)) throw new TypeError('enqueueMany takes an array');
    return this.#enqueue(items as readonly EnqueueItem<DefaultJobMap>[]);
  }

  async #enqueue(items: readonly EnqueueItem<DefaultJobMap>[]): Promise<number[]> {
    this.#assertAccepting();
    const count = items.length;
    if (count === 0) return [];
    const now = Date.now();
    const defaults = this.#options.jobDefaults;
    // Validate and encode every item before anything is appended: one bad item refuses all.
    const names = new Array<string>(count);
    const options = new Array<ResolvedJobOptions>(count);
    const data = new Array<EncodedData>(count);
    for (let at = 0; at < count; at++) {
      const item = items[at];
      if (typeof item !== 'object' || item === null) throw new TypeError('each item must be an object { name, data, options? }');
      names[at] = checkJobName(item.name);
      options[at] = resolveJobOptions(item.options, defaults, now);
      data[at] = encodeData(item.data);
    }
    const ids = new Array<number>(count);
    const fresh: PreparedJob[] = [];
    const waits: Promise<void>[] = [];
    let batchKeys: Map<string, number> | undefined;
    let durability: Durability | undefined;
    for (let at = 0; at < count; at++) {
      const jobOptions = options[at]!;
      const key = jobOptions.key;
      const wanted = jobOptions.durability ?? this.#options.durability;
      if (key !== '') {
        const existing = this.#existingForKey(key, batchKeys, waits);
        if (existing !== undefined) {
          // The holder may have been acknowledged at a weaker durability than this call asks for.
          if (wanted === 'sync') waits.push(this.#log.sync());
          ids[at] = existing;
          continue;
        }
      }
      const id = this.#index.reserveId();
      const runAt = jobOptions.runAt ?? now;
      fresh.push({ id, record: encodeAdded(id, names[at]!, now, runAt, jobOptions, data[at]!), priority: jobOptions.priority, runAt, key });
      if (key !== '') (batchKeys ??= new Map()).set(key, id);
      ids[at] = id;
      durability = strongest(durability, wanted);
    }
    if (fresh.length > 0) waits.push(this.#appendAdded(fresh, durability));
    if (waits.length === 1) await waits[0];
    else await Promise.all(waits);
    return ids;
  }

  /** The id holding `key`, from this call, an unacknowledged enqueue (waited for) or the index. */
  #existingForKey(key: string, batchKeys: Map<string, number> | undefined, waits: Promise<void>[]): number | undefined {
    const inBatch = batchKeys?.get(key);
    if (inBatch !== undefined) return inBatch;
    const inflight = this.#inflightKeys.get(key);
    if (inflight !== undefined) {
      waits.push(inflight.acknowledged);
      return inflight.id;
    }
    return this.#index.idForKey(key);
  }

  /**
   * Ids must never be handed out twice, even when a power cut loses acknowledged jobs (in
   * 'none' or 'interval' durability) along with every trace of their ids. So ids are leased in
   * blocks: before an id past the current lease is acknowledged, a meta record raising the
   * lease is fsynced, and the next open starts above it. One fsync per ID_LEASE ids; the cost
   * is a gap in the ids after each reopen.
   */
  #leaseIds(highestId: number): Promise<void> | undefined {
    const index = this.#index;
    if (highestId < index.leaseBound) return this.#leaseSyncing;
    const bound = highestId + 1 + ID_LEASE;
    index.noteLease(bound);
    // Every enqueue until this record is synced waits for it, not only the one that crossed.
    const meta = encodeMeta(bound);
    const syncing = this.#log.append(meta, SYNC);
    this.#compactor.noteAppended(meta.length);
    this.#leaseSyncing = syncing;
    const done = (): void => {
      if (this.#leaseSyncing === syncing) this.#leaseSyncing = undefined;
    };
    syncing.then(done, done);
    return syncing;
  }

  /**
   * Appends the added records (one record, or one atomic group) and the id lease they need, and
   * indexes the jobs once both are acknowledged (so none is dispatched before its enqueue
   * resolves). The lease record follows the jobs' records, so an append the log refuses without
   * writing (too large, closed) writes no lease either; no enqueue resolves before the lease is
   * synced, so the order is safe.
   */
  #appendAdded(jobs: PreparedJob[], durability: Durability | undefined): Promise<void> {
    const records = jobs.map((job) => job.record);
    const options = durability === this.#options.durability ? undefined : { durability };
    const lsnBefore = this.#log.lastLsn;
    const appended = records.length === 1 ? this.#log.append(records[0]!, options) : this.#log.appendGroup(records, options);
    if (this.#log.lastLsn === lsnBefore) return appended;
    const firstLocation = this.#log.lastLocation;
    const lease = this.#leaseIds(jobs[jobs.length - 1]!.id);
    const written = lease === undefined ? appended : Promise.all([appended, lease]).then(() => undefined);
    const batch: { firstLocation: number; jobs: PreparedJob[]; acknowledged: Promise<void> } = { firstLocation, jobs, acknowledged: written };
    const acknowledged = written.then(
      () => this.#indexAdded(batch),
      (error: unknown) => {
        this.#unindexed.delete(batch);
        for (const job of jobs) this.#releaseInflightKey(job);
        throw error;
      },
    );
    batch.acknowledged = acknowledged;
    this.#unindexed.add(batch);
    for (const job of jobs) {
      if (job.key !== '') this.#inflightKeys.set(job.key, { id: job.id, acknowledged });
    }
    let appendedBytes = 0;
    for (const record of records) appendedBytes += record.length;
    this.#compactor.noteAppended(appendedBytes);
    return acknowledged;
  }

  #indexAdded(batch: UnindexedBatch & { jobs: PreparedJob[] }): void {
    this.#unindexed.delete(batch);
    let location = batch.firstLocation;
    const now = Date.now();
    for (const job of batch.jobs) {
      assertTransition(RecordKind.added, StateCode.none, 0, 0);
      const slot = this.#index.add(job.id, job.priority, job.runAt, location, job.key, now, job.record.length);
      if (job.key !== '') this.#releaseInflightKey(job);
      this.#cache.offer(slot, job.record);
      location = locationAfter(location, job.record.length);
    }
    this.#dispatcher.pump();
  }

  #releaseInflightKey(job: PreparedJob): void {
    const key = job.key;
    if (key !== '' && this.#inflightKeys.get(key)?.id === job.id) this.#inflightKeys.delete(key);
  }

  // -------------------------------------------------------------------------------------------
  // Processors

  /**
   * Registers a processor for every job name and returns its id. Each processor runs up to
   * `concurrency` jobs at once; several processors share the pending jobs round-robin.
   * @throws ClosedError once close() was called.
   */
  registerProcessor(processor: Processor<J>, options?: ProcessorOptions): number {
    if (this.#status !== 'open') throw new ClosedError('queue');
    if (typeof processor !== 'function') throw new TypeError('processor must be a function');
    let concurrency = 1;
    if (options !== undefined) {
      if (typeof options !== 'object' || options === null) throw new TypeError('processor options must be an object');
      if (options.concurrency !== undefined) {
        if (typeof options.concurrency !== 'number') throw new TypeError('concurrency must be a number');
        if (!Number.isInteger(options.concurrency) || !(options.concurrency >= 1 && options.concurrency <= 1_000_000)) {
          throw new RangeError(`concurrency must be an integer from 1 to 1000000, got ${options.concurrency}`);
        }
        concurrency = options.concurrency;
      }
    }
    return this.#dispatcher.register(processor as Processor, concurrency);
  }

  /** Gives the processor no new jobs; the jobs it is running finish. False for an unknown id. */
  unregisterProcessor(processorId: number): boolean {
    return this.#dispatcher.unregister(processorId);
  }

  /** Stops handing out jobs (running jobs go on); enqueue still works. Not persisted. */
  pause(): void {
    this.#dispatcher.pause();
  }

  resume(): void {
    this.#dispatcher.resume();
  }

  /** True between pause() and resume(). */
  get paused(): boolean {
    return this.#dispatcher.paused;
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  /**
   * The job as it is now, or undefined when no such job is kept (never enqueued, or removed by
   * retention). Reads its data (and result or error) back from the log unless cached.
   * @throws ClosedError once closed.
   */
  async getJob(id: number): Promise<Job<J> | undefined> {
    this.#assertNotClosed();
    if (typeof id !== 'number') throw new TypeError(`job id must be a number, got ${typeof id}`);
    const index = this.#index;
    index.promoteDue(Date.now());
    const slot = index.slotOf(id);
    if (slot === -1) return undefined;
    // Snapshot the index fields now: the job may move on while the reads below run.
    const state = index.state(slot);
    const attemptsMade = index.attemptsMade(slot);
    const fields = { runAt: index.runAt(slot), stalls: index.stalls(slot) };
    const location = index.location(slot);
    const outcomeLocation = index.outcomeLocation(slot);
    const cached = this.#cache.get(slot);
    // After a compaction both parts may be in one snapshot record: read it once.
    const addedRead = cached ?? this.#compactor.read(location);
    const [addedPayload, outcomePayload] = await Promise.all([
      addedRead,
      outcomeLocation === NO_LOCATION ? undefined : outcomeLocation === location ? addedRead : this.#compactor.read(outcomeLocation),
    ]);
    const added = decodeAdded(addedPart(addedPayload));
    if (added.id !== id) fail(`record of job ${added.id} read for job ${id}`);
    let finishedAt: number | undefined;
    let result: unknown;
    let error: JobError | undefined;
    const outcome = outcomePayload === undefined ? undefined : outcomePart(outcomePayload);
    if (outcome !== undefined && outcome.length > 0) {
      if (outcome[0] === RecordKind.completed) {
        const completed = decodeCompleted(outcome);
        finishedAt = completed.finishedAt;
        result = jobResultOf(completed);
      } else {
        const failed = decodeFailed(outcome);
        if (state === StateCode.failed) finishedAt = failed.finishedAt;
        error = jobErrorOf(failed);
      }
    }
    const job = jobView(added, jobData(added), {
      state: stateName(state),
      attempt: state === StateCode.active ? attemptsMade + 1 : attemptsMade,
      ...fields,
      finishedAt,
      result,
      error,
    });
    return job as Job<J>;
  }

  /** Jobs per state, from memory. @throws ClosedError once closed. */
  counts(): JobCounts {
    this.#assertNotClosed();
    this.#index.promoteDue(Date.now());
    return this.#index.counts();
  }

  /** The log's size, the part of it that is live, and what compaction has done. From memory. @throws ClosedError once closed. */
  stats(): QueueStats {
    this.#assertNotClosed();
    const log = this.#log.stats();
    return { logBytes: log.sizeBytes, segments: log.segments, liveBytes: this.#compactor.liveBytes, compaction: this.#compactor.stats() };
  }

  // -------------------------------------------------------------------------------------------
  // Compaction

  /**
   * Rewrites the log to hold only what is live (pending, delayed, active and retained jobs, and
   * the id lease) and deletes the rest, while enqueueing and processing go on. A crash at any
   * moment leaves the queue as it was. Runs one at a time: a call while a compaction runs (also
   * an automatic one) returns that one's promise. Emits `'compacted'` with the same report.
   * @throws ClosedError once close() was called (a running compaction is abandoned by close).
   * @throws PoisonedError after an I/O failure; any I/O error of the compaction itself, which
   *   leaves the log as it was.
   */
  compact(): Promise<CompactionReport> {
    return this.#compactor.compact();
  }

  // -------------------------------------------------------------------------------------------
  // Lifecycle

  /**
   * Stops dispatching, waits for running jobs (up to `timeoutMs`, then releases them), writes
   * everything out, fsyncs and releases the directory lock. Later calls return the same
   * promise. Enqueues started before close() complete normally.
   */
  close(options?: CloseOptions): Promise<void> {
    if (this.#closing === undefined) {
      let timeoutMs: number | undefined;
      try {
        timeoutMs = closeTimeout(options);
      } catch (error) {
        return Promise.reject(error);
      }
      this.#closing = this.#close(timeoutMs);
    }
    return this.#closing;
  }

  async #close(timeoutMs: number | undefined): Promise<void> {
    this.#status = 'closing';
    try {
      await this.#compactor.stop();
      await this.#dispatcher.stop(timeoutMs);
      verify(() => this.#index.check());
      await this.#log.close();
    } finally {
      this.#status = 'closed';
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Emits an event whose listener may throw: the throw surfaces as an uncaught exception, not here. */
  #emitSafely<K extends keyof QueueEvents<J>>(event: K, ...args: QueueEvents<J>[K]): void {
    try {
      (this.emit as (event: K, ...args: QueueEvents<J>[K]) => boolean)(event, ...args);
    } catch (error) {
      process.nextTick(() => {
        throw error;
      });
    }
  }

  #assertAccepting(): void {
    if (this.#status !== 'open') throw new ClosedError('queue');
    const failure = this.#log.poisonedBy;
    if (failure !== undefined) throw new PoisonedError(failure);
  }

  #assertNotClosed(): void {
    if (this.#status === 'closed') throw new ClosedError('queue');
  }
}

function strongest(current: Durability | undefined, next: Durability): Durability {
  return current === undefined || DURABILITY_RANK[next] > DURABILITY_RANK[current] ? next : current;
}

function closeTimeout(options: CloseOptions | undefined): number | undefined {
  if (options === undefined) return undefined;
  if (typeof options !== 'object' || options === null) throw new TypeError('close options must be an object');
  if (options.timeoutMs === undefined) return undefined;
  if (typeof options.timeoutMs !== 'number') throw new TypeError('timeoutMs must be a number');
  if (!(options.timeoutMs >= 0)) throw new RangeError(`timeoutMs must be ≥ 0, got ${options.timeoutMs}`);
  return options.timeoutMs;
}

/**
 * Marks `promise` as handled now, for a caller that awaits it only later: if an await in
 * between throws first, its rejection must not become an unhandled one (which kills the process
 * under Node's default) — the caller's later await still sees it.
 */
function settledLater<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/**
 * After replay, the jobs still active are the ones the previous process was running when it
 * died (a clean close leaves none: it waits for them or releases them). Each is a stall: back to
 * pending with its stall count raised, or failed with a StalledError once past its maxStalls.
 * The record is awaited at the queue's durability so the count survives another crash at once.
 */
async function settleStalledJobs(log: Log, index: JobIndex, durability: Durability): Promise<void> {
  const slots = index.activeSlots();
  if (slots.length === 0) return;
  const now = Date.now();
  // Every read first, then every append in one synchronous pass: no append promise waits
  // unobserved while a read is pending (a disk failing between them would leave it unhandled).
  const payloads = await Promise.all(slots.map((slot) => log.read(index.location(slot))));
  const maxStalls = payloads.map((payload) => decodeAdded(addedPart(payload)).maxStalls);
  const appends: Promise<void>[] = [];
  for (const [at, slot] of slots.entries()) {
    const id = index.id(slot);
    const attempt = index.attemptsMade(slot) + 1;
    const stalls = index.stalls(slot) + 1;
    if (stalls > maxStalls[at]!) {
      assertTransition(RecordKind.failed, StateCode.active, attempt - 1, attempt);
      const error = new StalledError(id, stalls);
      const record = encodeFailed({ id, attempt, finishedAt: now, willRetry: false, retryAt: 0, stalled: true, error });
      appends.push(settledLater(log.append(record, { durability })));
      index.failed(slot, now, log.lastLocation, true, record.length);
    } else {
      assertTransition(RecordKind.stalled, StateCode.active, attempt - 1, attempt);
      appends.push(settledLater(log.append(encodeStalled(id, attempt, stalls), { durability })));
      index.requeued(slot, stalls, now);
    }
  }
  await Promise.all(appends);
}
