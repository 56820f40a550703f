// Opening a log directory: finish or undo interrupted work, check that the segments tile the
// LSN space, replay every record through the caller's visitor, and decide for the first bad
// bytes whether they are a torn tail (truncate and report) or corruption (fail, or quarantine
// with `repair`). RECOVERY_RULES is the whole decision table; docs/format.md and the tests
// refer to it by key.
//
// Why only the last segment can be torn: a segment is sealed (SEAL record, fdatasync) before
// its successor is created, and the successor becomes visible only through create-aside,
// fdatasync, rename, directory fsync. So damage in any earlier file hit bytes that were synced.
import * as path from 'node:path';
import { CorruptionError } from '../errors.ts';
import { assert, fail } from './assert.ts';
import type { FileHandle, FileSystem } from './file-system.ts';
import { parseFileName, quarantineFileName, tempFileName } from './file-names.ts';
import {
  decodeSealPayload,
  encodeRecordHeader,
  encodeSealPayload,
  RECORD_HEADER_SIZE,
  RecordFlag,
  RecordType,
} from './record-format.ts';
import type { RecordHeader } from './record-format.ts';
import { crc32 } from './crc.ts';
import { decodeSegmentHeader, SEGMENT_HEADER_SIZE, SegmentFlag } from './segment-header.ts';
import { findNextValidRecord, readFully, scanSegment } from './segment-reader.ts';
import type { ScanDamage } from './segment-reader.ts';

export type RecoveryAction = 'truncate-and-report' | 'fail' | 'quarantine-if-repair';

/** Where the damage is × what it looks like → what open does. */
export const RECOVERY_RULES = {
  /** Last segment: fewer than a header's bytes at the end. The writer died mid-header. */
  'tail-short-header': 'truncate-and-report',
  /** Last segment: a valid header whose payload runs past EOF. The writer died mid-payload. */
  'tail-payload-past-eof': 'truncate-and-report',
  /** Last segment: bad bytes, and no later valid record claims they had been synced (zero fill, garbage, reordered page write-back). */
  'tail-unvouched-damage': 'truncate-and-report',
  /** Last segment: the tail ends inside an atomic group. The group was never fully written; it never replays. */
  'tail-incomplete-group': 'truncate-and-report',
  /** Last segment: bad bytes followed by a valid record whose durableLsn covers them: synced data was damaged. */
  'vouched-damage': 'quarantine-if-repair',
  /** Any bad record, missing SEAL, bad SEAL or incomplete group in a sealed (non-last) segment. */
  'sealed-segment-damage': 'quarantine-if-repair',
  /** Bytes after a SEAL or CLOSE record: nothing may follow those. */
  'after-seal-or-close': 'quarantine-if-repair',
  /** Bad magic, header checksum, impossible header fields, or a header that disagrees with the file name. */
  'bad-segment-header': 'quarantine-if-repair',
  /** formatVersion newer than this code: never guess at a future format. Not repairable. */
  'future-format-version': 'fail',
  /** A segment does not start where its predecessor ended, or the first does not start at LSN 1. */
  'lsn-gap': 'quarantine-if-repair',
} as const satisfies Record<string, RecoveryAction>;
export type RecoveryCase = keyof typeof RECOVERY_RULES;

export interface TruncatedTail {
  readonly file: string;
  readonly offset: number;
  readonly bytes: number;
  readonly case: RecoveryCase;
  readonly damage: ScanDamage | 'lsn-mismatch' | 'incomplete-group';
}

export interface QuarantineReport {
  /** The damage that made open quarantine: the same facts a CorruptionError would carry. */
  readonly file: string;
  readonly offset: number;
  readonly case: RecoveryCase;
  /** Names of the quarantine files written or renamed into the directory. */
  readonly files: readonly string[];
}

export interface RecoveredSegment {
  readonly name: string;
  readonly baseLsn: number;
  readonly generation: number;
  /** compaction output: coverEndLsn > 0 */
  readonly coverEndLsn: number;
  handle: FileHandle;
  /** False when `handle` is read-only (the Log reopens the active segment for writing). */
  readonly writable: boolean;
  /** Last data LSN this segment accounts for (for compaction outputs: coverEndLsn). */
  lastLsn: number;
  dataRecords: number;
  /** Valid bytes; appends go here for the active segment. */
  sizeBytes: number;
  sealed: boolean;
}

