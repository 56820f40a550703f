// The queue's options and each job's options: types with their defaults, and validation at the
// boundary. Everything here throws TypeError/RangeError before anything is written.
import type { Durability } from '../engine/log.ts';
import type { FileSystem } from '../engine/file-system.ts';
import type { Backoff, JobOptions } from './job.ts';
import type { Retention, RetentionLimits } from './job-index.ts';
import { MAX_KEY_BYTES, MAX_NAME_BYTES, type AddedOptions } from './job-records.ts';
import { BackoffType, MAX_BACKOFF_MS, NO_BACKOFF, type BackoffPolicy } from './retry-policy.ts';

/** How many finished jobs to keep: a count, or a count and/or an age in ms. */
export type KeepJobs = number | { readonly count?: number | undefined; readonly ageMs?: number | undefined };

/** Job options that can have a queue-wide default. */
export type DefaultJobOptions = Pick<JobOptions, 'priority' | 'attempts' | 'backoff' | 'timeoutMs' | 'maxStalls'>;

/** When compaction starts on its own. Both conditions must hold. */
export interface CompactionOptions {
  /**
   * The log (every segment file) must be at least this large, in bytes. Below it, the space
   * compaction could return is not worth a rewrite.
   * @default 67108864 (64 MiB)
   */
  readonly minSizeBytes?: number | undefined;
  /**
   * At least this fraction of the log must be dead: records of jobs that are gone and
   * superseded state changes. Dead bytes are estimated from memory (log size − the bytes a
   * snapshot of the live jobs takes), so checking costs no I/O. From 0 to 1, exclusive.
   * The default keeps the log under about twice its live data.
   * @default 0.5
   */
  readonly deadRatio?: number | undefined;
  /**
   * Compact on its own when the two limits above are reached. `compaction: false` is short
   * for `{ auto: false }`; queue.compact() works either way.
   * @default true
   */
  readonly auto?: boolean | undefined;
  /**
   * How fast a compaction may write, in bytes per second, while the queue's appends are being
   * synced (any fdatasync for them in the last 100 ms, or one they are waiting for now);
   * otherwise it writes at full speed. A compaction at full speed makes every fdatasync wait
   * behind its writes: on the VM this was built on, the raw disk's p99 fdatasync grew about 20×
   * beside a writer at 800 MB/s, 7–8× at 250 MB/s and 3× at 100 MB/s (docs/compaction.md).
   * Raise it (or pass Infinity) when space matters more than enqueue latency.
   * @default 32000000 (32 MB/s)
   */
  readonly maxBytesPerSecond?: number | undefined;
}

export interface QueueOptions {
  /**
   * When an enqueue resolves, and what a crash can then lose (per-job `durability` overrides it).
   * `'sync'`: after fdatasync; a power cut loses nothing acknowledged. `'interval'`: when the OS
   * has the bytes, fdatasync at most every `syncIntervalMs`; a process crash loses nothing
   * acknowledged, a power cut about the last interval. `'none'`: when the OS has the bytes; a
   * power cut can lose everything since the last segment seal. Job state changes (started,
   * completed, failed) never wait for an fsync: a lost completion only runs the job again.
   * @default 'sync'
   */
  readonly durability?: Durability | undefined;
  /** Longest time between fdatasyncs in `'interval'` mode, in ms. @default 1000 */
  readonly syncIntervalMs?: number | undefined;
  /** Size at which a log segment is sealed and a new one started, in bytes. @default 33554432 (32 MiB) */
  readonly segmentSize?: number | undefined;
  /**
   * Largest encoded job (name, key, options and data, about 66 bytes of overhead) in bytes;
   * larger enqueues reject with RecordTooLargeError and write nothing. @default 16777216 (16 MiB)
   */
  readonly maxRecordSize?: number | undefined;
  /** Upper bound of one group commit, in bytes. @default 4194304 (4 MiB) */
  readonly maxBatchBytes?: number | undefined;
  /** Open a damaged log by truncating at the damage and quarantining what follows. @default false */
  readonly repair?: boolean | undefined;
  /** How the directory lock is taken. @default 'auto' */
  readonly lock?: 'auto' | 'flock' | 'pidfile' | undefined;
  /** Options every job gets unless its own options say otherwise. */
  readonly defaultJobOptions?: DefaultJobOptions | undefined;
  /**
   * Completed jobs kept for `getJob`, oldest removed first: a count, or `{ count, ageMs }`.
   * Removal is not logged: replay applies the same limits, so it costs no write.
   * @default 1000
   */
  readonly removeOnComplete?: KeepJobs | undefined;
  /** Failed jobs kept for `getJob`, like `removeOnComplete`. @default 1000 */
  readonly removeOnFail?: KeepJobs | undefined;
  /**
   * Bytes of encoded jobs enqueued by this process that are kept in memory until they start,
   * so dispatch need not read them back from disk. Beyond it (and for every job found at open)
   * the payload is read from the log when the job starts. 0 disables the cache.
   * @default 67108864 (64 MiB)
   */
  readonly payloadCacheBytes?: number | undefined;
  /**
   * Automatic compaction: rewrites the log to hold only live jobs when it is large and mostly
   * dead, while the queue keeps running (docs/compaction.md). `false` turns it off;
   * `queue.compact()` works either way. A crash during compaction loses nothing.
   * @default { minSizeBytes: 67108864, deadRatio: 0.5 }
   */
  readonly compaction?: false | CompactionOptions | undefined;
  /** @internal The disk; tests pass a simulated one. */
  readonly fileSystem?: FileSystem | undefined;
}

