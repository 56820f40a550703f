// Byte layout: see docs/format.md. This module holds the record constants and the functions
// that encode and decode one record header, and nothing else.
//
//   record := header:32 payload:payloadLength
//   header := headerCrc:u32 payloadLength:u32 payloadCrc:u32 type:u8 flags:u8 reserved:u16(0)
//             lsn:u64 durableLsn:u64                                   (all little-endian)
//   headerCrc = crc32(header[4..32]); it covers payloadCrc, so it vouches for the payload too,
//   and it is checked before payloadLength is trusted (a corrupt length never reads as torn).
import { assert, fail } from './assert.ts';
import { crc32Range } from './crc.ts';

export const RECORD_HEADER_SIZE = 32;
/** Where fields sit in a header, for code that reads or copies headers as they are. */
export const RECORD_LENGTH_OFFSET = 4;
export const RECORD_FLAGS_OFFSET = 13;
export const RECORD_LSN_OFFSET = 16;

/** Engine record types. Payload meaning belongs to the caller; only `data` records reach it. */
export const RecordType = {
  /** A caller's payload. */
  data: 1,
  /** Last record of a sealed segment; payload: dataRecordCount:u32 lastLsn:u64. */
  seal: 2,
  /** Last record written by a clean close; nothing may follow it. Empty payload. */
  close: 3,
} as const;
export type RecordType = (typeof RecordType)[keyof typeof RecordType];

export const RecordFlag = {
  /** More records of the same atomic group follow; replay hands a group over only when complete. */
  groupContinues: 0x01,
} as const;
const KNOWN_FLAGS = RecordFlag.groupContinues;

export const SEAL_PAYLOAD_SIZE = 12;
/** Largest LSN the engine will assign: JS numbers are exact up to 2^53 − 1. */
export const MAX_LSN = Number.MAX_SAFE_INTEGER;
/** Default and hard upper bound of `maxRecordSize` (payload bytes). */
export const DEFAULT_MAX_RECORD_SIZE = 16 * 1024 * 1024;
export const MAX_RECORD_SIZE_LIMIT = 256 * 1024 * 1024;

assert(RECORD_HEADER_SIZE === 4 + 4 + 4 + 1 + 1 + 2 + 8 + 8, 'record header layout');
assert(DEFAULT_MAX_RECORD_SIZE <= MAX_RECORD_SIZE_LIMIT, 'default max record size within the limit');
assert(MAX_RECORD_SIZE_LIMIT < 2 ** 32, 'payload length fits in u32');

export interface RecordHeader {
  readonly headerCrc: number;
  readonly payloadLength: number;
  readonly payloadCrc: number;
  readonly type: number;
  readonly flags: number;
  readonly lsn: number;
  readonly durableLsn: number;
}

/** A header a hot loop decodes into again and again (replay allocates nothing per record). */
export type MutableRecordHeader = { -readonly [K in keyof RecordHeader]: RecordHeader[K] };

export function emptyRecordHeader(): MutableRecordHeader {
  return { headerCrc: 0, payloadLength: 0, payloadCrc: 0, type: 0, flags: 0, lsn: 0, durableLsn: 0 };
}

// Byte stores, not Buffer.writeUInt32LE: every append and every copied record encodes a
// header, and the range checks of the Buffer methods cost more than the stores (the values are
// in range: assertRecordShape checked them).
function writeU32(target: Uint8Array, offset: number, value: number): void {
  target[offset] = value & 0xff;
  target[offset + 1] = (value >>> 8) & 0xff;
  target[offset + 2] = (value >>> 16) & 0xff;
  target[offset + 3] = (value >>> 24) & 0xff;
}

function writeU64(target: Uint8Array, offset: number, value: number): void {
  const high = Math.floor(value / 0x1_0000_0000);
  writeU32(target, offset, value - high * 0x1_0000_0000);
  writeU32(target, offset + 4, high);
}

/** Reads a u64 that must fit in a JS number; a larger high word returns NaN (caller treats as damage). */
export function readU64(source: Uint8Array, offset: number): number {
  const low = source[offset]! | (source[offset + 1]! << 8) | (source[offset + 2]! << 16);
  const lowTop = source[offset + 3]! * 0x100_0000;
  const high = source[offset + 4]! | (source[offset + 5]! << 8) | (source[offset + 6]! << 16);
  const highTop = source[offset + 7]!;
  if (highTop !== 0 || high > 0x1f_ffff) return Number.NaN;
  return (low + lowTop) + high * 0x1_0000_0000;
}

export function readU32(source: Uint8Array, offset: number): number {
  return (source[offset]! | (source[offset + 1]! << 8) | (source[offset + 2]! << 16)) + source[offset + 3]! * 0x100_0000;
}