export interface RecoveryResult {
  readonly segments: RecoveredSegment[];
  readonly cleanShutdown: boolean;
  readonly records: number;
  readonly lastLsn: number;
  readonly truncated: TruncatedTail | undefined;
  readonly quarantined: QuarantineReport | undefined;
  readonly removedFiles: readonly string[];
}

export type ReplayVisitor = (payload: Buffer, lsn: number, location: number, segmentIndex: number, offset: number) => void;

interface Damage {
  readonly index: number;
  readonly offset: number;
  readonly case: RecoveryCase;
  readonly detail: string;
  /**
   * Where `repair` cuts the file: the damage, or earlier when an open atomic group or a
   * SEAL/CLOSE marker precedes it (appends must never follow a marker or reuse a group's LSNs).
   */
  readonly cutOffset?: number;
}

/** Thrown inside the scan to carry a classified failure out to the decision point. */
class DamageFound {
  readonly damage: Damage;
  constructor(damage: Damage) {
    this.damage = damage;
  }
}

interface Listing {
  readonly segments: { name: string; baseLsn: number; generation: number }[];
  readonly removed: string[];
}

/** Deletes leftovers (temp files, sources of a committed compaction) and lists the segments that remain. */
async function listSegments(fs: FileSystem, directory: string): Promise<Listing> {
  const removed: string[] = [];
  const segments: { name: string; baseLsn: number; generation: number }[] = [];
  for (const name of await fs.readdir(directory)) {
    const parsed = parseFileName(name);
    if (parsed?.kind === 'temp') {
      // Never renamed into place, so never part of the log: a segment or compaction output still being built.
      await fs.unlink(path.join(directory, name));
      removed.push(name);
    } else if (parsed?.kind === 'segment') {
      segments.push({ name, baseLsn: parsed.baseLsn, generation: parsed.generation });
    }
  }
  // A compaction output (generation > 0) is committed once renamed; files it covers are its
  // sources, left behind when a crash came between the rename and their deletion.
  for (const output of segments.filter((s) => s.generation > 0).sort((a, b) => b.generation - a.generation)) {
    if (!segments.includes(output)) continue;
    const header = await readSegmentHeader(fs, directory, output.name);
    if (typeof header === 'string' || (header.flags & SegmentFlag.compacted) === 0) continue; // reported by the scan
    for (const source of segments.filter(
      (s) => s !== output && s.generation < output.generation && s.baseLsn >= output.baseLsn && s.baseLsn <= header.coverEndLsn,
    )) {
      await fs.unlink(path.join(directory, source.name));
      removed.push(source.name);
      segments.splice(segments.indexOf(source), 1);
    }
  }
  if (removed.length > 0) await fs.syncDirectory(directory);
  segments.sort((a, b) => a.baseLsn - b.baseLsn || a.generation - b.generation);
  return { segments, removed };
}

async function readSegmentHeader(fs: FileSystem, directory: string, name: string) {
  const handle = await fs.open(path.join(directory, name), 'read');
  try {
    return await readHeaderOf(handle);
  } finally {
    await handle.close();
  }
}

/** The segment header at offset 0 of an open file, or what is wrong with it. */
async function readHeaderOf(handle: FileHandle) {
  const bytes = Buffer.alloc(SEGMENT_HEADER_SIZE);
  const got = await readFully(handle, bytes, SEGMENT_HEADER_SIZE, 0);
  return decodeSegmentHeader(bytes.subarray(0, got));
}

/** Locations are segment ordinal × LOCATION_SPAN + byte offset: exact in a double for any offset below 4 GiB. */
export const LOCATION_SPAN = 0x1_0000_0000;

/** Packs (segment index, offset) into one number; see Log for the ordinal used at run time. */
export function packLocation(segmentOrdinal: number, offset: number): number {
  return segmentOrdinal * LOCATION_SPAN + offset;
}