/** A job's options after defaults and validation, ready to encode. */
export interface ResolvedJobOptions extends AddedOptions {
  /** undefined: due at once (the enqueue time). */
  readonly runAt: number | undefined;
  readonly durability: Durability | undefined;
}

export interface ResolvedQueueOptions {
  readonly durability: Durability;
  /** What a job without options gets; shared, so an enqueue without options allocates none. */
  readonly jobDefaults: ResolvedJobOptions;
  readonly retention: Retention;
  readonly payloadCacheBytes: number;
  readonly compaction: CompactionPolicy;
}

export interface CompactionPolicy {
  /** False: only queue.compact() compacts. */
  readonly auto: boolean;
  readonly minSizeBytes: number;
  readonly deadRatio: number;
  readonly maxBytesPerSecond: number;
}

export const DEFAULT_KEEP_JOBS = 1000;
export const DEFAULT_MAX_STALLS = 3;
export const MAX_STALLS_LIMIT = 1000;
export const DEFAULT_PAYLOAD_CACHE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_COMPACTION_MIN_SIZE_BYTES = 64 * 1024 * 1024;
export const DEFAULT_COMPACTION_DEAD_RATIO = 0.5;
export const DEFAULT_COMPACTION_MAX_BYTES_PER_SECOND = 32_000_000;
const MAX_ATTEMPTS_LIMIT = 2 ** 31;
const MAX_TIMEOUT_MS = 2 ** 31 - 1;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;
const DURABILITIES: readonly string[] = ['sync', 'interval', 'none'];

// ---------------------------------------------------------------------------------------------
// Small checks

function checkObject(value: unknown, what: string): asserts value is object {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TypeError(`${what} must be an object`);
}

function checkInteger(value: unknown, what: string, min: number, max: number): number {
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number, got ${typeof value}`);
  // Written so that NaN fails too.
  if (!Number.isInteger(value) || !(value >= min && value <= max)) {
    throw new RangeError(`${what} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

function checkNonNegative(value: unknown, what: string, max = Infinity): number {
  if (typeof value !== 'number') throw new TypeError(`${what} must be a number, got ${typeof value}`);
  if (!(value >= 0 && value <= max)) throw new RangeError(`${what} must be from 0 to ${max}, got ${value}`);
  return value;
}

export function checkDurability(value: unknown, what = 'durability'): Durability {
  if (typeof value !== 'string' || !DURABILITIES.includes(value)) {
    throw new TypeError(`${what} must be one of ${DURABILITIES.join(', ')}, got ${String(value)}`);
  }
  return value as Durability;
}

/** Job names: non-empty strings of at most 255 bytes of UTF-8. */
export function checkJobName(name: unknown): string {
  if (typeof name !== 'string') throw new TypeError(`job name must be a string, got ${typeof name}`);
  if (name.length === 0) throw new RangeError('job name must not be empty');
  // A UTF-16 unit is at most 3 bytes of UTF-8, so short names skip the byte count.
  if (name.length * 3 > MAX_NAME_BYTES && Buffer.byteLength(name, 'utf8') > MAX_NAME_BYTES) {
    throw new RangeError(`job name must be at most ${MAX_NAME_BYTES} bytes of UTF-8`);
  }
  return name;
}

function checkKey(key: unknown): string {
  if (typeof key !== 'string') throw new TypeError(`key must be a string, got ${typeof key}`);
  if (key.length === 0) throw new RangeError('key must not be empty');
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) throw new RangeError(`key must be at most ${MAX_KEY_BYTES} bytes of UTF-8`);
  return key;
}

