// The scanner reads ahead: while the visitor works through one chunk, the next is being read,
// and a record that straddles two chunks is carried over by a copy (or, when it is larger than
// the carry room, read again from its start). Whatever the chunk size, it must visit the same
// records with the same bytes, and stop at the same damage.
import { describe, expect } from 'vitest';
import fc from 'fast-check';
import { join } from 'node:path';
import { crc32 } from '../../src/engine/crc.ts';
import { nodeFileSystem } from '../../src/engine/file-system.ts';
import { Log } from '../../src/engine/log.ts';
import { SEGMENT_HEADER_SIZE } from '../../src/engine/segment-header.ts';
import { scanSegment } from '../../src/engine/segment-reader.ts';
import { fileSize, flipByte, segmentFiles, truncateAt } from '../support/bytes.ts';
import { test } from '../support/temp-dir.ts';

/** Payload `i` of `size` bytes: its index, then a byte pattern that differs per record. */
function payloadOf(i: number, size: number): Buffer {
  const payload = Buffer.alloc(Math.max(size, 4));
  payload.writeUInt32LE(i, 0);
  for (let at = 4; at < payload.length; at++) payload[at] = (i * 31 + at) & 0xff;
  return payload;
}

/** Everything one scan of `file` reports: each record's offset, type, LSN and payload hash (the log's CLOSE marker included), and how it ended. */
async function scanAll(file: string, chunkBytes?: number): Promise<{ records: string[]; endOffset: number; damage: string | undefined }> {
  const handle = await nodeFileSystem.open(file, 'read');
  try {
    const records: string[] = [];
    const result = await scanSegment(handle, await handle.size(), SEGMENT_HEADER_SIZE, (header, payload, offset) => {
      records.push(`${offset}:${header.type}:${header.lsn}:${header.payloadLength}:${crc32(payload)}`);
    }, chunkBytes);
    return { records, endOffset: result.endOffset, damage: result.damage };
  } finally {
    await handle.close();
  }
}

describe('scanSegment', () => {
  test('visits the same records whatever the chunk size, including records larger than a chunk and than the carry room', async ({ dir }) => {
    // Sizes from empty to 100 KiB: beyond the 64 KiB a straddling record may be carried in.
    const sizes = fc.sample(fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1000, max: 5000 }), fc.integer({ min: 60_000, max: 100_000 })), { numRuns: 60, seed: 7 });
    const log = await Log.open(dir, { segmentSize: 64 * 1024 * 1024 });
    for (const [i, size] of sizes.entries()) await log.append(payloadOf(i, size));
    await log.close();
    const [file] = segmentFiles(dir);
    const whole = await scanAll(file!, 64 * 1024 * 1024);
    expect(whole.records).toHaveLength(sizes.length + 1); // and the CLOSE marker
    expect(whole.damage).toBeUndefined();
    for (const chunkBytes of [1, 7, 64, 1000, 4096, 65_536, 70_000, 1 << 20]) {
      expect(await scanAll(file!, chunkBytes), `chunk ${chunkBytes}`).toEqual(whole);
    }
  });

  test('stops at the same torn tail and the same damage whatever the chunk size', async ({ dir }) => {
    const log = await Log.open(dir);
    for (let i = 0; i < 200; i++) await log.append(payloadOf(i, 100 + ((i * 977) % 3000)));
    await log.close();
    const [file] = segmentFiles(dir);
    const size = fileSize(file!);
    flipByte(file!, Math.floor(size * 0.6)); // inside some record in the second half
    truncateAt(file!, size - 50); // and a torn tail that is never reached
    const reference = await scanAll(file!, 1 << 24);
    expect(reference.damage).toMatch(/header-crc|payload-crc/);
    for (const chunkBytes of [13, 512, 4096, 30_000]) {
      expect(await scanAll(file!, chunkBytes), `chunk ${chunkBytes}`).toEqual(reference);
    }
  });

  test('stops at a damaged payload and at a damaged header, at the record they belong to', async ({ dir }) => {
    const log = await Log.open(dir);
    for (let i = 0; i < 10; i++) await log.append(payloadOf(i, 100));
    await log.close();
    const [file] = segmentFiles(dir);
    const recordBytes = 32 + 100; // header + payload
    // A payload byte of the fourth record.
    flipByte(file!, SEGMENT_HEADER_SIZE + 3 * recordBytes + 32 + 50);
    const payloadDamage = await scanAll(file!);
    expect(payloadDamage).toMatchObject({ damage: 'payload-crc', endOffset: SEGMENT_HEADER_SIZE + 3 * recordBytes });
    expect(payloadDamage.records).toHaveLength(3);
    // Mended, and a header byte of the sixth record damaged instead.
    flipByte(file!, SEGMENT_HEADER_SIZE + 3 * recordBytes + 32 + 50);
    flipByte(file!, SEGMENT_HEADER_SIZE + 5 * recordBytes + 9);
    const headerDamage = await scanAll(file!);
    expect(headerDamage).toMatchObject({ damage: 'header-crc', endOffset: SEGMENT_HEADER_SIZE + 5 * recordBytes });
    expect(headerDamage.records).toHaveLength(5);
  });

  test('lets no read outlive it when the visitor stops early', async ({ dir }) => {
    const log = await Log.open(dir);
    for (let i = 0; i < 100; i++) await log.append(payloadOf(i, 1000));
    await log.close();
    const handle = await nodeFileSystem.open(join(dir, segmentFiles(dir)[0]!.split('/').pop()!), 'read');
    let inFlight = 0;
    const counted = { ...handle, read: async (...args: Parameters<typeof handle.read>) => {
      inFlight++;
      try {
        return await handle.read(...args);
      } finally {
        inFlight--;
      }
    } };
    let visited = 0;
    const result = await scanSegment(counted, await handle.size(), SEGMENT_HEADER_SIZE, () => ++visited < 5, 2048);
    expect(result).toMatchObject({ stopped: true });
    expect(inFlight).toBe(0);
    await handle.close();
  });
});