/**
 * Recovers `directory`. Each data record is handed to `visit` in LSN order; records of an
 * atomic group only once the group's last record has been read. On a failure that is not
 * repaired, every opened handle is closed and the CorruptionError is thrown.
 */
export async function recoverDirectory(
  fs: FileSystem,
  directory: string,
  repair: boolean,
  visit: ReplayVisitor,
): Promise<RecoveryResult> {
  const listing = await listSegments(fs, directory);
  const segments: RecoveredSegment[] = [];
  let records = 0;
  let expectedLsn = 1;
  let truncated: TruncatedTail | undefined;
  let cleanShutdown = false;
  let quarantined: QuarantineReport | undefined;

  try {
    for (let index = 0; index < listing.segments.length; index++) {
      const entry = listing.segments[index]!;
      const isLast = index === listing.segments.length - 1;
      const filePath = path.join(directory, entry.name);
      const handle = await fs.open(filePath, isLast ? 'write' : 'read');
      const fileSize = await handle.size();
      const header = await readHeaderOf(handle);
      const segment: RecoveredSegment = {
        name: entry.name,
        baseLsn: entry.baseLsn,
        generation: entry.generation,
        coverEndLsn: typeof header === 'string' ? 0 : header.coverEndLsn,
        handle,
        writable: isLast,
        lastLsn: entry.baseLsn - 1,
        dataRecords: 0,
        sizeBytes: SEGMENT_HEADER_SIZE,
        sealed: false,
      };
      segments.push(segment);

      if (header === 'future-version') {
        throw new DamageFound({ index, offset: 4, case: 'future-format-version', detail: 'segment written by a newer format version' });
      }
      if (typeof header === 'string') {
        throw new DamageFound({ index, offset: 0, case: 'bad-segment-header', detail: `segment header: ${header}` });
      }
      if (header.baseLsn !== entry.baseLsn || ((header.flags & SegmentFlag.compacted) !== 0) !== entry.generation > 0) {
        throw new DamageFound({ index, offset: 0, case: 'bad-segment-header', detail: 'segment header disagrees with its file name' });
      }
      if (header.baseLsn !== expectedLsn) {
        throw new DamageFound({
          index,
          offset: 0,
          case: 'lsn-gap',
          detail: index === 0
            ? `first segment starts at LSN ${header.baseLsn}, not 1: earlier segments are missing`
            : `segment starts at LSN ${header.baseLsn}, expected ${expectedLsn}: a segment is missing`,
        });
      }
      const outcome = await scanOne(segment, header.coverEndLsn, index, fileSize, isLast, visit);
      records += outcome.records;
      if (outcome.truncated !== undefined) {
        truncated = { ...outcome.truncated, file: filePath };
        await handle.truncate(segment.sizeBytes);
        await handle.datasync();
      }
      if (outcome.closedAt !== undefined) {
        // Clean shutdown: drop the CLOSE marker so appends continue in this segment.
        cleanShutdown = true;
        await handle.truncate(outcome.closedAt);
        await handle.datasync();
      }
      expectedLsn = segment.lastLsn + 1;
    }
  } catch (error) {
    if (!(error instanceof DamageFound)) {
      await closeAll(segments);
      throw error;
    }
    const { damage } = error;
    const damaged = segments[damage.index]!;
    const file = path.join(directory, damaged.name);
    if (!repair || RECOVERY_RULES[damage.case] === 'fail') {
      await closeAll(segments);
      throw new CorruptionError(file, damage.offset, damage.case, damage.detail);
    }
    quarantined = await quarantineFrom(fs, directory, listing.segments, segments, damage);
  }

  // After a process crash the tail may sit only in the page cache, and a segment renamed just
  // before the crash may lack a synced directory entry. New batches will vouch (durableLsn) for
  // everything recovered, so make it durable first.
  const last = segments[segments.length - 1];
  if (last !== undefined && last.writable) {
    if (!cleanShutdown && !last.sealed && last.sizeBytes > SEGMENT_HEADER_SIZE) {
      // After a failed fdatasync Linux marks the pages clean: a restarted process still reads
      // them, but no sync will ever write them. So an unclean tail is copied into a fresh file
      // and swapped in atomically; rewriting it in place would expose bytes that were synced
      // (and acknowledged) to a torn write if the power failed during this open.
      last.handle = await replaceByCopy(fs, directory, last);
    } else {
      await last.handle.datasync();
    }
  }
  await fs.syncDirectory(directory);
  const lastLsn = segments.length === 0 ? 0 : segments[segments.length - 1]!.lastLsn;
  return { segments, cleanShutdown, records, lastLsn, truncated, quarantined, removedFiles: listing.removed };
}

