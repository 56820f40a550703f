// Log: a directory of segment files holding CRC-checked records in LSN order. It owns the
// lifecycle (open = lock + recover + replay; close = drain + CLOSE marker + unlock), the
// active segment and its rollover, reads by location, and the rewrite primitive compaction
// uses. It knows nothing about what payloads mean.
//
// Promises:
// - append() resolves per durability (see log-options.ts); appends resolve in LSN order.
// - Only the last segment can be torn: a segment is sealed and synced before the next exists.
// - After any failed write or sync every later append rejects (PoisonedError); reopen recovers.
// - LSNs are dense from 1 in appender segments and never reused once a record was written.
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import { ClosedError, CorruptionError, PoisonedError, RecordTooLargeError } from '../errors.ts';
import { assert, verify, fail } from './assert.ts';
import { BufferPool } from './buffer-pool.ts';
import { sortInTurns } from './sort-in-turns.ts';
import { RewritePacer } from './rewrite-pacer.ts';
import { Turns } from './turns.ts';
import { crc32, crc32Range } from './crc.ts';
import { acquireDirectoryLock } from './directory-lock.ts';
import type { DirectoryLock } from './directory-lock.ts';
import type { FileHandle, FileSystem } from './file-system.ts';
import { nodeFileSystem } from './file-system.ts';
import { GroupCommit } from './group-commit.ts';
import type { CommitTarget } from './group-commit.ts';
import { checkDurability, resolveLogOptions } from './log-options.ts';
import type { Durability, LogOptions, ResolvedLogOptions } from './log-options.ts';
import {
  decodeRecordHeader,
  decodeRecordHeaderInto,
  emptyRecordHeader,
  encodeRecordHeader,
  MAX_LSN,
  RECORD_FLAGS_OFFSET,
  RECORD_HEADER_SIZE,
  RECORD_LENGTH_OFFSET,
  RECORD_LSN_OFFSET,
  RecordFlag,
  RecordType,
  readU32,
  readU64,
} from './record-format.ts';
import { LOCATION_SPAN, packLocation, recoverDirectory } from './recovery.ts';
import { CopyMap } from './copy-map.ts';
import type { QuarantineReport, TruncatedTail } from './recovery.ts';
import { readFully } from './segment-reader.ts';
import { createSegment, createSegmentAside, encodeMarker, encodeSeal, publishSegment, writeAll, writeAllSync } from './segment-writer.ts';
import { SEGMENT_HEADER_SIZE } from './segment-header.ts';

export type { Durability, LogOptions } from './log-options.ts';

/** What open() found and did. */
export interface RecoveryReport {
  /** The previous close wrote its CLOSE marker: nothing was lost or torn. */
  readonly cleanShutdown: boolean;
  readonly segments: number;
  /** Data records replayed. */
  readonly records: number;
  readonly lastLsn: number;
  /** A torn tail that was cut off (after a crash); undefined when there was none. */
  readonly truncated: TruncatedTail | undefined;
  /** With `repair`: damage that was moved into quarantine files. */
  readonly quarantined: QuarantineReport | undefined;
  /** Leftovers removed: temp files, sources of a compaction that had committed. */
  readonly removedFiles: readonly string[];
  readonly lock: 'flock' | 'pidfile' | 'none';
}

export interface AppendOptions {
  /** Durability of this call only; it shares the group commit with every other append. @default the log's */
  readonly durability?: Durability | undefined;
}

export interface LogStats {
  readonly segments: number;
  readonly sizeBytes: number;
  readonly nextLsn: number;
  readonly writtenLsn: number;
  readonly durableLsn: number;
  readonly syncs: number;
  readonly batches: number;
}

/**
 * What a rewrite's producer writes into. Every record carries an LSN inside the range it
 * replaces, strictly increasing (write order is replay order); write() and writeCopy() take the
 * one after the last record written unless given one. The output must not end inside an
 * atomic group (copyRecords() may copy a group's first members without its last).
 */
export interface RewriteOutput {
  /**
   * Adds one record to the output; resolves with its location (valid once rewrite() resolves).
   * The payload is copied before write() returns, so the caller may reuse its buffer at once.
   */
  write(payload: Uint8Array, lsn?: number): Promise<number>;
  /**
   * For bulk producers, without a promise per record: copies into the output's buffer a payload
   * made of up to three consecutive parts whose CRC-32 the caller already knows (the checksum
   * the source records carried, combined with crc32Combine), and returns its location. The
   * bytes get no checksum pass: damage in what was copied stays visible, the record reads as
   * corrupt as its source would have; a wrong checksum never makes bad bytes look good. It
   * never writes to disk: call flush() whenever needsFlush is true, so memory stays bounded.
   */
  writeCopy(payloadCrc: number, first: Uint8Array, second?: Uint8Array, third?: Uint8Array): number;
  /** writeCopy() of a record with the given LSN. */
  writeCopyAt(lsn: number, payloadCrc: number, first: Uint8Array, second?: Uint8Array, third?: Uint8Array): number;
  /**
   * Adds `count` whole records (headers and payloads, as scanAt() found them) in
   * `source[start, end)` to the output as they are, header bytes included: their LSNs,
   * checksums and flags do not change, so a run of them costs nothing per record. The bytes are
   * not copied: the output writes them from `source`, which the caller must leave as it is until
   * the output calls release() (once they are written; never, if the rewrite fails first).
   * `lastRecordAt` is where the last one's header starts. Returns the location of the first;
   * the others keep their distances from it. Like writeCopy(), it never writes to disk.
   */
  copyRecords(source: Buffer, start: number, end: number, count: number, lastRecordAt: number, release: () => void): number;
  /** The location the next record written will get. */
  readonly nextLocation: number;
  /** True once the buffered bytes reach the output's chunk size. */
  readonly needsFlush: boolean;
  /** Writes the buffered bytes to the output file. */
  flush(): Promise<void>;
}

/** Records scanAt() visits at once: record i (i < count) has its payload at `chunk[starts[i], ends[i])`. */
export interface ScanBatch {
  count: number;
  chunk: Buffer;
  readonly starts: Int32Array;
  readonly ends: Int32Array;
  readonly locations: Float64Array;
  /** The checksum each record's header carries for its payload. */
  readonly payloadCrcs: Float64Array;
  readonly lsns: Float64Array;
}

/** A run of adjacent records scanAt() is gathering to copy: buffer[start, end), the last record's header at `last`. */
interface CopyRun {
  start: number;
  end: number;
  last: number;
  /** Set when the record at the returned index runs past the bytes read: how many it needs from its start. */
  needBytes: number;
  /** Where in the output the run will start. */
  to: number;
}

/**
 * Adds to `run` the records to copy from keys[index] on, while each starts where the run
 * ends and lies whole in buffer[0, got); returns the index of the first record not added. The
 * record at keys[at] will be copied to its buffer offset + `shift`: that goes to
 * newLocations[at + newBase].
 * Kept small and apart from scanAt so that it is optimized quickly: it is the loop that runs
 * once per copied record.
 */
