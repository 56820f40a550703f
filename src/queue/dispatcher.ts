// Runs jobs: the registered processors and their concurrency slots, one execution per running
// attempt (its AbortSignal, its timeout, its fencing), the timer of the earliest delayed job and
// the timer of the oldest retained job, and the records of each attempt's outcome.
//
// Promises:
// - A processor never runs more than `concurrency` handlers at once, counting handlers that
//   timed out but have not returned yet.
// - A job reaches a handler only after its started record was written (reached the OS), so a
//   crash while it runs always leaves that record on disk and the next open counts a stall.
// - Outcome records are appended without waiting for an fsync; the slot is free again as soon
//   as the outcome is appended (a lost completion only means the job runs again).
// - Fencing: once an attempt's outcome is decided (returned, threw, timed out, or released by
//   close), anything else that attempt produces is discarded.
import type { EventEmitter } from 'node:events';
import { assert, fail } from '../engine/assert.ts';
import type { Log } from '../engine/log.ts';
import { ClosedError, ErrorCode, TimeoutError } from '../errors.ts';
import { encodeResult } from './job-data.ts';
import type { JobIndex } from './job-index.ts';
import {
  RecordKind,
  StateCode,
  addedPart,
  assertTransition,
  decodeAdded,
  describeError,
  encodeCompleted,
  encodeFailed,
  encodeReleased,
  encodeStarted,
  type AddedRecord,
} from './job-records.ts';
import { jobData, jobView, withState } from './job-view.ts';
import type { DefaultJobMap, Job, JobError, Processor } from './job.ts';
import type { PayloadCache } from './payload-cache.ts';
import type { QueueEvents } from './queue-events.ts';
import { backoffDelayMs } from './retry-policy.ts';

/** What the dispatcher needs from the queue that owns it. */
export interface DispatcherHost {
  readonly log: Log;
  readonly index: JobIndex;
  readonly cache: PayloadCache;
  readonly events: EventEmitter<QueueEvents<DefaultJobMap>>;
  /** Called after each record the dispatcher appends, with its payload bytes (compaction's trigger counts them). */
  appended(payloadBytes: number): void;
  /** Reads a record by location (log.read, tracked so that compaction keeps its segment readable). */
  read(location: number): Promise<Buffer>;
}

interface ProcessorEntry {
  readonly id: number;
  readonly run: Processor;
  readonly concurrency: number;
  /** Handlers of this processor that have not returned yet. */
  running: number;
}

/** One attempt of one job, from its started record until its outcome is decided. */
interface Execution {
  readonly slot: number;
  readonly id: number;
  readonly attempt: number;
  readonly processor: ProcessorEntry;
  readonly controller: AbortController;
  added: AddedRecord | undefined;
  job: Job | undefined;
  timer: NodeJS.Timeout | undefined;
  /** The outcome is decided; whatever the attempt does later is discarded. */
  settled: boolean;
}