/**
 * Copies the segment's valid bytes into `<name>.tmp`, syncs it, and renames it over the segment
 * (then syncs the directory). A crash at any step leaves the old file or the complete copy.
 * Returns a writable handle on the copy; the old handle is closed.
 */
async function replaceByCopy(fs: FileSystem, directory: string, segment: RecoveredSegment): Promise<FileHandle> {
  const finalPath = path.join(directory, segment.name);
  const tempPath = path.join(directory, tempFileName(segment.baseLsn, segment.generation));
  await fs.unlink(tempPath).catch(() => undefined);
  const copy = await fs.open(tempPath, 'create');
  try {
    const chunk = Buffer.allocUnsafe(Math.min(4 * 1024 * 1024, segment.sizeBytes));
    for (let at = 0; at < segment.sizeBytes; ) {
      const length = Math.min(chunk.length, segment.sizeBytes - at);
      if ((await readFully(segment.handle, chunk, length, at)) !== length) throw new Error(`short read while copying ${segment.name} at offset ${at}`);
      if ((await copy.writev([chunk.subarray(0, length)], at)) !== length) throw new Error(`short write while copying ${segment.name} at offset ${at}`);
      at += length;
    }
    await copy.datasync();
    await fs.rename(tempPath, finalPath);
  } catch (error) {
    await copy.close().catch(() => undefined);
    throw error;
  }
  await segment.handle.close();
  return copy;
}

async function closeAll(segments: readonly RecoveredSegment[]): Promise<void> {
  for (const segment of segments) await segment.handle.close().catch(() => undefined);
}

interface ScanOutcome {
  readonly records: number;
  readonly truncated: Omit<TruncatedTail, 'file'> | undefined;
  readonly closedAt: number | undefined;
}