function extendRun(
  run: CopyRun,
  buffer: Buffer,
  got: number,
  keys: Float64Array,
  isCopy: Uint8Array,
  index: number,
  last: number,
  rangeKey: number,
  newLocations: Float64Array,
  newBase: number,
  shift: number,
): number {
  run.needBytes = 0;
  const limit = run.start + COPY_RUN_BYTES;
  let at = index;
  let end = run.end;
  let lastAt = run.last;
  while (at < last && isCopy[at] === 1 && end < limit && keys[at]! - rangeKey === end) {
    if (end + RECORD_HEADER_SIZE > got) {
      run.needBytes = RECORD_HEADER_SIZE;
      break;
    }
    const next = end + RECORD_HEADER_SIZE + readU32(buffer, end + RECORD_LENGTH_OFFSET);
    if (next > got) {
      run.needBytes = next - end;
      break;
    }
    newLocations[at + newBase] = end + shift;
    lastAt = end;
    end = next;
    at++;
  }
  run.last = lastAt;
  run.end = end;
  return at;
}

/**
 * The records scanAt() reads with the one at keys[first] (a key of segment `segmentKey`): the
 * following ones while they are in the same segment, within one read, and no more than a
 * skippable gap after the one before (reading a wide gap costs more than a seek). Returns the
 * index after the last one taken and the offset of the last one. Apart from scanAt, and with
 * offsets by subtraction, so that this loop over every record is optimized quickly (a float %
 * per record in a closure cost 12 ms per 500,000 records here).
 */
function planRange(keys: Float64Array, first: number, segmentKey: number): { last: number; end: number } {
  const offset = keys[first]! - segmentKey;
  let last = first + 1;
  let end = offset;
  while (last < keys.length) {
    const nextOffset = keys[last]! - segmentKey;
    if (nextOffset >= LOCATION_SPAN || nextOffset - offset >= SCAN_AT_READ_BYTES - SCAN_AT_SLACK_BYTES || nextOffset - end > SCAN_AT_GAP_BYTES) break;
    end = nextOffset;
    last++;
  }
  return { last, end };
}

/** `locations` as log-order keys (see Log.#inLogOrder), sorted, in `keys`; `given` when they came in log order. */
async function sortedKeys(
  locations: Float64Array,
  rank: ReadonlyMap<number, number>,
  keys = new Float64Array(locations.length),
): Promise<{ keys: Float64Array; given: boolean }> {
  let sorted = true;
  const turns = new Turns(SORT_TURN_MS);
  // In slices, giving the event loop turns: a million keys take tens of ms.
  for (let from = 0; from < locations.length; from += RANK_SLICE_KEYS) {
    const to = Math.min(locations.length, from + RANK_SLICE_KEYS);
    if (!rankInto(locations.subarray(from, to), keys.subarray(from, to), rank) || (from > 0 && keys[from]! <= keys[from - 1]!)) sorted = false;
    await turns.give();
  }
  // A caller that lists them in log order already (compaction lists never-started jobs by id) saves the sort.
  return { keys: sorted ? keys : await sortInTurns(keys, SORT_TURN_MS), given: sorted };
}

/** Fills `keys` with the keys of `locations`; true when they came out ascending. */
function rankInto(locations: Float64Array, keys: Float64Array, rank: ReadonlyMap<number, number>): boolean {
  // The segment of the location before: [segmentStart, segmentEnd) as locations. Most locations
  // are in the same segment as the one before, and need no division to tell.
  let segmentStart = 0;
  let segmentEnd = 0;
  let delta = 0;
  let sorted = true;
  let previous = -1;
  for (let at = 0; at < locations.length; at++) {
    const location = locations[at]!;
    if (!(location >= segmentStart && location < segmentEnd)) {
      const ordinal = Math.floor(location / LOCATION_SPAN);
      const segmentRank = rank.get(ordinal);
      // Thrown by a call: a template string with a location here slowed the whole loop (see JobIndex.relocateCaptured).
      if (segmentRank === undefined) noSegmentHolds(location);
      segmentStart = ordinal * LOCATION_SPAN;
      segmentEnd = segmentStart + LOCATION_SPAN;
      delta = (segmentRank - ordinal) * LOCATION_SPAN;
    }
    const key = location + delta;
    if (key <= previous) sorted = false;
    keys[at] = previous = key;
  }
  return sorted;
}

function noSegmentHolds(location: number): never {
  throw new RangeError(`no segment holds location ${location}`);
}

/**
 * Merges ascending `first` into `keys`, whose tail from first.length on holds a second ascending
 * array, so that all of `keys` ascends; returns flags, 1 where a key came from the second.
 * Stretches of the second between two keys of `first` move as blocks (a binary search and a
 * memmove): in a compaction the second is the copied records, usually nearly all of them. In
 * place: a key is written only where one was already moved or read.
 */
function mergeInto(keys: Float64Array, first: Float64Array): Uint8Array {
  const fromSecond = new Uint8Array(keys.length);
  const end = keys.length;
  let at = 0;
  let s = first.length;
  for (let f = 0; f <= first.length; f++) {
    // keys[s, upTo) all come before first[f] (or are the rest, after the last of first).
    let upTo = end;
    if (f < first.length) {
      const bound = first[f]!;
      let low = s;
      while (low < upTo) {
        const middle = (low + upTo) >>> 1;
        if (keys[middle]! < bound) low = middle + 1;
        else upTo = middle;
      }
    }
    if (upTo > s) {
      keys.copyWithin(at, s, upTo);
      fromSecond.fill(1, at, at + upTo - s);
      at += upTo - s;
      s = upTo;
    }
    if (f < first.length) keys[at++] = first[f]!;
  }
  return fromSecond;
}

/** Hands a batch to the visitor and empties it once the visitor is done with it. */
async function deliverBatch(batch: ScanBatch, visit: (batch: ScanBatch) => void | Promise<void>): Promise<void> {
  if (batch.count === 0) return;
  await visit(batch);
  batch.count = 0;
}

/** Keys ranked in one go by scanAt() (about a tenth of a millisecond's work once warm). */
const RANK_SLICE_KEYS = 8192;
/** Longest scanAt() (its ranking, sort and scan) holds the event loop between two turns, in ms. */
const SORT_TURN_MS = 0.25;
/** scanAt() reads at most this much at once... */
const SCAN_AT_READ_BYTES = 2 * 1024 * 1024;
/** ...past the start of its last record, this much more, so that record is usually whole... */
const SCAN_AT_SLACK_BYTES = 64 * 1024;
/** ...and starts a new read rather than read through a gap between two records wider than this. */
const SCAN_AT_GAP_BYTES = 256 * 1024;

/**
 * scanAt() hands the output at most this much in one run: runs are written as they come, and
 * gathering one (a look at each record's length) should not hold the event loop long.
 */
const COPY_RUN_BYTES = 1024 * 1024;

/** What scanAt() copies as it is instead of visiting (see scanAt). */
export interface ScanCopy {
  readonly locations: Float64Array;
  readonly into: RewriteOutput;
  /**
   * Filled with where each record went: newLocations[i] is the new location of locations[i].
   * May be `locations` itself (overwritten once the scan has ranked them).
   */
  readonly newLocations: Float64Array;
}