function checkBackoff(value: unknown, what: string): BackoffPolicy {
  if (typeof value === 'number') {
    return { type: BackoffType.fixed, delayMs: checkNonNegative(value, what, MAX_BACKOFF_MS), jitter: 0, maxDelayMs: Infinity };
  }
  checkObject(value, what);
  const backoff = value as Backoff;
  if (backoff.type !== 'fixed' && backoff.type !== 'exponential') {
    throw new TypeError(`${what}.type must be 'fixed' or 'exponential', got ${String(backoff.type)}`);
  }
  return {
    type: backoff.type === 'fixed' ? BackoffType.fixed : BackoffType.exponential,
    delayMs: checkNonNegative(backoff.delayMs, `${what}.delayMs`, MAX_BACKOFF_MS),
    jitter: backoff.jitter === undefined ? 0 : checkNonNegative(backoff.jitter, `${what}.jitter`, 1),
    maxDelayMs: backoff.maxDelayMs === undefined ? Infinity : checkNonNegative(backoff.maxDelayMs, `${what}.maxDelayMs`),
  };
}

function checkKeepJobs(value: unknown, what: string): RetentionLimits {
  if (value === undefined) return { count: DEFAULT_KEEP_JOBS, ageMs: Infinity };
  if (typeof value === 'number') return { count: checkInteger(value, what, 0, Number.MAX_SAFE_INTEGER), ageMs: Infinity };
  checkObject(value, what);
  const keep = value as Exclude<KeepJobs, number>;
  return {
    count: keep.count === undefined ? (keep.ageMs === undefined ? DEFAULT_KEEP_JOBS : Infinity) : checkInteger(keep.count, `${what}.count`, 0, Number.MAX_SAFE_INTEGER),
    ageMs: keep.ageMs === undefined ? Infinity : checkNonNegative(keep.ageMs, `${what}.ageMs`),
  };
}

// ---------------------------------------------------------------------------------------------
// Queue options

function resolveDefaults(value: unknown): ResolvedJobOptions {
  const base = { runAt: undefined, key: '', durability: undefined };
  if (value === undefined) {
    return { ...base, priority: 0, maxAttempts: 1, backoff: NO_BACKOFF, timeoutMs: 0, maxStalls: DEFAULT_MAX_STALLS };
  }
  checkObject(value, 'defaultJobOptions');
  const options = value as DefaultJobOptions;
  return {
    ...base,
    priority: options.priority === undefined ? 0 : checkInteger(options.priority, 'defaultJobOptions.priority', INT32_MIN, INT32_MAX),
    maxAttempts: options.attempts === undefined ? 1 : checkInteger(options.attempts, 'defaultJobOptions.attempts', 1, MAX_ATTEMPTS_LIMIT),
    backoff: options.backoff === undefined ? NO_BACKOFF : checkBackoff(options.backoff, 'defaultJobOptions.backoff'),
    timeoutMs: options.timeoutMs === undefined ? 0 : checkInteger(options.timeoutMs, 'defaultJobOptions.timeoutMs', 1, MAX_TIMEOUT_MS),
    maxStalls:
      options.maxStalls === undefined ? DEFAULT_MAX_STALLS : checkInteger(options.maxStalls, 'defaultJobOptions.maxStalls', 0, MAX_STALLS_LIMIT),
  };
}