const NO_SYNC = { durability: 'none' } as const;
/** setTimeout's longest delay; a later due time re-arms when this one fires. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class Dispatcher {
  readonly #host: DispatcherHost;
  readonly #processors: ProcessorEntry[] = [];
  #cursor = 0;
  #nextProcessorId = 1;
  /** Attempts whose outcome is not decided yet, by job id. */
  readonly #executions = new Map<number, Execution>();
  readonly #idleWaiters: (() => void)[] = [];
  #paused = false;
  /** Closing or failed: nothing new is dispatched. */
  #stopped = false;
  #failure: Error | undefined;
  #delayTimer: NodeJS.Timeout | undefined;
  #delayTimerAt = Infinity;
  #expiryTimer: NodeJS.Timeout | undefined;
  #expiryTimerAt = Infinity;
  /** Outcome records appended so far; 'drained' is checked only after the latest one. */
  #outcomeSeq = 0;
  #drainedSent = true;

  constructor(host: DispatcherHost) {
    this.#host = host;
  }

  get paused(): boolean {
    return this.#paused;
  }

  /** The internal failure that stopped dispatching, if any. */
  get failure(): Error | undefined {
    return this.#failure;
  }

  // -------------------------------------------------------------------------------------------
  // Processors

  register(run: Processor, concurrency: number): number {
    const id = this.#nextProcessorId++;
    this.#processors.push({ id, run, concurrency, running: 0 });
    this.#updateTimerRefs();
    this.pump();
    return id;
  }

  /** No new jobs for it; its running handlers finish. Returns false for an unknown id. */
  unregister(id: number): boolean {
    const index = this.#processors.findIndex((entry) => entry.id === id);
    if (index === -1) return false;
    this.#processors.splice(index, 1);
    if (this.#cursor > index) this.#cursor--;
    this.#updateTimerRefs();
    return true;
  }

  pause(): void {
    this.#paused = true;
    this.#updateTimerRefs();
  }

  resume(): void {
    this.#paused = false;
    this.#updateTimerRefs();
    this.pump();
  }

  // -------------------------------------------------------------------------------------------
  // Dispatch

  /** Hands pending jobs to free processor slots, then re-arms the delay timer. O(log n) per job. */
  pump(): void {
    if (this.#stopped) return;
    const index = this.#host.index;
    const now = Date.now();
    if (!this.#paused && this.#processors.length > 0) {
      index.promoteDue(now);
      while (index.pendingCount > 0) {
        const processor = this.#freeProcessor();
        if (processor === undefined) break;
        this.#begin(index.startNext(), processor);
      }
    }
    this.#armDelayTimer(now);
  }

  /** Round-robin over processors with a free slot. */
  #freeProcessor(): ProcessorEntry | undefined {
    const count = this.#processors.length;
    for (let step = 0; step < count; step++) {
      const at = (this.#cursor + step) % count;
      const entry = this.#processors[at]!;
      if (entry.running < entry.concurrency) {
        this.#cursor = (at + 1) % count;
        return entry;
      }
    }
    return undefined;
  }

  #begin(slot: number, processor: ProcessorEntry): void {
    const { index, cache } = this.#host;
    assert(slot !== -1, 'startNext found a pending job');
    const id = index.id(slot);
    const attempt = index.attemptsMade(slot) + 1;
    // startNext asserted the job was pending; this is the append side of the pair.
    assertTransition(RecordKind.started, StateCode.pending, attempt - 1, attempt);
    const execution: Execution = {
      slot,
      id,
      attempt,
      processor,
      controller: new AbortController(),
      added: undefined,
      job: undefined,
      timer: undefined,
      settled: false,
    };
    processor.running++;
    this.#executions.set(id, execution);
    this.#drainedSent = false;
    const appended = this.#append(encodeStarted(id, attempt));
    if (appended === undefined) {
      // The log failed or closed under us; fail() has stopped dispatching.
      processor.running--;
      this.#settle(execution);
      return;
    }
    const cached = cache.take(slot);
    const onFailure = (error: unknown): void => this.#beginFailed(execution, error);
    if (cached !== undefined) {
      appended.then(() => this.#run(execution, cached), onFailure);
    } else {
      Promise.all([this.#host.read(index.location(slot)), appended]).then(([payload]) => this.#run(execution, payload), onFailure);
    }
  }

  #beginFailed(execution: Execution, error: unknown): void {
    execution.processor.running--;
    if (execution.settled) return; // released by close() meanwhile
    const log = this.#host.log;
    if (log.poisonedBy !== undefined || log.status !== 'open') {
      this.#settle(execution);
      this.fail(toError(error));
      return;
    }
    // The job's record could not be read back (damage on disk): it cannot run, ever.
    this.#recordFailure(execution, error);
    this.#emitError(toError(error));
    this.pump();
  }

  #run(execution: Execution, payload: Buffer): void {
    if (execution.settled) {
      execution.processor.running--;
      return;
    }
    const index = this.#host.index;
    let job: Job;
    try {
      const added = decodeAdded(addedPart(payload));
      if (added.id !== execution.id) fail(`record of job ${added.id} read for job ${execution.id}`);
      execution.added = added;
      job = jobView(added, jobData(added), {
        state: 'active',
        attempt: execution.attempt,
        runAt: index.runAt(execution.slot),
        stalls: index.stalls(execution.slot),
      });
    } catch (error) {
      execution.processor.running--;
      this.#recordFailure(execution, error);
      this.pump();
      return;
    }
    execution.job = job;
    const timeoutMs = execution.added.timeoutMs;
    if (timeoutMs > 0) execution.timer = setTimeout(() => this.#timeOut(execution, timeoutMs), timeoutMs);
    if (this.#host.events.listenerCount('active') > 0) this.#emit('active', job);
    const run = execution.processor.run;
    let returned: unknown;
    try {
      returned = run(job, execution.controller.signal);
    } catch (error) {
      this.#handlerReturned(execution, false, error);
      return;
    }
    if (isPromiseLike(returned)) {
      returned.then(
        (value) => this.#handlerReturned(execution, true, value),
        (error: unknown) => this.#handlerReturned(execution, false, error),
      );
    } else {
      this.#handlerReturned(execution, true, returned);
    }
  }

  #handlerReturned(execution: Execution, ok: boolean, value: unknown): void {
    execution.processor.running--;
    if (ok) this.#recordCompletion(execution, value);
    else this.#recordFailure(execution, value);
    this.pump();
  }

  #timeOut(execution: Execution, timeoutMs: number): void {
    execution.timer = undefined;
    if (execution.settled) return;
    const error = new TimeoutError(timeoutMs, execution.id);
    // Decide the outcome first, so that whatever the abort listeners do is already fenced.
    this.#recordFailure(execution, error);
    execution.controller.abort(error);
    this.pump();
  }

  // -------------------------------------------------------------------------------------------
  // Outcomes

  #recordCompletion(execution: Execution, value: unknown): void {
    if (execution.settled) return; // fenced: timed out or released
    this.#settle(execution);
    const { index, log } = this.#host;
    const { slot, id, attempt } = execution;
    assertTransition(RecordKind.completed, index.state(slot), index.attemptsMade(slot), attempt);
    const finishedAt = Date.now();
    let record = encodeCompleted(id, attempt, finishedAt, encodeResult(value));
    let appended = this.#append(record);
    // Refused without a write: the result alone is above maxRecordSize, so keep the job's
    // completion and drop its result.
    if (appended === undefined && this.#canAppend()) {
      record = encodeCompleted(id, attempt, finishedAt, undefined);
      appended = this.#append(record);
    }
    if (appended === undefined) return;
    index.completed(slot, finishedAt, log.lastLocation, record.length);
    this.#armExpiryTimer();
    const seq = ++this.#outcomeSeq;
    appended.then(
      () => {
        if (this.#host.events.listenerCount('completed') > 0) {
          this.#emit('completed', withState(execution.job!, { state: 'completed', finishedAt, result: value }), value);
        }
        this.#checkDrained(seq);
      },
      (error: unknown) => this.fail(toError(error)),
    );
  }

  #recordFailure(execution: Execution, thrown: unknown): void {
    if (execution.settled) return; // fenced: timed out or released
    this.#settle(execution);
    const { index, log } = this.#host;
    const { slot, id, attempt, added } = execution;
    assertTransition(RecordKind.failed, index.state(slot), index.attemptsMade(slot), attempt);
    const now = Date.now();
    const error = toError(thrown);
    const willRetry = added !== undefined && !isUnrecoverable(error) && attempt < added.maxAttempts;
    const retryAt = willRetry ? now + backoffDelayMs(added.backoff, attempt) : 0;
    const fields = { id, attempt, finishedAt: now, willRetry, retryAt, stalled: false };
    let record = encodeFailed({ ...fields, error });
    let appended = this.#append(record);
    // Refused without a write: even the truncated stack is above maxRecordSize.
    if (appended === undefined && this.#canAppend()) {
      record = encodeFailed({ ...fields, error: leanError(error) });
      appended = this.#append(record);
    }
    if (appended === undefined) return;
    const location = log.lastLocation;
    if (willRetry) index.retrying(slot, retryAt, location, now, record.length);
    else index.failed(slot, now, location, false, record.length);
    this.#armExpiryTimer();
    const seq = ++this.#outcomeSeq;
    appended.then(
      () => {
        const job = execution.job;
        if (job !== undefined) this.#emitFailure(job, error, willRetry, retryAt, now);
        this.#checkDrained(seq);
      },
      (failure: unknown) => this.fail(toError(failure)),
    );
  }

  #emitFailure(job: Job, error: Error, willRetry: boolean, retryAt: number, finishedAt: number): void {
    const jobError = jobErrorFrom(error);
    if (willRetry) {
      if (this.#host.events.listenerCount('retrying') === 0) return;
      const state = retryAt > Date.now() ? 'delayed' : 'pending';
      this.#emit('retrying', withState(job, { state, runAt: retryAt, error: jobError }), error, retryAt);
    } else {
      if (this.#host.events.listenerCount('failed') === 0) return;
      this.#emit('failed', withState(job, { state: 'failed', finishedAt, error: jobError }), error);
    }
  }

  #checkDrained(seq: number): void {
    if (seq !== this.#outcomeSeq || this.#drainedSent) return;
    const index = this.#host.index;
    if (index.pendingCount > 0 || index.activeCount > 0 || this.#executions.size > 0) return;
    this.#drainedSent = true;
    this.#emit('drained');
  }

  /** Marks the attempt's outcome decided: later results of the attempt are discarded. */
  #settle(execution: Execution): void {
    execution.settled = true;
    if (execution.timer !== undefined) clearTimeout(execution.timer);
    execution.timer = undefined;
    this.#executions.delete(execution.id);
    if (this.#executions.size === 0) {
      for (const wake of this.#idleWaiters.splice(0)) wake();
    }
  }

  #canAppend(): boolean {
    const log = this.#host.log;
    return log.status === 'open' && log.poisonedBy === undefined;
  }

  /**
   * Appends an attempt record without waiting for an fsync. Returns undefined when the log
   * refused it without writing: closed, poisoned (then dispatching stops), or too large.
   */
  #append(payload: Buffer): Promise<void> | undefined {
    const log = this.#host.log;
    if (log.status !== 'open') return undefined;
    const poison = log.poisonedBy;
    if (poison !== undefined) {
      this.fail(poison);
      return undefined;
    }
    const lsnBefore = log.lastLsn;
    const appended = log.append(payload, NO_SYNC);
    if (log.lastLsn === lsnBefore) {
      appended.catch(() => undefined);
      return undefined;
    }
    this.#host.appended(payload.length);
    return appended;
  }

  // -------------------------------------------------------------------------------------------
  // Timers

  /** Delayed jobs and retention run off timers that keep the process alive only while a processor could use them. */
  #keepsAlive(): boolean {
    // A delayed job can only run in this process, through a registered processor: with one
    // registered and the queue not paused, the timer must keep the process alive, as a BullMQ
    // worker waiting for a delayed job does. Without one, nothing could run the job anyway, so
    // the timer must not hold a producer-only process open.
    return this.#processors.length > 0 && !this.#paused && !this.#stopped;
  }

  #updateTimerRefs(): void {
    if (this.#delayTimer === undefined) return;
    if (this.#keepsAlive()) this.#delayTimer.ref();
    else this.#delayTimer.unref();
  }

  #armDelayTimer(now: number): void {
    const dueAt = this.#stopped ? Infinity : this.#host.index.nextDueAt();
    if (dueAt === this.#delayTimerAt) return;
    if (this.#delayTimer !== undefined) clearTimeout(this.#delayTimer);
    this.#delayTimer = undefined;
    this.#delayTimerAt = dueAt;
    if (dueAt === Infinity) return;
    const waitMs = Math.min(Math.max(dueAt - now, 0), MAX_TIMER_MS);
    this.#delayTimer = setTimeout(() => {
      this.#delayTimer = undefined;
      this.#delayTimerAt = Infinity;
      this.pump();
    }, waitMs);
    this.#updateTimerRefs();
  }

  /** Age-based retention: one timer for the oldest retained job. It never keeps the process alive. */
  #armExpiryTimer(): void {
    const expiresAt = this.#stopped ? Infinity : this.#host.index.nextExpiryAt();
    if (expiresAt === this.#expiryTimerAt) return;
    if (this.#expiryTimer !== undefined) clearTimeout(this.#expiryTimer);
    this.#expiryTimer = undefined;
    this.#expiryTimerAt = expiresAt;
    if (expiresAt === Infinity) return;
    const waitMs = Math.min(Math.max(expiresAt - Date.now(), 0), MAX_TIMER_MS);
    this.#expiryTimer = setTimeout(() => {
      this.#expiryTimer = undefined;
      this.#expiryTimerAt = Infinity;
      this.#host.index.evictExpired(Date.now());
      this.#armExpiryTimer();
    }, waitMs);
    this.#expiryTimer.unref();
  }

  /** Starts the retention timer for jobs found at open. */
  start(): void {
    this.#armExpiryTimer();
    this.pump();
  }

  // -------------------------------------------------------------------------------------------
  // Stopping

  /**
   * An internal failure: stop dispatching and report it once. Running handlers go on, but
   * their outcomes can no longer be written; reopening the queue recovers from the disk.
   */
  fail(error: Error): void {
    if (this.#failure !== undefined) return;
    this.#failure = error;
    this.#stopTimers();
    this.#emitError(error);
  }

  /**
   * close(): dispatch nothing more, wait for running attempts to end, and after `timeoutMs`
   * give up on them: abort their signals (reason: ClosedError) and append released records, so
   * the next open runs them again without counting a stall or an attempt.
   */
  async stop(timeoutMs: number | undefined): Promise<void> {
    this.#stopTimers();
    if (this.#executions.size === 0) return;
    const idle = new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    if (timeoutMs === undefined) {
      await idle;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([idle, timedOut]);
    clearTimeout(timer);
    this.#releaseAll();
  }

  #releaseAll(): void {
    const { index } = this.#host;
    const reason = new ClosedError('queue');
    for (const execution of [...this.#executions.values()]) {
      const { slot, id, attempt } = execution;
      assertTransition(RecordKind.released, index.state(slot), index.attemptsMade(slot), attempt);
      this.#settle(execution);
      if (this.#append(encodeReleased(id, attempt)) !== undefined) index.requeued(slot, index.stalls(slot), Date.now());
      execution.controller.abort(reason);
    }
  }

  #stopTimers(): void {
    this.#stopped = true;
    if (this.#delayTimer !== undefined) clearTimeout(this.#delayTimer);
    if (this.#expiryTimer !== undefined) clearTimeout(this.#expiryTimer);
    this.#delayTimer = undefined;
    this.#expiryTimer = undefined;
    this.#delayTimerAt = Infinity;
    this.#expiryTimerAt = Infinity;
  }

  // -------------------------------------------------------------------------------------------
  // Events

  #emit<K extends keyof QueueEvents>(event: K, ...args: QueueEvents[K]): void {
    try {
      (this.#host.events.emit as (event: K, ...args: QueueEvents[K]) => boolean)(event, ...args);
    } catch (error) {
      // A listener threw. Our state is already consistent; surface the throw as an uncaught
      // exception, as a throw in a timer callback would, instead of a stray promise rejection.
      process.nextTick(() => {
        throw error;
      });
    }
  }

  /** 'error' goes out on the next tick: never inside the log's own call stack. */
  #emitError(error: Error): void {
    process.nextTick(() => this.#host.events.emit('error', error));
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function toError(value: unknown): Error {
  if (value instanceof Error) return value;
  const error = new Error(describeError(value).message);
  (error as { thrown?: unknown }).thrown = value;
  return error;
}

/** Checks the code, not the class, so an UnrecoverableError from another copy of blero counts too. */
function isUnrecoverable(error: Error): boolean {
  return (error as { code?: unknown }).code === ErrorCode.unrecoverable;
}

function jobErrorFrom(error: Error): JobError {
  const described = describeError(error);
  const jobError: { name: string; message: string; stack?: string; code?: string } = {
    name: described.name,
    message: described.message,
  };
  if (described.stack !== undefined) jobError.stack = described.stack;
  if (described.code !== '') jobError.code = described.code;
  return Object.freeze(jobError);
}

/** A failure small enough for any allowed maxRecordSize: no stack, a short message. */
function leanError(error: Error): Error {
  const lean = new Error(describeError(error).message.slice(0, 200));
  lean.name = error.name.slice(0, 100);
  delete lean.stack;
  return lean;
}