/** Records per scan batch: enough that the per-batch costs vanish, few enough to stay in cache. */
const SCAN_BATCH_RECORDS = 4096;

function newScanBatch(): ScanBatch {
  return {
    count: 0,
    chunk: Buffer.alloc(0),
    starts: new Int32Array(SCAN_BATCH_RECORDS),
    ends: new Int32Array(SCAN_BATCH_RECORDS),
    locations: new Float64Array(SCAN_BATCH_RECORDS),
    payloadCrcs: new Float64Array(SCAN_BATCH_RECORDS),
    lsns: new Float64Array(SCAN_BATCH_RECORDS),
  };
}

export interface RewriteOptions {
  /**
   * While appends are being synced, the output is written at most this fast (flush() waits);
   * with no sync in the last BUSY_WINDOW_MS, at full speed (rewrite-pacer.ts). Default: no cap.
   */
  readonly maxBytesPerSecond?: number;
  /** Aborts a paced wait (the rewrite then fails with the signal's reason; nothing is committed). */
  readonly signal?: AbortSignal;
}

/** Waits `ms`, or rejects with the signal's reason as soon as it aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RewriteResult {
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  readonly records: number;
  readonly durationMs: number;
}

export type LogEvents = {
  /** A write or sync failed; the log accepts nothing more until it is reopened. */
  poisoned: [error: Error];
};

interface Segment {
  readonly ordinal: number;
  readonly name: string;
  readonly baseLsn: number;
  readonly generation: number;
  readonly coverEndLsn: number;
  handle: FileHandle;
  /** Bytes written (for the active segment: the append position). */
  sizeBytes: number;
  lastLsn: number;
  dataRecords: number;
  sealed: boolean;
}

const REWRITE_CHUNK_BYTES = 1024 * 1024;
const REWRITE_SYNC_BYTES = 4 * 1024 * 1024;
const READ_AHEAD_BYTES = 4096;

/** The state of an appender segment createSegment() just made: header only, no records. */
function emptySegment(ordinal: number, baseLsn: number, created: { handle: FileHandle; name: string }): Segment {
  return {
    ordinal,
    name: created.name,
    baseLsn,
    generation: 0,
    coverEndLsn: 0,
    handle: created.handle,
    sizeBytes: SEGMENT_HEADER_SIZE,
    lastLsn: baseLsn - 1,
    dataRecords: 0,
    sealed: false,
  };
}

/** Location of the record that follows the record at `location` carrying `payloadLength` bytes. */
export function locationAfter(location: number, payloadLength: number): number {
  return location + RECORD_HEADER_SIZE + payloadLength;
}

export class Log extends EventEmitter<LogEvents> {
  readonly directory: string;
  readonly recovery: RecoveryReport;
  readonly #options: ResolvedLogOptions;
  readonly #fs: FileSystem;
  readonly #lock: DirectoryLock | undefined;
  /** Segments in LSN order; the last one is the active segment. */
  readonly #segments: Segment[];
  readonly #byOrdinal = new Map<number, Segment>();
  // Read buffers of scanAt() and staging chunks of rewrite(), kept between compactions. Read
  // buffers: two being read and visited, and up to four whose copied runs are being written.
  readonly #scanBuffers = new BufferPool(6);
  readonly #stageBuffers = new BufferPool(6);
  /** Sources of the last rewrite: unlinked, but still readable until the next rewrite or close. */
  #retired: Segment[] = [];
  readonly #commit: GroupCommit;
  #nextLsn: number;
  #nextOrdinal: number;
  /** Where the next appended record will land (decided at append time, so locations are known at once). */
  #planOrdinal: number;
  #planOffset: number;
  #lastLsn = 0;
  #lastLocation = -1;
  #status: 'open' | 'closing' | 'closed' = 'open';
  #closing: Promise<void> | undefined;
  #rewriting = false;
  #syncTimer: NodeJS.Timeout | undefined;

  private constructor(
    directory: string,
    options: ResolvedLogOptions,
    lock: DirectoryLock | undefined,
    segments: Segment[],
    recovery: RecoveryReport,
  ) {
    super();
    this.directory = directory;
    this.#options = options;
    this.#fs = options.fileSystem;
    this.#lock = lock;
    this.#segments = segments;
    for (const segment of segments) this.#byOrdinal.set(segment.ordinal, segment);
    this.recovery = recovery;
    const active = segments[segments.length - 1]!;
    this.#nextLsn = active.lastLsn + 1;
    this.#nextOrdinal = active.ordinal + 1;
    this.#planOrdinal = active.ordinal;
    this.#planOffset = active.sizeBytes;
    const target: CommitTarget = {
      write: (bytes, lastLsn) => this.#writeActive(bytes, lastLsn),
      writeNow: (bytes, lastLsn) => this.#writeActiveNow(bytes, lastLsn),
      sync: () => this.#active.handle.datasync(),
      roll: (baseLsn, ordinal, durableLsn) => this.#roll(baseLsn, ordinal, durableLsn),
      poisoned: (error) => this.#onPoisoned(error),
    };
    this.#commit = new GroupCommit(target, options.durability, options.maxBatchBytes, active.lastLsn);
    if (options.durability === 'interval') {
      this.#syncTimer = setInterval(() => this.#commit.requestSync(), options.syncIntervalMs);
      this.#syncTimer.unref();
    }
  }

  /**
   * Opens (creating if needed) the log in `directory`: takes the lock, removes leftovers,
   * replays every record through `options.onRecord`, and cuts a torn tail.
   * @throws LockedError when another process or instance holds the directory.
   * @throws CorruptionError for damage that is not a torn tail (unless `repair`).
   */
  static async open(directory: string, options?: LogOptions): Promise<Log> {
    if (typeof directory !== 'string' || directory.length === 0) throw new TypeError('directory must be a non-empty string');
    const resolved = resolveLogOptions(options);
    const fs = resolved.fileSystem;
    const dir = path.resolve(directory);
    await fs.mkdir(dir);
    await fs.syncDirectory(path.dirname(dir));
    // The simulated disks of the tests have no real directory to lock.
    const lock = fs === nodeFileSystem ? await acquireDirectoryLock(dir, resolved.lock) : undefined;
    try {
      const onRecord = resolved.onRecord;
      const recovered = await recoverDirectory(fs, dir, resolved.repair, (payload, lsn, location) => onRecord?.(payload, lsn, location));
      const segments: Segment[] = [];
      for (const [ordinal, found] of recovered.segments.entries()) {
        const segment: Segment = {
          ordinal,
          name: found.name,
          baseLsn: found.baseLsn,
          generation: found.generation,
          coverEndLsn: found.coverEndLsn,
          handle: found.handle,
          sizeBytes: found.sizeBytes,
          lastLsn: found.lastLsn,
          dataRecords: found.dataRecords,
          sealed: found.sealed,
        };
        segments.push(segment);
        const isLast = ordinal === recovered.segments.length - 1;
        if (isLast && !found.sealed && !found.writable) {
          // Repair made an earlier segment the last one; appends need a writable handle.
          await found.handle.close();
          segment.handle = await fs.open(path.join(dir, found.name), 'write');
        }
      }
      const last = segments[segments.length - 1];
      if (last === undefined || last.sealed) {
        const baseLsn = (last?.lastLsn ?? 0) + 1;
        segments.push(emptySegment(segments.length, baseLsn, await createSegment(fs, dir, baseLsn)));
      }
      const report: RecoveryReport = {
        cleanShutdown: recovered.cleanShutdown,
        segments: segments.length,
        records: recovered.records,
        lastLsn: recovered.lastLsn,
        truncated: recovered.truncated,
        quarantined: recovered.quarantined,
        removedFiles: recovered.removedFiles,
        lock: lock?.kind ?? 'none',
      };
      return new Log(dir, resolved, lock, segments, report);
    } catch (error) {
      await lock?.release();
      throw error;
    }
  }