function resolveCompaction(value: unknown): CompactionPolicy {
  const defaults = { auto: true, minSizeBytes: DEFAULT_COMPACTION_MIN_SIZE_BYTES, deadRatio: DEFAULT_COMPACTION_DEAD_RATIO, maxBytesPerSecond: DEFAULT_COMPACTION_MAX_BYTES_PER_SECOND };
  if (value === undefined) return defaults;
  if (value === false) return { ...defaults, auto: false };
  checkObject(value, 'compaction');
  const options = value as CompactionOptions;
  let deadRatio = defaults.deadRatio;
  if (options.deadRatio !== undefined) {
    if (typeof options.deadRatio !== 'number') throw new TypeError(`compaction.deadRatio must be a number, got ${typeof options.deadRatio}`);
    // 0 would compact again right after every compaction; 1 would never compact.
    if (!(options.deadRatio > 0 && options.deadRatio < 1)) throw new RangeError(`compaction.deadRatio must be above 0 and below 1, got ${options.deadRatio}`);
    deadRatio = options.deadRatio;
  }
  if (options.auto !== undefined && typeof options.auto !== 'boolean') throw new TypeError(`compaction.auto must be a boolean, got ${typeof options.auto}`);
  let maxBytesPerSecond = defaults.maxBytesPerSecond;
  if (options.maxBytesPerSecond !== undefined) {
    if (typeof options.maxBytesPerSecond !== 'number') throw new TypeError(`compaction.maxBytesPerSecond must be a number, got ${typeof options.maxBytesPerSecond}`);
    if (!(options.maxBytesPerSecond > 0)) throw new RangeError(`compaction.maxBytesPerSecond must be above 0, got ${options.maxBytesPerSecond}`);
    maxBytesPerSecond = options.maxBytesPerSecond;
  }
  return {
    auto: options.auto ?? true,
    minSizeBytes:
      options.minSizeBytes === undefined
        ? defaults.minSizeBytes
        : checkInteger(options.minSizeBytes, 'compaction.minSizeBytes', 0, Number.MAX_SAFE_INTEGER),
    deadRatio,
    maxBytesPerSecond,
  };
}

/** Validates the queue-level options; the engine's own options are validated by Log.open. */
export function resolveQueueOptions(options: QueueOptions | undefined): ResolvedQueueOptions {
  if (options === undefined) options = {};
  checkObject(options, 'options');
  return {
    durability: options.durability === undefined ? 'sync' : checkDurability(options.durability),
    jobDefaults: resolveDefaults(options.defaultJobOptions),
    retention: {
      completed: checkKeepJobs(options.removeOnComplete, 'removeOnComplete'),
      failed: checkKeepJobs(options.removeOnFail, 'removeOnFail'),
    },
    payloadCacheBytes:
      options.payloadCacheBytes === undefined
        ? DEFAULT_PAYLOAD_CACHE_BYTES
        : checkInteger(options.payloadCacheBytes, 'payloadCacheBytes', 0, Number.MAX_SAFE_INTEGER),
    compaction: resolveCompaction(options.compaction),
  };
}

// ---------------------------------------------------------------------------------------------
// Job options

function resolveRunAt(options: JobOptions, now: number): number | undefined {
  if (options.delayMs !== undefined && options.runAt !== undefined) throw new TypeError('set delayMs or runAt, not both');
  if (options.delayMs !== undefined) return now + checkNonNegative(options.delayMs, 'delayMs', Number.MAX_SAFE_INTEGER);
  if (options.runAt === undefined) return undefined;
  const runAt = options.runAt instanceof Date ? options.runAt.getTime() : options.runAt;
  if (typeof runAt !== 'number') throw new TypeError(`runAt must be a Date or a number, got ${typeof runAt}`);
  if (!Number.isFinite(runAt)) throw new RangeError(`runAt must be a valid time, got ${runAt}`);
  return runAt;
}

/**
 * Applies `defaults` to one job's options and validates them. `now` is ms since the epoch.
 * Without options it returns `defaults` itself.
 */
export function resolveJobOptions(options: JobOptions | undefined, defaults: ResolvedJobOptions, now: number): ResolvedJobOptions {
  if (options === undefined) return defaults;
  checkObject(options, 'job options');
  return {
    priority: options.priority === undefined ? defaults.priority : checkInteger(options.priority, 'priority', INT32_MIN, INT32_MAX),
    maxAttempts: options.attempts === undefined ? defaults.maxAttempts : checkInteger(options.attempts, 'attempts', 1, MAX_ATTEMPTS_LIMIT),
    backoff: options.backoff === undefined ? defaults.backoff : checkBackoff(options.backoff, 'backoff'),
    timeoutMs: options.timeoutMs === undefined ? defaults.timeoutMs : checkInteger(options.timeoutMs, 'timeoutMs', 1, MAX_TIMEOUT_MS),
    maxStalls: options.maxStalls === undefined ? defaults.maxStalls : checkInteger(options.maxStalls, 'maxStalls', 0, MAX_STALLS_LIMIT),
    runAt: resolveRunAt(options, now),
    key: options.key === undefined ? '' : checkKey(options.key),
    durability: options.durability === undefined ? undefined : checkDurability(options.durability),
  };
}