/** Scans one segment, replays its records, and classifies the first damage (throws DamageFound when it is not a torn tail). */
async function scanOne(
  segment: RecoveredSegment,
  coverEndLsn: number,
  index: number,
  fileSize: number,
  isLast: boolean,
  visit: ReplayVisitor,
): Promise<ScanOutcome> {
  const compacted = coverEndLsn > 0;
  const ordinal = index; // recovery numbers segments by position; the Log keeps these ordinals
  let expected = segment.baseLsn;
  let records = 0;
  let sealAt: number | undefined;
  let closeAt: number | undefined;
  let afterMarker: number | undefined;
  let badLsnAt: number | undefined;
  let badSeal: string | undefined;
  // Records of an open atomic group wait here (copied: the scan buffer is reused).
  let group: { payload: Buffer; lsn: number; offset: number }[] = [];

  const result = await scanSegment(segment.handle, fileSize, SEGMENT_HEADER_SIZE, (header: RecordHeader, payload, offset) => {
    if (sealAt !== undefined || closeAt !== undefined) {
      afterMarker = offset;
      return false;
    }
    if (header.type === RecordType.data) {
      const lsnOk = compacted ? header.lsn >= expected && header.lsn <= coverEndLsn : header.lsn === expected;
      if (!lsnOk) {
        badLsnAt = offset;
        return false;
      }
      expected = header.lsn + 1;
      if ((header.flags & RecordFlag.groupContinues) !== 0 || group.length > 0) {
        group.push({ payload: Buffer.from(payload), lsn: header.lsn, offset });
        if ((header.flags & RecordFlag.groupContinues) === 0) {
          for (const member of group) {
            visit(member.payload, member.lsn, packLocation(ordinal, member.offset), index, member.offset);
            segment.dataRecords++;
            records++;
          }
          segment.lastLsn = header.lsn;
          segment.sizeBytes = offset + RECORD_HEADER_SIZE + header.payloadLength;
          group = [];
        }
        return true;
      }
      visit(payload, header.lsn, packLocation(ordinal, offset), index, offset);
      segment.dataRecords++;
      records++;
      segment.lastLsn = header.lsn;
      segment.sizeBytes = offset + RECORD_HEADER_SIZE + header.payloadLength;
      return true;
    }
    if (group.length > 0) {
      badSeal = 'a marker record interrupts an atomic group';
      sealAt = offset;
      return false;
    }
    if (header.type === RecordType.seal) {
      const seal = decodeSealPayload(payload);
      const wantLast = compacted ? coverEndLsn : expected - 1;
      if (seal === undefined || seal.dataRecordCount !== segment.dataRecords || seal.lastLsn !== wantLast) {
        badSeal = 'SEAL record disagrees with the records before it';
      }
      sealAt = offset;
      segment.sizeBytes = offset + RECORD_HEADER_SIZE + header.payloadLength;
      return true;
    }
    closeAt = offset;
    return true;
  });

  const groupStart = group.length > 0 ? group[0]!.offset : undefined;
  const fail = (offset: number, kind: RecoveryCase, detail: string): never => {
    const cutOffset = Math.min(offset, groupStart ?? offset, sealAt ?? offset, closeAt ?? offset);
    throw new DamageFound({ index, offset, case: kind, detail, cutOffset });
  };
  if (badSeal !== undefined) fail(sealAt!, 'sealed-segment-damage', badSeal);
  if (afterMarker !== undefined) fail(afterMarker, 'after-seal-or-close', 'a record follows a SEAL or CLOSE record');
  const damageAt = badLsnAt ?? (result.damage !== undefined ? result.endOffset : undefined);
  if (sealAt !== undefined) {
    segment.sealed = true;
    if (compacted) segment.lastLsn = coverEndLsn;
    if (damageAt !== undefined) fail(damageAt, 'after-seal-or-close', 'bad bytes follow a SEAL record');
    return { records, truncated: undefined, closedAt: undefined };
  }
  if (!isLast || compacted) {
    const detail = damageAt !== undefined
      ? `bad record (${badLsnAt !== undefined ? 'lsn out of sequence' : result.damage}) in a sealed segment`
      : group.length > 0 ? 'sealed segment ends inside an atomic group' : 'sealed segment has no SEAL record';
    fail(damageAt ?? result.endOffset, 'sealed-segment-damage', detail);
  }
  if (closeAt !== undefined) {
    if (damageAt !== undefined) fail(damageAt, 'after-seal-or-close', 'bad bytes follow a CLOSE record');
    return { records, truncated: undefined, closedAt: closeAt };
  }

  // The last, unsealed segment: decide between a torn tail and damaged synced data.
  if (damageAt === undefined) {
    if (groupStart === undefined) return { records, truncated: undefined, closedAt: undefined };
    // Caused by the writer crashing between the records of one atomic group: none of it replays.
    return { records, truncated: tornAt(segment, fileSize, groupStart, 'tail-incomplete-group', 'incomplete-group'), closedAt: undefined };
  }
  const damage = badLsnAt !== undefined ? 'lsn-mismatch' : result.damage!;
  const cut = groupStart ?? damageAt;
  // A torn tail inside an atomic group takes the whole group with it; report it as such.
  const torn = (kind: RecoveryCase): ScanOutcome => ({
    records,
    truncated: tornAt(segment, fileSize, cut, groupStart === undefined ? kind : 'tail-incomplete-group', damage),
    closedAt: undefined,
  });
  // Caused by the writer crashing in the middle of writing a header.
  if (damage === 'short-header') return torn('tail-short-header');
  // The header's checksum holds, so the length is real: the writer crashed mid-payload.
  if (damage === 'payload-past-eof') return torn('tail-payload-past-eof');
  // Bad bytes with more bytes after them. If a later valid record says (through durableLsn) that
  // everything up to the damaged LSN had been fdatasync'ed before it was written, no crash can
  // explain the damage. Otherwise the bad bytes and anything after them were never synced:
  // zero fill or garbage from a torn write, or pages written back out of order.
  const lastGoodLsn = expected - 1;
  const witness = await findNextValidRecord(segment.handle, fileSize, damageAt, (h) => h.lsn > lastGoodLsn);
  if (witness !== undefined && witness.header.durableLsn > lastGoodLsn) {
    fail(
      damageAt,
      'vouched-damage',
      `bad record (${damage}) before a record at offset ${witness.offset} whose batch was written after LSN ${witness.header.durableLsn} was synced`,
    );
  }
  return torn('tail-unvouched-damage');
}