  get status(): 'open' | 'closing' | 'closed' {
    return this.#status;
  }

  /** The first I/O failure, once the log is poisoned. */
  get poisonedBy(): Error | undefined {
    return this.#commit.poison;
  }

  /** LSN of the last record of the most recent append()/appendGroup() call. */
  get lastLsn(): number {
    return this.#lastLsn;
  }

  /**
   * Location of the first record of the most recent append()/appendGroup() call, known as soon
   * as the call returns. Records of one group are contiguous: see locationAfter().
   */
  get lastLocation(): number {
    return this.#lastLocation;
  }

  /** The durability this log was opened with. */
  get durability(): Durability {
    return this.#options.durability;
  }

  /**
   * Appends one record. The returned promise is shared by every append of the same batch and
   * resolves (with nothing) per the durability; read `lastLsn`/`lastLocation` right after the
   * call for this record's LSN and location.
   */
  append(payload: Uint8Array, options?: AppendOptions): Promise<void> {
    return this.#append([payload], options, false);
  }

  /** Appends records atomically: after a crash either all of them replay or none does. */
  appendGroup(payloads: readonly Uint8Array[], options?: AppendOptions): Promise<void> {
    if (!Array.isArray(payloads) || payloads.length === 0) return Promise.reject(new TypeError('payloads must be a non-empty array'));
    return this.#append(payloads, options, true);
  }

