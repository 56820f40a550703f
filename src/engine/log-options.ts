// The Log's options, their defaults and their validation. Validation happens at open, before
// anything is written, with plain TypeError/RangeError.
import type { FileSystem } from './file-system.ts';
import { nodeFileSystem } from './file-system.ts';
import { DEFAULT_MAX_RECORD_SIZE, MAX_RECORD_SIZE_LIMIT, RECORD_HEADER_SIZE } from './record-format.ts';
import { SEGMENT_HEADER_SIZE } from './segment-header.ts';
import { assert } from './assert.ts';

/**
 * When an append's promise resolves, and what a crash can then lose.
 * - `'sync'`: after fdatasync of its batch. A power cut loses nothing acknowledged.
 * - `'interval'`: after the write reaches the OS; an fdatasync runs at most every
 *   `syncIntervalMs`. A process crash loses nothing acknowledged; a power cut can lose about
 *   the last `syncIntervalMs` of appends.
 * - `'none'`: after the write reaches the OS; no fdatasync until a segment is sealed or the
 *   log is closed. A process crash loses nothing acknowledged; a power cut can lose everything
 *   since the last seal.
 */
export type Durability = 'sync' | 'interval' | 'none';
export const DURABILITIES: readonly Durability[] = ['sync', 'interval', 'none'];

/** How the directory lock is taken. `'auto'` uses flock from fs-ext when it loads, else a pid file. */
export type LockMode = 'auto' | 'flock' | 'pidfile';

export interface LogOptions {
  /** What an acknowledged append survives; see {@link Durability}. @default 'sync' */
  readonly durability?: Durability | undefined;
  /** Longest time between fdatasyncs in `'interval'` mode, in ms. @default 1000 */
  readonly syncIntervalMs?: number | undefined;
  /** The active segment is sealed once it holds this many bytes; a new one starts. @default 33554432 (32 MiB) */
  readonly segmentSize?: number | undefined;
  /** Largest payload one record may carry, in bytes; larger appends are refused before any write. @default 16777216 (16 MiB) */
  readonly maxRecordSize?: number | undefined;
  /** Upper bound of one group-commit batch (one writev + one fdatasync), in bytes. @default 4194304 (4 MiB) */
  readonly maxBatchBytes?: number | undefined;
  /**
   * Open a damaged log anyway: truncate at the first damage that is not a torn tail and move
   * everything after it into `quarantine-*` files in the directory. Nothing is deleted.
   * @default false
   */
  readonly repair?: boolean | undefined;
  /** How to take the directory lock. @default 'auto' */
  readonly lock?: LockMode | undefined;
  /**
   * Called once per data record, in LSN order, while open() replays the log. `payload` is a
   * view into a reused read buffer: copy it to keep it past the call. Records of an atomic
   * group are handed over together, only when the whole group is on disk.
   */
  readonly onRecord?: ((payload: Buffer, lsn: number, location: number) => void) | undefined;
  /** @internal The disk; tests pass a simulated one. @default the real file system */
  readonly fileSystem?: FileSystem | undefined;
}

export interface ResolvedLogOptions {
  readonly durability: Durability;
  readonly syncIntervalMs: number;
  readonly segmentSize: number;
  readonly maxRecordSize: number;
  readonly maxBatchBytes: number;
  readonly repair: boolean;
  readonly lock: LockMode;
  readonly onRecord: ((payload: Buffer, lsn: number, location: number) => void) | undefined;
  readonly fileSystem: FileSystem;
}

export const DEFAULT_SEGMENT_SIZE = 32 * 1024 * 1024;
export const MIN_SEGMENT_SIZE = 4096;
export const DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024;

assert(SEGMENT_HEADER_SIZE + RECORD_HEADER_SIZE < MIN_SEGMENT_SIZE, 'a segment fits at least one record');

function integerOption(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number') throw new TypeError(`${name} must be a number, got ${typeof value}`);
  if (!Number.isInteger(value) || !(value >= min) || !(value <= max)) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
  return value;
}

export function checkDurability(value: unknown, name = 'durability'): Durability {
  if (typeof value !== 'string' || !(DURABILITIES as readonly string[]).includes(value)) {
    throw new TypeError(`${name} must be one of ${DURABILITIES.join(', ')}, got ${String(value)}`);
  }
  return value as Durability;
}

export function resolveLogOptions(options: LogOptions = {}): ResolvedLogOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const lock = options.lock ?? 'auto';
  if (lock !== 'auto' && lock !== 'flock' && lock !== 'pidfile') {
    throw new TypeError(`lock must be 'auto', 'flock' or 'pidfile', got ${String(lock)}`);
  }
  if (options.onRecord !== undefined && typeof options.onRecord !== 'function') {
    throw new TypeError('onRecord must be a function');
  }
  if (options.repair !== undefined && typeof options.repair !== 'boolean') throw new TypeError('repair must be a boolean');
  return {
    durability: options.durability === undefined ? 'sync' : checkDurability(options.durability),
    syncIntervalMs: integerOption('syncIntervalMs', options.syncIntervalMs, 1000, 1, 3_600_000),
    segmentSize: integerOption('segmentSize', options.segmentSize, DEFAULT_SEGMENT_SIZE, MIN_SEGMENT_SIZE, 2 ** 32),
    maxRecordSize: integerOption('maxRecordSize', options.maxRecordSize, DEFAULT_MAX_RECORD_SIZE, 1, MAX_RECORD_SIZE_LIMIT),
    maxBatchBytes: integerOption('maxBatchBytes', options.maxBatchBytes, DEFAULT_MAX_BATCH_BYTES, 1024, 1024 ** 3),
    repair: options.repair ?? false,
    lock,
    onRecord: options.onRecord,
    fileSystem: options.fileSystem ?? nodeFileSystem,
  };
}