function tornAt(
  segment: RecoveredSegment,
  fileSize: number,
  offset: number,
  kind: RecoveryCase,
  damage: TruncatedTail['damage'],
): Omit<TruncatedTail, 'file'> {
  if (RECOVERY_RULES[kind] !== 'truncate-and-report') fail(`${kind} is not a torn tail`);
  assert(offset >= SEGMENT_HEADER_SIZE && offset <= fileSize, 'truncation inside the file body');
  segment.sizeBytes = offset;
  return { offset, bytes: fileSize - offset, case: kind, damage };
}

/**
 * `repair`: keep everything before the damage, move everything from it on into quarantine
 * files, and leave a log that opens cleanly. Nothing is deleted.
 */
async function quarantineFrom(
  fs: FileSystem,
  directory: string,
  listed: readonly { name: string }[],
  segments: RecoveredSegment[],
  damage: Damage,
): Promise<QuarantineReport> {
  const nowMs = Date.now();
  const files: string[] = [];
  const damaged = segments[damage.index]!;
  const cutOffset = damage.cutOffset ?? damage.offset;
  const keepHead = cutOffset >= SEGMENT_HEADER_SIZE && damage.case !== 'lsn-gap' && damage.case !== 'bad-segment-header';
  if (keepHead) {
    // Copy the damaged file's bytes from the cut on into a quarantine file, then cut them off.
    const size = await damaged.handle.size();
    const rest = Buffer.alloc(size - cutOffset);
    await readFully(damaged.handle, rest, rest.length, cutOffset);
    const name = quarantineFileName(damaged.name, nowMs);
    const out = await fs.open(path.join(directory, name), 'create');
    try {
      const written = await out.writev([rest], 0);
      if (written !== rest.length) throw new Error(`short write while quarantining ${damaged.name}`);
      await out.datasync();
    } finally {
      await out.close();
    }
    files.push(name);
    await truncateForRepair(fs, directory, damaged, cutOffset);
  }
  const firstMoved = keepHead ? damage.index + 1 : damage.index;
  for (const entry of listed.slice(firstMoved)) {
    const name = quarantineFileName(entry.name, nowMs);
    await fs.rename(path.join(directory, entry.name), path.join(directory, name));
    files.push(name);
  }
  for (const segment of segments.splice(firstMoved)) await segment.handle.close().catch(() => undefined);
  await fs.syncDirectory(directory);
  return { file: path.join(directory, damaged.name), offset: damage.offset, case: damage.case, files };
}

/** Cuts a damaged segment at `offset`; a cut compaction output is re-sealed, since appends never go to one. */
async function truncateForRepair(fs: FileSystem, directory: string, segment: RecoveredSegment, offset: number): Promise<void> {
  // The handle of a non-last segment was opened read-only: reopen for writing.
  const handle = await fs.open(path.join(directory, segment.name), 'write');
  try {
    await handle.truncate(offset);
    segment.sizeBytes = offset;
    segment.sealed = false;
    if (segment.coverEndLsn > 0) {
      const payload = encodeSealPayload(segment.dataRecords, segment.coverEndLsn);
      const header = Buffer.alloc(RECORD_HEADER_SIZE);
      encodeRecordHeader(header, 0, RecordType.seal, 0, segment.coverEndLsn, 0, payload.length, crc32(payload));
      const bytes = Buffer.concat([header, payload]);
      if ((await handle.writev([bytes], offset)) !== bytes.length) throw new Error(`short write while repairing ${segment.name}`);
      segment.sizeBytes = offset + bytes.length;
      segment.sealed = true;
      segment.lastLsn = segment.coverEndLsn;
    }
    await handle.datasync();
  } finally {
    await handle.close();
  }
}