  #append(payloads: readonly Uint8Array[], options: AppendOptions | undefined, atomic: boolean): Promise<void> {
    if (this.#status !== 'open') return Promise.reject(new ClosedError());
    const poison = this.#commit.poison;
    if (poison) return Promise.reject(new PoisonedError(poison));
    const durability = options?.durability === undefined ? this.#options.durability : checkDurability(options.durability);
    let sizeBytes = 0;
    const crcs: number[] = [];
    for (const payload of payloads) {
      if (!(payload instanceof Uint8Array)) return Promise.reject(new TypeError('payload must be a Uint8Array'));
      if (payload.length > this.#options.maxRecordSize) {
        return Promise.reject(new RecordTooLargeError(payload.length, this.#options.maxRecordSize));
      }
      sizeBytes += RECORD_HEADER_SIZE + payload.length;
      crcs.push(crc32(payload));
    }
    const firstLsn = this.#nextLsn;
    if (firstLsn + payloads.length > MAX_LSN) return Promise.reject(new RangeError('LSN space exhausted'));
    // A record (or a whole group) never straddles two segments.
    if (this.#planOffset > SEGMENT_HEADER_SIZE && this.#planOffset + sizeBytes > this.#options.segmentSize) {
      this.#planRoll(firstLsn);
    }
    this.#lastLocation = packLocation(this.#planOrdinal, this.#planOffset);
    this.#planOffset += sizeBytes;
    this.#nextLsn = firstLsn + payloads.length;
    this.#lastLsn = this.#nextLsn - 1;
    return this.#commit.add(payloads, crcs, firstLsn, durability, atomic);
  }

  #planRoll(baseLsn: number): void {
    this.#planOrdinal = this.#nextOrdinal++;
    this.#planOffset = SEGMENT_HEADER_SIZE;
    this.#commit.roll(baseLsn, this.#planOrdinal);
  }

  /** Resolves when everything appended so far is on stable storage. */
  sync(): Promise<void> {
    if (this.#status === 'closed') return Promise.reject(new ClosedError());
    return this.#commit.barrier(true);
  }

  /**
   * Ends the active segment here: every record appended before this call will sit in a sealed
   * segment with an LSN ≤ the returned one (the boundary to pass to rewrite()).
   */
  cut(): number {
    if (this.#status !== 'open') throw new ClosedError();
    if (this.#planOffset > SEGMENT_HEADER_SIZE) this.#planRoll(this.#nextLsn);
    return this.#nextLsn - 1;
  }

  /** Reads the payload of the record at `location` (from append or replay), checking its checksums. */
  async read(location: number): Promise<Buffer> {
    if (this.#status === 'closed') throw new ClosedError();
    if (!Number.isSafeInteger(location) || location < 0) throw new RangeError(`invalid location ${location}`);
    const ordinal = Math.floor(location / LOCATION_SPAN);
    const offset = location % LOCATION_SPAN;
    let segment = this.#segmentAt(ordinal);
    if (segment === undefined || offset >= segment.sizeBytes) {
      // Appended but maybe not written yet.
      await this.#commit.barrier(false);
      segment = this.#segmentAt(ordinal);
    }
    if (segment === undefined || offset < SEGMENT_HEADER_SIZE || offset + RECORD_HEADER_SIZE > segment.sizeBytes) {
      throw new RangeError(`no record at location ${location}`);
    }
    const file = path.join(this.directory, segment.name);
    let bytes = Buffer.allocUnsafe(Math.min(RECORD_HEADER_SIZE + READ_AHEAD_BYTES, segment.sizeBytes - offset));
    const got = await readFully(segment.handle, bytes, bytes.length, offset);
    const header = got >= RECORD_HEADER_SIZE ? decodeRecordHeader(bytes, 0) : undefined;
    if (header === undefined || header.type !== RecordType.data) throw new CorruptionError(file, offset, 'header-crc', 'bad record header on read');
    const total = RECORD_HEADER_SIZE + header.payloadLength;
    if (offset + total > segment.sizeBytes) throw new CorruptionError(file, offset, 'payload-past-eof', 'record runs past the written bytes');
    if (total > got) {
      const whole = Buffer.allocUnsafe(total);
      if ((await readFully(segment.handle, whole, total, offset)) !== total) {
        throw new CorruptionError(file, offset, 'payload-past-eof', 'short read');
      }
      bytes = whole;
    }
    const payload = bytes.subarray(RECORD_HEADER_SIZE, total);
    if (crc32(payload) !== header.payloadCrc) throw new CorruptionError(file, offset, 'payload-crc', 'payload checksum mismatch on read');
    return payload;
  }

  /**
   * Visits the data records at `wanted` (in any order; each in a sealed segment) in log order,
   * reading only the byte ranges that hold them: a compaction whose live records are a small or
   * clustered part of the log skips its dead stretches instead of reading and decoding them.
   * Records come in batches: record i's payload is `batch.chunk[batch.starts[i], batch.ends[i])`,
   * valid until the visitor returns or the promise it returns settles (the scan waits for it).
   * Headers are always checked; damage is a CorruptionError naming the file and the offset of
   * the record asked for. With `verifyPayloads: false` payloads are not checked against
   * `payloadCrcs`: for a visitor that carries the checksum along with the bytes it keeps
   * (writeCopy), so damage stays visible where the copy is read.
   *
   * With `copy`, the records at `copy.locations` are not visited but copied as they are into
   * `copy.into` (copyRecords), in the same log order as the visited ones (the visitor has written
   * everything before a copied record when it is copied), a run of adjacent ones at a time;
   * `copy.newLocations` is filled with where each went (cheapest when `copy.locations` come in
   * log order: then no record is looked up). Their bytes are not decoded one by one: a record's
   * length is taken from its header and proven by the next record of its run starting right
   * where it ends, and the last record of every run has its header checked. Their checksums go
   * with them, so the output's readers check them as they would have checked the source.
   * Resolves with the number of records copied.
   */
  async scanAt(
    wanted: Float64Array,
    visit: (batch: ScanBatch) => void | Promise<void>,
    options: { readonly verifyPayloads?: boolean; readonly copy?: ScanCopy; readonly signal?: AbortSignal | undefined } = {},
  ): Promise<number> {
    if (this.#status === 'closed') throw new ClosedError();
    const copy = options.copy;
    // Rolls queued before (by cut() and by the appends before it) have run: every record asked
    // for is in a segment of the list, and sealed.
    await this.#commit.barrier(false);
    // Log-order keys, not locations (see #inLogOrder): `keys` and `segments` go together.
    const { keys: locations, copied: isCopy, segments, copiesInOrder } = await this.#inLogOrder(wanted, copy?.locations);
    const copies = copy?.locations.length ?? 0;
    if (copy !== undefined && copy.newLocations.length !== copies) throw new RangeError(`copy.newLocations holds ${copy.newLocations.length} entries for ${copies} locations`);
    // Where each copied record went, in log order: straight into copy.newLocations when that is
    // the order they were given in (the usual case: no per-record lookups at all), else mapped
    // by run afterwards.
    const copiedTo = copiesInOrder ? copy?.newLocations.fill(-1) : new Float64Array(copies);
    const runs = copiesInOrder ? undefined : new CopyMap();
    const count = locations.length;
    const verifyPayloads = options.verifyPayloads ?? true;
    const signal = options.signal;
    const batch = newScanBatch();
    const header = emptyRecordHeader();
    const pool = this.#scanBuffers;
    // Two buffers: one range being visited, the next one being read.
    const buffers = [pool.take(SCAN_AT_READ_BYTES), pool.take(SCAN_AT_READ_BYTES)];
    // Copied runs are written from the buffer they were read into (copying 100 MB of them into
    // staging chunks took 12–17 ms of the main thread). A buffer the output still holds runs of
    // is `lent` (how many): the scan reads into another one meanwhile, and the last release
    // gives it back to the pool once the scan is done with it too (`dropped`).
    const lent = new Map<Buffer, number>();
    const dropped = new Set<Buffer>();
    const lend = (buffer: Buffer): (() => void) => {
      lent.set(buffer, (lent.get(buffer) ?? 0) + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        const left = lent.get(buffer)! - 1;
        if (left > 0) {
          lent.set(buffer, left);
          return;
        }
        lent.delete(buffer);
        if (dropped.delete(buffer)) pool.give(buffer);
      };
    };
    /** The scan is done with `buffer`: back to the pool, or to the last release of its runs. */
    const drop = (buffer: Buffer): void => {
      if (lent.has(buffer)) dropped.add(buffer);
      else pool.give(buffer);
    };
    /** The byte range holding locations [first, last) of one segment, read into buffers[slot]. */
    interface Range {
      readonly segment: Segment;
      readonly offset: number;
      readonly last: number;
      readonly slot: number;
      readonly read: Promise<number>;
    }
    const segmentFor = (key: number): Segment => {
      const segment = segments[Math.floor(key / LOCATION_SPAN)];
      if (segment === undefined || !segment.sealed) throw new RangeError(`no sealed segment holds the record asked for (log-order key ${key})`);
      return segment;
    };
    /** Starts reading the range that begins at locations[first] into buffers[slot], at least `minBytes` of it. */
    const startRange = (first: number, slot: number, minBytes: number): Range => {
      const base = locations[first]!;
      const segment = segmentFor(base);
      const offset = base % LOCATION_SPAN;
      const { last, end } = planRange(locations, first, base - offset);
      const length = Math.min(segment.sizeBytes - offset, Math.max(minBytes, end - offset + SCAN_AT_SLACK_BYTES));
      if (buffers[slot]!.length < length || lent.has(buffers[slot]!)) {
        drop(buffers[slot]!);
        buffers[slot] = pool.take(Math.max(length, SCAN_AT_READ_BYTES));
      }
      const read = readFully(segment.handle, buffers[slot]!, length, offset);
      read.catch(() => undefined); // awaited below; not unhandled meanwhile
      return { segment, offset, last, slot, read };
    };
    // The run of adjacent records to copy being gathered: buffer[runStart, runEnd), the last
    // record's header at runLast. While a run is open the batch is empty, and the other way round.
    let runCount = 0;
    const run: CopyRun = { start: 0, end: 0, last: 0, needBytes: 0, to: 0 };
    let copiedRecords = 0;
    const turns = new Turns(SORT_TURN_MS);
    let index = 0;
    let range = count > 0 ? startRange(0, 0, 0) : undefined;
    let ahead: Range | undefined;
    try {
      while (range !== undefined) {
        signal?.throwIfAborted();
        const got = await range.read;
        const buffer = buffers[range.slot]!;
        // Read the next range while this one is visited.
        ahead = range.last < count ? startRange(range.last, 1 - range.slot, 0) : undefined;
        const file = path.join(this.directory, range.segment.name);
        // Where the range starts, as a key and as a location.
        const rangeKey = locations[index]! - (locations[index]! % LOCATION_SPAN) + range.offset;
        const rangeLocation = packLocation(range.segment.ordinal, range.offset);
        /** Copies the open run into the output (after checking its last header) and maps it. */
        const endRun = async (): Promise<void> => {
          if (runCount === 0) return;
          signal?.throwIfAborted();
          if (!decodeRecordHeaderInto(buffer, run.last, header) || header.type !== RecordType.data || run.last + RECORD_HEADER_SIZE + header.payloadLength !== run.end) {
            throw new CorruptionError(file, range!.offset + run.last, 'sealed-segment-damage', 'bad record header during a compaction scan');
          }
          const to = copy!.into.copyRecords(buffer, run.start, run.end, runCount, run.last, lend(buffer));
          // extendRun filled in where the run's records go, from where it would start.
          if (to !== run.to) fail(`copy run written at ${to}, expected at ${run.to}`);
          runs?.add(rangeLocation + run.start, to, run.end - run.start, runCount);
          copiedRecords += runCount;
          runCount = 0;
          if (copy!.into.needsFlush) await copy!.into.flush();
        };
        let needBytes = 0;
        while (index < range.last) {
          const at = locations[index]! - rangeKey;
          const offset = range.offset + at;
          if (at + RECORD_HEADER_SIZE > got) {
            needBytes = RECORD_HEADER_SIZE;
            break;
          }
          if (isCopy !== undefined && isCopy[index] === 1) {
            if (runCount === 0 || at !== run.end || run.end - run.start >= COPY_RUN_BYTES) {
              if (runCount > 0) await endRun();
              // Records visited before this one are written before it.
              if (batch.count > 0) await deliverBatch(batch, visit);
              if (turns.due) await turns.yield();
              run.start = at;
              run.end = at;
              // Nothing is written between here and the run's copy (endRun).
              run.to = copy!.into.nextLocation;
            }
            const next = extendRun(run, buffer, got, locations, isCopy, index, range.last, rangeKey, copiedTo!, copiedRecords + runCount - index, run.to - run.start);
            runCount += next - index;
            index = next;
            if (run.needBytes > 0) {
              needBytes = run.needBytes;
              break;
            }
            continue;
          }
          if (runCount > 0) await endRun();
          if (!decodeRecordHeaderInto(buffer, at, header) || header.type !== RecordType.data) {
            throw new CorruptionError(file, offset, 'sealed-segment-damage', 'bad record header during a compaction scan');
          }
          const start = at + RECORD_HEADER_SIZE;
          const end = start + header.payloadLength;
          if (end > got) {
            needBytes = RECORD_HEADER_SIZE + header.payloadLength;
            break;
          }
          if (verifyPayloads && crc32Range(buffer, start, end) !== header.payloadCrc) {
            throw new CorruptionError(file, offset, 'sealed-segment-damage', 'payload-crc during a compaction scan');
          }
          const slot = batch.count++;
          batch.chunk = buffer;
          batch.starts[slot] = start;
          batch.ends[slot] = end;
          batch.locations[slot] = rangeLocation + at;
          batch.payloadCrcs[slot] = header.payloadCrc;
          batch.lsns[slot] = header.lsn;
          index++;
          if (batch.count === SCAN_BATCH_RECORDS) await deliverBatch(batch, visit);
        }
        await endRun();
        await deliverBatch(batch, visit);
        // The next range's read is awaited next: a turn of its own.
        turns.restart();
        if (index < range.last) {
          // A record ran past what was read: read again from it, all of it (the read ahead is of
          // later records; it is dropped and read again after this one).
          const offset = locations[index]! % LOCATION_SPAN;
          if (offset + needBytes > range.segment.sizeBytes) {
            throw new CorruptionError(file, offset, 'sealed-segment-damage', 'record runs past the end of its segment during a compaction scan');
          }
          if (ahead !== undefined) await ahead.read.catch(() => undefined);
          ahead = startRange(index, 1 - range.slot, needBytes);
        }
        range = ahead;
        ahead = undefined;
      }
    } finally {
      // The caller may close the handles once we return: let no read of them outlive the scan.
      if (range !== undefined) await range.read.catch(() => undefined);
      if (ahead !== undefined) await ahead.read.catch(() => undefined);
      for (const buffer of buffers) drop(buffer);
    }
    if (runs !== undefined) for (let at = 0; at < copies; at++) copy!.newLocations[at] = runs.find(copy!.locations[at]!);
    return copiedRecords;
  }

  /**
   * `locations` and `copies` as keys in log order, merged into one array, with a flag per entry
   * telling the copies (undefined when there are none). A key is a location with its segment's
   * ordinal replaced by the segment's rank in `segments` (the log's segments now): log order is
   * not the order of the locations, as a rewrite's output gets a new ordinal, higher than those
   * of the segments after it.
   */
  async #inLogOrder(
    locations: Float64Array,
    copies?: Float64Array,
  ): Promise<{ keys: Float64Array; copied: Uint8Array | undefined; segments: readonly Segment[]; copiesInOrder: boolean }> {
    const segments = this.#segments.slice();
    const rank = new Map<number, number>();
    segments.forEach((segment, at) => rank.set(segment.ordinal, at));
    const visited = (await sortedKeys(locations, rank)).keys;
    if (copies === undefined || copies.length === 0) return { keys: visited, copied: undefined, segments, copiesInOrder: true };
    // One array for both: the copies' keys go to its tail, then the visited ones are merged in.
    const keys = new Float64Array(visited.length + copies.length);
    const copied = await sortedKeys(copies, rank, keys.subarray(visited.length));
    return { keys, copied: mergeInto(keys, visited), segments, copiesInOrder: copied.given };
  }

  #segmentAt(ordinal: number): Segment | undefined {
    return this.#byOrdinal.get(ordinal) ?? this.#retired.find((s) => s.ordinal === ordinal);
  }

  /**
   * Replaces every sealed segment up to `coverEndLsn` (a value from cut()) with one segment
   * holding exactly what `produce` writes. Crash-safe: the output is built aside, synced and
   * renamed into place (the commit point) before any source is deleted; open() finishes an
   * interrupted deletion. Appends go on meanwhile.
   */
  async rewrite(coverEndLsn: number, produce: (output: RewriteOutput) => Promise<unknown>, options: RewriteOptions = {}): Promise<RewriteResult> {
    if (this.#status !== 'open') throw new ClosedError();
    if (this.#rewriting) throw new Error('a rewrite is already running');
    if (!Number.isSafeInteger(coverEndLsn) || coverEndLsn < 0) throw new RangeError(`invalid coverEndLsn ${coverEndLsn}`);
    this.#rewriting = true;
    const startedAt = performance.now();
    try {
      // The roll cut() queued may still be syncing (and rolls queued before it, which create
      // segments up to the cut). The output's file is created and produce() starts meanwhile
      // (compaction lists its jobs; scanAt waits for the rolls before it ranks and reads); the
      // sources are taken once they have run. The output's name needs only the first segment's
      // base LSN and a generation above those of the segments up to the cut, which rolls never
      // change: they add appender segments (generation 0) at the end.
      const rolled = this.#commit.barrier(false);
      rolled.catch(() => undefined); // awaited below; not unhandled meanwhile
      void this.#closeRetired();
      const first = this.#segments[0];
      if (first === undefined || first.baseLsn > coverEndLsn) throw new RangeError(`coverEndLsn ${coverEndLsn} is not a segment boundary: pass the value cut() returned`);
      const baseLsn = first.baseLsn;
      let generation = 1;
      for (const segment of this.#segments) if (segment.baseLsn <= coverEndLsn) generation = Math.max(generation, segment.generation + 1);
      const sources: Segment[] = [];
      /** The segments the output replaces: every sealed one up to the cut, which must end a segment. */
      const takeSources = (): void => {
        for (const segment of this.#segments) {
          if (!segment.sealed || segment.lastLsn > coverEndLsn) break;
          sources.push(segment);
        }
        if (sources.length === 0 || sources[sources.length - 1]!.lastLsn !== coverEndLsn) {
          throw new RangeError(`coverEndLsn ${coverEndLsn} is not a segment boundary: pass the value cut() returned`);
        }
      };
      const ordinal = this.#nextOrdinal++;
      const aside = await createSegmentAside(this.#fs, this.directory, baseLsn, generation, coverEndLsn);
      let offset = SEGMENT_HEADER_SIZE;
      let records = 0;
      // Records written afresh carry durableLsn 0 (the output is synced before it exists, so it
      // vouches for nothing else); copied ones keep their headers as they were (docs/format.md).
      // Records go straight into staging chunks (no buffer per record: compaction writes tens of
      // thousands of small records and their garbage showed up as GC pauses).
      let pending: Buffer[] = [];
      let stage: Buffer = this.#stageBuffers.take(REWRITE_CHUNK_BYTES);
      let stageUsed = 0;
      // stage[0, stageQueued) is in `pending` already: a run added by copyRecords went
      // after it, and staging goes on after the run.
      let stageQueued = 0;
      // Releases of lent runs in `pending`, called once they are written.
      let releases: (() => void)[] = [];
      let pendingBytes = 0;
      let pendingAt = offset;
      let unsyncedBytes = 0;
      // Up to two writes in flight while the producer fills the next chunk, and one fdatasync in
      // flight beside them: the output is synced as it grows (one flush of the whole output at the
      // end would stall the device for the appends' own fdatasyncs), without the producer
      // waiting for each sync. A failure surfaces at the next flush or at the end.
      let writing: Promise<void> = Promise.resolve();
      // The write before `writing` (the thread pool copies one into the page cache while the
      // other is issued; with one, the producer waited for each).
      let writingBefore: Promise<void> = Promise.resolve();
      let syncing: Promise<void> = Promise.resolve();
      let syncInFlight = false;
      const startSync = (): void => {
        syncInFlight = true;
        unsyncedBytes = 0;
        syncing = aside.handle.datasync().finally(() => (syncInFlight = false));
        syncing.catch(() => undefined); // awaited below; not unhandled meanwhile
      };
      // Staging chunks go back to the pool once written (see buffer-pool.ts).
      let staged: Buffer[] = [];
      /** Moves the staged bytes not queued yet to the pending writes. */
      const queueStaged = (): void => {
        if (stageUsed > stageQueued) pending.push(stage.subarray(stageQueued, stageUsed));
        stageQueued = stageUsed;
      };
      /** Moves the staged bytes to the pending writes and starts a chunk of at least `size` bytes. */
      const nextStage = (size = REWRITE_CHUNK_BYTES): void => {
        if (stageUsed > 0) {
          queueStaged();
          staged.push(stage);
        }
        stage = this.#stageBuffers.take(Math.max(REWRITE_CHUNK_BYTES, size));
        stageUsed = 0;
        stageQueued = 0;
      };
      const pacer = new RewritePacer(options.maxBytesPerSecond ?? Infinity, this.#commit.awaitedSyncCount, performance.now());
      const flush = async (): Promise<void> => {
        if (stageUsed > 0) nextStage();
        await writingBefore;
        if (pendingBytes === 0) return;
        const wait = pacer.delay(pendingBytes, this.#commit.awaitedSyncCount, performance.now(), this.#commit.syncAwaited);
        if (wait > 0) await pause(wait, options.signal);
        const chunks = pending;
        const stages = staged;
        const written = releases;
        const at = pendingAt;
        const bytes = pendingBytes;
        pending = [];
        staged = [];
        releases = [];
        pendingAt += bytes;
        pendingBytes = 0;
        writingBefore = writing;
        // Each flush retires its staging chunk, so a chunk is written by one write; a lent buffer
        // may hold runs of several writes, and goes back once each has released its run.
        writing = writeAll(aside.handle, chunks, at).then(() => {
          for (const done of stages) this.#stageBuffers.give(done);
          for (const release of written) release();
          unsyncedBytes += bytes;
          if (unsyncedBytes >= REWRITE_SYNC_BYTES && !syncInFlight) startSync();
        });
        writing.catch(() => undefined);
      };
      /** Room for `size` bytes at stage[stageUsed]. */
      const reserve = (size: number): void => {
        if (stageUsed + size > stage.length) nextStage(size);
      };
      /** LSN and flags of the last record in the output: the next must be above, and the last may not continue a group. */
      let lastLsn = baseLsn - 1;
      let lastFlags = 0;
      const useLsn = (lsn: number): void => {
        if (!(lsn > lastLsn && lsn <= coverEndLsn)) {
          throw new RangeError(`rewrite record LSN ${lsn}: must be above ${lastLsn} and at most ${coverEndLsn}`);
        }
        lastLsn = lsn;
        lastFlags = 0;
      };
      const added = (size: number): number => {
        const location = packLocation(ordinal, offset);
        stageUsed += size;
        pendingBytes += size;
        offset += size;
        records++;
        return location;
      };
      try {
        const writeNow = (payload: Uint8Array, lsn: number): number => {
          if (!(payload instanceof Uint8Array)) throw new TypeError('payload must be a Uint8Array');
          useLsn(lsn);
          const size = RECORD_HEADER_SIZE + payload.length;
          reserve(size);
          encodeRecordHeader(stage, stageUsed, RecordType.data, 0, lsn, 0, payload.length, crc32(payload));
          stage.set(payload, stageUsed + RECORD_HEADER_SIZE);
          return added(size);
        };
        const writeCopyAt = (lsn: number, payloadCrc: number, first: Uint8Array, second?: Uint8Array, third?: Uint8Array): number => {
          useLsn(lsn);
          const length = first.length + (second?.length ?? 0) + (third?.length ?? 0);
          const size = RECORD_HEADER_SIZE + length;
          reserve(size);
          let at = stageUsed + RECORD_HEADER_SIZE;
          stage.set(first, at);
          at += first.length;
          if (second !== undefined) {
            stage.set(second, at);
            at += second.length;
          }
          if (third !== undefined) stage.set(third, at);
          encodeRecordHeader(stage, stageUsed, RecordType.data, 0, lsn, 0, length, payloadCrc >>> 0);
          // Not checked here: a mismatch may be damage the caller copied faithfully. Every
          // reader of the output checks it, so a wrongly combined checksum fails loudly there.
          return added(size);
        };
        const copyRecords = (source: Buffer, start: number, end: number, count: number, lastRecordAt: number, release: () => void): number => {
          if (!(count > 0 && start >= 0 && start <= lastRecordAt && lastRecordAt + RECORD_HEADER_SIZE <= end && end <= source.length)) {
            throw new RangeError(`copyRecords: ${count} records in [${start}, ${end}), the last at ${lastRecordAt}`);
          }
          // Copied headers keep their LSNs: the first must follow the output's last, and the run
          // is in log order (scanAt's), so its last is its highest.
          useLsn(readU64(source, start + RECORD_LSN_OFFSET));
          if (lastRecordAt !== start) useLsn(readU64(source, lastRecordAt + RECORD_LSN_OFFSET));
          lastFlags = source[lastRecordAt + RECORD_FLAGS_OFFSET]!;
          const location = packLocation(ordinal, offset);
          // Written from the caller's buffer, after what is staged so far.
          queueStaged();
          pending.push(source.subarray(start, end));
          releases.push(release);
          pendingBytes += end - start;
          offset += end - start;
          records += count;
          return location;
        };
        await produce({
          write: async (payload, lsn = lastLsn + 1) => {
            const location = writeNow(payload, lsn);
            if (pendingBytes >= REWRITE_CHUNK_BYTES) await flush();
            return location;
          },
          writeCopy: (payloadCrc, first, second, third) => writeCopyAt(lastLsn + 1, payloadCrc, first, second, third),
          writeCopyAt,
          copyRecords,
          get nextLocation() {
            return packLocation(ordinal, offset);
          },
          get needsFlush() {
            return pendingBytes >= REWRITE_CHUNK_BYTES;
          },
          flush,
        });
        await rolled;
        takeSources();
        // Readers hand a group over only at its last record: an output ending inside one would
        // read as damaged.
        if ((lastFlags & RecordFlag.groupContinues) !== 0) throw new RangeError('the rewrite output ends inside an atomic group');
        await flush(); // the staged records go before the seal
        const seal = encodeSeal(records, coverEndLsn, 0);
        pending.push(seal);
        pendingBytes += seal.length;
        offset += seal.length;
        await flush();
        await writingBefore;
        await writing;
        await syncing;
        // A poisoned log commits nothing more: its directory may no longer match what it believes.
        const poison = this.#commit.poison;
        if (poison) throw new PoisonedError(poison);
        if (this.#status !== 'open') throw new ClosedError();
        await publishSegment(this.#fs, this.directory, aside.handle, aside.tempPath, aside.finalPath);
      } catch (error) {
        await writingBefore.catch(() => undefined);
        await writing.catch(() => undefined);
        await syncing.catch(() => undefined);
        await rolled.catch(() => undefined);
        await aside.handle.close().catch(() => undefined);
        await this.#fs.unlink(aside.tempPath).catch(() => undefined);
        throw error;
      }
      // Committed: the output replaces the sources for every later open.
      const output: Segment = {
        ordinal,
        name: aside.name,
        baseLsn,
        generation,
        coverEndLsn,
        handle: aside.handle,
        sizeBytes: offset,
        lastLsn: coverEndLsn,
        dataRecords: records,
        sealed: true,
      };
      this.#segments.splice(0, sources.length, output);
      this.#byOrdinal.set(ordinal, output);
      for (const source of sources) this.#byOrdinal.delete(source.ordinal);
      this.#retired = sources;
      try {
        // All at once: open() removes whatever the output covers, in any order, if a crash comes first.
        const unlinked = await Promise.allSettled(sources.map((source) => this.#fs.unlink(path.join(this.directory, source.name))));
        for (const result of unlinked) if (result.status === 'rejected') throw result.reason;
        await this.#fs.syncDirectory(this.directory);
      } catch (error) {
        // Which names survive a crash is now unknown; open() would finish the job, so stop here.
        this.#commit.poisonWith(error instanceof Error ? error : new Error(String(error)));
        throw error;
      }
      verify(() => this.#checkTiling());
      return { bytesBefore: sources.reduce((sum, s) => sum + s.sizeBytes, 0), bytesAfter: offset, records, durationMs: performance.now() - startedAt };
    } finally {
      this.#rewriting = false;
    }
  }

  /**
   * Closes the sources of the last rewrite. Not awaited: closing the last handle of an unlinked
   * file frees its blocks, which took 10–20 ms per compaction here (ext4 with discard), so a
   * rewrite does not wait for it (close() does); a failure to close changes nothing on disk.
   */
  #closeRetired(): Promise<void> {
    const retired = this.#retired;
    this.#retired = [];
    return Promise.all(retired.map((segment) => segment.handle.close().catch(() => undefined))).then(() => undefined);
  }

  /** Invariant: the segments tile the LSN space from 1 without gaps or overlaps. */
  #checkTiling(): void {
    let expected = 1;
    for (const segment of this.#segments) {
      if (segment.baseLsn !== expected) fail(`segment ${segment.name} starts at ${segment.baseLsn}, expected ${expected}`);
      expected = segment.lastLsn + 1;
    }
  }

  stats(): LogStats {
    let sizeBytes = 0;
    for (const segment of this.#segments) sizeBytes += segment.sizeBytes;
    return {
      segments: this.#segments.length,
      sizeBytes,
      nextLsn: this.#nextLsn,
      writtenLsn: this.#commit.writtenLsn,
      durableLsn: this.#commit.durableLsn,
      syncs: this.#commit.syncCount,
      batches: this.#commit.batchCount,
    };
  }

  get #active(): Segment {
    return this.#segments[this.#segments.length - 1]!;
  }

  async #writeActive(bytes: Buffer, lastLsn: number): Promise<void> {
    const active = this.#active;
    await writeAll(active.handle, [bytes], active.sizeBytes);
    // Invariant: the active segment holds no partial record after a successful write.
    active.sizeBytes += bytes.length;
    active.dataRecords += lastLsn - active.lastLsn;
    active.lastLsn = lastLsn;
  }

  #writeActiveNow(bytes: Buffer, lastLsn: number): boolean {
    const active = this.#active;
    if (!writeAllSync(active.handle, [bytes], active.sizeBytes)) return false;
    active.sizeBytes += bytes.length;
    active.dataRecords += lastLsn - active.lastLsn;
    active.lastLsn = lastLsn;
    return true;
  }

  async #roll(baseLsn: number, ordinal: number, durableLsn: number): Promise<void> {
    const active = this.#active;
    assert(baseLsn === active.lastLsn + 1, 'the next segment starts right after the active one');
    const seal = encodeSeal(active.dataRecords, active.lastLsn, durableLsn);
    await writeAll(active.handle, [seal], active.sizeBytes);
    // The seal must be durable before the next segment exists: only the last segment may be torn.
    await active.handle.datasync();
    active.sizeBytes += seal.length;
    active.sealed = true;
    const segment = emptySegment(ordinal, baseLsn, await createSegment(this.#fs, this.directory, baseLsn));
    this.#segments.push(segment);
    this.#byOrdinal.set(ordinal, segment);
  }

  #onPoisoned(error: Error): void {
    if (this.#syncTimer) clearInterval(this.#syncTimer);
    this.emit('poisoned', error);
  }

  /**
   * Flushes and syncs everything, writes the CLOSE marker, closes the files and releases the
   * lock. Idempotent: later calls return the same promise. A poisoned log closes without
   * writing anything more.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#status = 'closing';
    if (this.#syncTimer) clearInterval(this.#syncTimer);
    let failure: unknown;
    try {
      if (!this.#commit.poison) {
        await this.#commit.barrier(true);
        const active = this.#active;
        const marker = encodeMarker(RecordType.close, active.lastLsn, this.#commit.durableLsn, Buffer.alloc(0));
        await writeAll(active.handle, [marker], active.sizeBytes);
        await active.handle.datasync();
        active.sizeBytes += marker.length;
      }
    } catch (error) {
      failure = error;
    }
    for (const segment of this.#segments) await segment.handle.close().catch(() => undefined);
    await this.#closeRetired();
    await this.#lock?.release();
    this.#status = 'closed';
    if (failure !== undefined) throw failure;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

