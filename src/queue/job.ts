// The public shapes of jobs: the name→data map a queue is typed with, a job as getJob and
// processors see it, the per-job options, and the processor signature. Types only; the
// validation of options lives in queue-options.ts.
import type { Durability } from '../engine/log.ts';

/**
 * Maps each job name to the type of its data, e.g. `{ email: { to: string }; resize: Buffer }`
 * (a type alias or an interface).
 * Data must be JSON-serialisable, or a `Uint8Array`/`Buffer` (stored as raw bytes and handed
 * back as a `Buffer`).
 */
export type JobMap = object;

/** The map of a queue opened without one: any name, data of unknown type. */
export type DefaultJobMap = Record<string, unknown>;

/**
 * Where a job is in its life:
 * - `'pending'`: waiting for a processor, ordered by priority (higher first), then by id.
 * - `'delayed'`: waiting for its `runAt` (first run, or the next attempt after a backoff).
 * - `'active'`: handed to a processor.
 * - `'completed'` / `'failed'`: finished and retained for `getJob` until the retention limits
 *   remove it.
 */
export type JobState = 'pending' | 'delayed' | 'active' | 'completed' | 'failed';

/** A failed attempt's error, as stored in the log. */
export interface JobError {
  readonly name: string;
  readonly message: string;
  readonly stack?: string | undefined;
  /** The `code` of a blero error (e.g. `'ERR_BLERO_TIMEOUT'`) or of any error that had a string code. */
  readonly code?: string | undefined;
}

interface JobFields<N extends string, D> {
  /** Positive, strictly increasing over the queue's life, never reused. */
  readonly id: number;
  readonly name: N;
  readonly data: D;
  readonly state: JobState;
  /**
   * The number of the current attempt when active; otherwise of the last attempt that ended
   * (0 before the first run). A run interrupted by a crash (a stall) or released by `close()`
   * does not use up an attempt, so the next run has the same number.
   */
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly priority: number;
  /** When the job becomes (or became) due, in ms since the epoch; a retry moves it. */
  readonly runAt: number;
  /** When it was enqueued, in ms since the epoch. */
  readonly createdAt: number;
  /** How many times the process died while this job ran. */
  readonly stalls: number;
  /** When the job completed or failed for good, in ms since the epoch. */
  readonly finishedAt?: number | undefined;
  /** The processor's return value when it was JSON-serialisable (or bytes); completed jobs only. */
  readonly result?: unknown;
  /** For a failed job, and for one waiting to retry: the error of its last failed attempt. */
  readonly error?: JobError | undefined;
}

/**
 * A job as `getJob` returns it and as a processor receives it: a union discriminated by `name`,
 * so `if (job.name === 'email') job.data.to` type-checks against the queue's {@link JobMap}.
 */
export type Job<J extends JobMap = DefaultJobMap> = {
  [N in keyof J & string]: JobFields<N, J[N]>;
}[keyof J & string];

/** How long to wait before the next attempt after a failure. */
export interface Backoff {
  /** `'fixed'`: always `delayMs`. `'exponential'`: `delayMs * 2^(attempt - 1)`. */
  readonly type: 'fixed' | 'exponential';
  /** Base delay in ms. */
  readonly delayMs: number;
  /**
   * Fraction of the delay (0 to 1) that is randomised away: the delay is drawn uniformly from
   * `[delay * (1 - jitter), delay]`. Spreads retries of jobs that failed together. @default 0
   */
  readonly jitter?: number | undefined;
  /** Upper bound of the delay in ms, applied before jitter. @default no bound */
  readonly maxDelayMs?: number | undefined;
}

/** Options of one job; unset fields come from the queue's `defaultJobOptions`. */
export interface JobOptions {
  /** Higher runs first; equal priorities run in id (FIFO) order. An integer in ±2^31. @default 0 */
  readonly priority?: number | undefined;
  /** Run no earlier than this many ms from now. Exclusive with `runAt`. @default 0 */
  readonly delayMs?: number | undefined;
  /** Run no earlier than this time (a Date or ms since the epoch). Exclusive with `delayMs`. */
  readonly runAt?: Date | number | undefined;
  /** Total attempts, the first run included; a failure with attempts left is retried. @default 1 */
  readonly attempts?: number | undefined;
  /** Delay between attempts; a number is a fixed delay in ms. @default 0 (retry at once) */
  readonly backoff?: Backoff | number | undefined;
  /**
   * Longest time one attempt may run, in ms. When it passes, the processor's `signal` is
   * aborted with a `TimeoutError` and the attempt fails at once; whatever the processor returns
   * later is discarded. @default no timeout
   */
  readonly timeoutMs?: number | undefined;
  /**
   * How many times the process may die while this job runs before the job fails with a
   * `StalledError` instead of running again; stops a job that crashes the process every time.
   * @default 3
   */
  readonly maxStalls?: number | undefined;
  /**
   * Idempotency key: while a job with the same key is pending, delayed or active, enqueue
   * returns that job's id instead of adding a new one. Once it completed or failed, the key is
   * free again. At most 1,024 bytes of UTF-8.
   */
  readonly key?: string | undefined;
  /**
   * What this enqueue waits for before it resolves, overriding the queue's `durability` for
   * this call (it shares the same group commit): `'sync'` waits for the fdatasync (a power cut
   * loses nothing acknowledged); `'interval'` and `'none'` resolve when the OS has the bytes (a
   * process crash loses nothing acknowledged, a power cut can lose recent jobs).
   * @default the queue's durability
   */
  readonly durability?: Durability | undefined;
}

/** One item of `enqueueMany`. */
export type EnqueueItem<J extends JobMap = DefaultJobMap> = {
  [N in keyof J & string]: { readonly name: N; readonly data: J[N]; readonly options?: JobOptions | undefined };
}[keyof J & string];

/**
 * Runs one job. Return a value (JSON-serialisable values and bytes are stored as the job's
 * result) or throw/reject to fail the attempt; throw an `UnrecoverableError` to skip the
 * attempts left. `signal` is aborted with a `TimeoutError` when `timeoutMs` passes, or with a
 * `ClosedError` when `close({ timeoutMs })` gives up waiting: stop work and reject with
 * `signal.reason`.
 */
export type Processor<J extends JobMap = DefaultJobMap> = (job: Job<J>, signal: AbortSignal) => unknown;

export interface ProcessorOptions {
  /** Jobs this processor runs at the same time. A positive integer. @default 1 */
  readonly concurrency?: number | undefined;
}

/** Jobs per state. */
export interface JobCounts {
  readonly pending: number;
  readonly delayed: number;
  readonly active: number;
  readonly completed: number;
  readonly failed: number;
}
