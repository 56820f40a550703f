// The record and segment header codecs: round trips, and that every single-byte change in a
// header is caught before any field (the length above all) is trusted.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { crc32, crc32Combine, crc32Portable, crc32WithoutPrefix } from '../../src/engine/crc.ts';
import {
  decodeRecordHeader,
  decodeSealPayload,
  encodeRecordHeader,
  encodeSealPayload,
  RECORD_HEADER_SIZE,
  RecordFlag,
  RecordType,
} from '../../src/engine/record-format.ts';
import { decodeSegmentHeader, encodeSegmentHeader, SEGMENT_HEADER_SIZE, SegmentFlag } from '../../src/engine/segment-header.ts';
import { parseFileName, segmentFileName, tempFileName, quarantineFileName } from '../../src/engine/file-names.ts';

describe('record header', () => {
  it('round-trips every field, including LSNs above 2^32', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
        fc.integer({ min: 0, max: 1 << 24 }),
        fc.integer({ min: 0, max: 0xffffffff }),
        fc.boolean(),
        (lsn, payloadLength, payloadCrc, continues) => {
          const durableLsn = Math.floor(lsn / 2);
          const bytes = Buffer.alloc(RECORD_HEADER_SIZE);
          const flags = continues ? RecordFlag.groupContinues : 0;
          encodeRecordHeader(bytes, 0, RecordType.data, flags, lsn, durableLsn, payloadLength, payloadCrc);
          expect(decodeRecordHeader(bytes, 0)).toMatchObject({ type: RecordType.data, flags, lsn, durableLsn, payloadLength, payloadCrc });
        },
      ),
    );
  });

  it('rejects the header when any single byte of it changes', () => {
    const bytes = Buffer.alloc(RECORD_HEADER_SIZE);
    encodeRecordHeader(bytes, 0, RecordType.data, 0, 123456789, 123456000, 100, 0xdeadbeef);
    for (let offset = 0; offset < RECORD_HEADER_SIZE; offset++) {
      for (const mask of [0x01, 0x80, 0xff]) {
        const damaged = Buffer.from(bytes);
        damaged[offset] = damaged[offset]! ^ mask;
        expect(decodeRecordHeader(damaged, 0), `byte ${offset} mask ${mask}`).toBeUndefined();
      }
    }
  });

  it('rejects an all-zero header (preallocated or zero-filled space)', () => {
    expect(decodeRecordHeader(Buffer.alloc(RECORD_HEADER_SIZE), 0)).toBeUndefined();
  });

  it('round-trips the SEAL payload', () => {
    expect(decodeSealPayload(encodeSealPayload(17, 2 ** 40 + 3))).toEqual({ dataRecordCount: 17, lastLsn: 2 ** 40 + 3 });
    expect(decodeSealPayload(Buffer.alloc(5))).toBeUndefined();
  });
});

describe('segment header', () => {
  it('round-trips appender and compacted headers', () => {
    const plain = encodeSegmentHeader({ baseLsn: 5, coverEndLsn: 0, flags: 0 });
    expect(plain).toHaveLength(SEGMENT_HEADER_SIZE);
    expect(decodeSegmentHeader(plain)).toEqual({ formatVersion: 1, baseLsn: 5, coverEndLsn: 0, flags: 0 });
    const compacted = encodeSegmentHeader({ baseLsn: 1, coverEndLsn: 2 ** 35, flags: SegmentFlag.compacted });
    expect(decodeSegmentHeader(compacted)).toMatchObject({ coverEndLsn: 2 ** 35, flags: SegmentFlag.compacted });
  });

  it('names what is wrong with a bad header', () => {
    const good = encodeSegmentHeader({ baseLsn: 1, coverEndLsn: 0, flags: 0 });
    expect(decodeSegmentHeader(good.subarray(0, 10))).toBe('short-header');
    const magic = Buffer.from(good);
    magic[0] = 0;
    expect(decodeSegmentHeader(magic)).toBe('bad-magic');
    const crc = Buffer.from(good);
    crc[9] = crc[9]! ^ 1;
    expect(decodeSegmentHeader(crc)).toBe('header-crc');
    const future = Buffer.from(good);
    future.writeUInt16LE(9, 4);
    future.writeUInt32LE(crc32(future.subarray(0, 28)), 28);
    expect(decodeSegmentHeader(future)).toBe('future-version');
  });
});

describe('crc32', () => {
  it('matches the standard check value and agrees with the portable implementation at every size', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 5000 }), (bytes) => {
        expect(crc32(bytes)).toBe(crc32Portable(bytes));
      }),
      { numRuns: 200 },
    );
  });

  it('combines the checksums of two parts into the checksum of their concatenation, and takes a known prefix back out', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ maxLength: 5000 }), (a, b) => {
        const whole = new Uint8Array(a.length + b.length);
        whole.set(a, 0);
        whole.set(b, a.length);
        expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(crc32(whole));
        expect(crc32WithoutPrefix(crc32(whole), crc32(a), b.length)).toBe(crc32(b));
      }),
      { numRuns: 300 },
    );
    // Lengths past 2^31 exercise the operator's high bits (the checksums are arbitrary here).
    const big = 2 ** 33 + 12345;
    expect(crc32Combine(crc32Combine(0x12345678, 0, big), 0, 1)).toBe(crc32Combine(0x12345678, 0, big + 1));
  });
});

describe('file names', () => {
  it('parses what it makes and ignores foreign names', () => {
    expect(parseFileName(segmentFileName(42, 3))).toEqual({ kind: 'segment', baseLsn: 42, generation: 3 });
    expect(parseFileName(tempFileName(42, 0))).toEqual({ kind: 'temp', baseLsn: 42, generation: 0 });
    expect(parseFileName(quarantineFileName(segmentFileName(1, 0), 1700000000000))).toEqual({ kind: 'quarantine' });
    expect(parseFileName('LOCK')).toEqual({ kind: 'lock' });
    expect(parseFileName('LOCK.break')).toEqual({ kind: 'lock' });
    expect(parseFileName('seg-1-0.log')).toBeUndefined();
    expect(parseFileName('notes.txt')).toBeUndefined();
  });
});
