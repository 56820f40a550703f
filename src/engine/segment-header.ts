// Byte layout: see docs/format.md. The 32-byte header at offset 0 of every segment file.
//
//   segmentHeader := magic:u32("BLRO") formatVersion:u16 headerSize:u16 baseLsn:u64
//                    coverEndLsn:u64 flags:u32 headerCrc:u32          (little-endian)
//   headerCrc = crc32(bytes 0..28).
// baseLsn is the first LSN the file may hold. coverEndLsn is 0 for segments the appender
// writes; a compaction output covers [baseLsn, coverEndLsn] and replaces every older file
// in that range.
import { assert, fail } from './assert.ts';
import { crc32 } from './crc.ts';
import { readU64 } from './record-format.ts';

export const SEGMENT_HEADER_SIZE = 32;
export const SEGMENT_MAGIC = 0x4f524c42; // bytes "BLRO" in little-endian order
export const FORMAT_VERSION = 1;

export const SegmentFlag = {
  /** Written by compaction: LSNs are strictly increasing but not dense inside [base, coverEnd]. */
  compacted: 0x01,
} as const;
const KNOWN_SEGMENT_FLAGS = SegmentFlag.compacted;

assert(SEGMENT_HEADER_SIZE === 4 + 2 + 2 + 8 + 8 + 4 + 4, 'segment header layout');

export interface SegmentHeader {
  readonly formatVersion: number;
  readonly baseLsn: number;
  readonly coverEndLsn: number;
  readonly flags: number;
}

export type SegmentHeaderProblem = 'short-header' | 'bad-magic' | 'header-crc' | 'future-version' | 'bad-header';

export function encodeSegmentHeader(header: Omit<SegmentHeader, 'formatVersion'>): Buffer {
  if (!(Number.isSafeInteger(header.baseLsn) && header.baseLsn >= 1)) fail(`baseLsn ${header.baseLsn}`);
  assert(header.coverEndLsn === 0 || header.coverEndLsn >= header.baseLsn - 1, 'coverEnd before base');
  if ((header.flags & ~KNOWN_SEGMENT_FLAGS) !== 0) fail(`segment flags ${header.flags}`);
  const target = Buffer.alloc(SEGMENT_HEADER_SIZE);
  target.writeUInt32LE(SEGMENT_MAGIC, 0);
  target.writeUInt16LE(FORMAT_VERSION, 4);
  target.writeUInt16LE(SEGMENT_HEADER_SIZE, 6);
  target.writeUInt32LE(header.baseLsn % 0x1_0000_0000, 8);
  target.writeUInt32LE(Math.floor(header.baseLsn / 0x1_0000_0000), 12);
  target.writeUInt32LE(header.coverEndLsn % 0x1_0000_0000, 16);
  target.writeUInt32LE(Math.floor(header.coverEndLsn / 0x1_0000_0000), 20);
  target.writeUInt32LE(header.flags, 24);
  target.writeUInt32LE(crc32(target.subarray(0, 28)), 28);
  return target;
}

/** Decodes a header, or names what is wrong with it (every problem is corruption, see recovery.ts). */
export function decodeSegmentHeader(source: Uint8Array): SegmentHeader | SegmentHeaderProblem {
  if (source.length < SEGMENT_HEADER_SIZE) return 'short-header';
  const view = Buffer.from(source.buffer, source.byteOffset, SEGMENT_HEADER_SIZE);
  if (view.readUInt32LE(0) !== SEGMENT_MAGIC) return 'bad-magic';
  if (crc32(view.subarray(0, 28)) !== view.readUInt32LE(28)) return 'header-crc';
  const formatVersion = view.readUInt16LE(4);
  if (formatVersion > FORMAT_VERSION) return 'future-version';
  const baseLsn = readU64(view, 8);
  const coverEndLsn = readU64(view, 16);
  const flags = view.readUInt32LE(24);
  if (formatVersion < 1 || view.readUInt16LE(6) !== SEGMENT_HEADER_SIZE) return 'bad-header';
  if (!(baseLsn >= 1) || !(coverEndLsn >= 0) || (flags & ~KNOWN_SEGMENT_FLAGS) !== 0) return 'bad-header';
  const compacted = (flags & SegmentFlag.compacted) !== 0;
  if (compacted !== coverEndLsn > 0) return 'bad-header';
  if (compacted && coverEndLsn < baseLsn - 1) return 'bad-header';
  return { formatVersion, baseLsn, coverEndLsn, flags };
}