/** The shape every header must have, checked before encoding and again after decoding. */
export function assertRecordShape(type: number, flags: number, lsn: number, durableLsn: number, payloadLength: number): void {
  if (!(type === RecordType.data || type === RecordType.seal || type === RecordType.close)) fail(`record type ${type}`);
  if ((flags & ~KNOWN_FLAGS) !== 0) fail(`record flags ${flags}`);
  if (!(Number.isSafeInteger(lsn) && lsn >= 0)) fail(`record lsn ${lsn}`);
  if (!(Number.isSafeInteger(durableLsn) && durableLsn >= 0)) fail(`record durableLsn ${durableLsn}`);
  if (!(durableLsn <= lsn)) fail(`durableLsn ${durableLsn} above lsn ${lsn}`);
  if (!(payloadLength >= 0 && payloadLength <= MAX_RECORD_SIZE_LIMIT)) fail(`payload length ${payloadLength}`);
}

/**
 * Writes a complete header at `target[offset..offset+32]`. `payloadCrc` is crc32(payload),
 * computed by the caller once per payload (it does not change when durableLsn is stamped).
 */
export function encodeRecordHeader(
  target: Buffer,
  offset: number,
  type: RecordType,
  flags: number,
  lsn: number,
  durableLsn: number,
  payloadLength: number,
  payloadCrc: number,
): void {
  assertRecordShape(type, flags, lsn, durableLsn, payloadLength);
  writeU32(target, offset + 4, payloadLength);
  writeU32(target, offset + 8, payloadCrc);
  target[offset + 12] = type;
  target[offset + RECORD_FLAGS_OFFSET] = flags;
  target[offset + 14] = 0;
  target[offset + 15] = 0;
  writeU64(target, offset + RECORD_LSN_OFFSET, lsn);
  writeU64(target, offset + 24, durableLsn);
  writeU32(target, offset, crc32Range(target, offset + 4, offset + RECORD_HEADER_SIZE));
}

/**
 * Decodes the header at `source[offset..]` if its checksum holds and its fields are sane;
 * otherwise returns undefined (the caller decides torn vs corrupt; see recovery.ts).
 * Precondition: at least RECORD_HEADER_SIZE bytes are available at `offset`.
 */
export function decodeRecordHeader(source: Uint8Array, offset: number): RecordHeader | undefined {
  const header = emptyRecordHeader();
  return decodeRecordHeaderInto(source, offset, header) ? header : undefined;
}

/** decodeRecordHeader into `target`; false (target unspecified) when the header is not valid. */
export function decodeRecordHeaderInto(source: Uint8Array, offset: number, target: MutableRecordHeader): boolean {
  const headerCrc = readU32(source, offset);
  if (crc32Range(source, offset + 4, offset + RECORD_HEADER_SIZE) !== headerCrc) return false;
  const type = source[offset + 12]!;
  const flags = source[offset + RECORD_FLAGS_OFFSET]!;
  const reserved = source[offset + 14]! | source[offset + 15]!;
  const payloadLength = readU32(source, offset + 4);
  const lsn = readU64(source, offset + RECORD_LSN_OFFSET);
  const durableLsn = readU64(source, offset + 24);
  // A header whose checksum holds but whose fields are impossible was written by something else.
  if (type < RecordType.data || type > RecordType.close) return false;
  if ((flags & ~KNOWN_FLAGS) !== 0 || reserved !== 0) return false;
  if (!(lsn >= 0) || !(durableLsn >= 0) || durableLsn > lsn) return false;
  if (payloadLength > MAX_RECORD_SIZE_LIMIT) return false;
  target.headerCrc = headerCrc;
  target.payloadLength = payloadLength;
  target.payloadCrc = readU32(source, offset + 8);
  target.type = type;
  target.flags = flags;
  target.lsn = lsn;
  target.durableLsn = durableLsn;
  return true;
}

export function encodeSealPayload(dataRecordCount: number, lastLsn: number): Buffer {
  const payload = Buffer.alloc(SEAL_PAYLOAD_SIZE);
  payload.writeUInt32LE(dataRecordCount, 0);
  writeU64(payload, 4, lastLsn);
  return payload;
}

export function decodeSealPayload(payload: Uint8Array): { dataRecordCount: number; lastLsn: number } | undefined {
  if (payload.length !== SEAL_PAYLOAD_SIZE) return undefined;
  const lastLsn = readU64(payload, 4);
  if (!(lastLsn >= 0)) return undefined;
  return { dataRecordCount: readU32(payload, 0), lastLsn };
}
