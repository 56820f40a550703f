// Recovery decides, for the first bad bytes of a log, between a torn tail (truncate and
// report) and corruption (CorruptionError naming file and offset, or quarantine with
// `repair`). Each test damages a real log on disk the way a crash or a bad disk would and
// checks the exact outcome against RECOVERY_RULES.
import { describe, expect } from 'vitest';
import fc from 'fast-check';
import { copyFileSync, readdirSync, writeFileSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { rm } from 'node:fs/promises';
import { Log } from '../../src/engine/log.ts';
import type { LogOptions } from '../../src/engine/log.ts';
import { RECOVERY_RULES } from '../../src/engine/recovery.ts';
import { CorruptionError } from '../../src/errors.ts';
import { appendBytes, fileSize, flipByte, segmentFiles, truncateAt, zeroRange } from '../support/bytes.ts';
import { makeTempDir, test } from '../support/temp-dir.ts';

const HEADER = 32;
const SEGMENT_HEADER = 32;

function payloadOf(i: number, size = 40): Buffer {
  const bytes = Buffer.alloc(size, (i * 7) & 0xff);
  bytes.writeUInt32LE(i, 0);
  return bytes;
}

async function writeLog(dir: string, count: number, size = 40, options: LogOptions = {}): Promise<void> {
  const log = await Log.open(dir, options);
  for (let i = 0; i < count; i++) await log.append(payloadOf(i, size));
  await log.close();
}

/** Removes the CLOSE marker so the log looks like the writer crashed after its last append. */
function dropCloseMarker(dir: string): void {
  const files = segmentFiles(dir);
  const last = files[files.length - 1]!;
  truncateAt(last, fileSize(last) - HEADER);
}

async function reopen(dir: string, options: LogOptions = {}) {
  const lsns: number[] = [];
  const log = await Log.open(dir, { ...options, onRecord: (_payload, lsn) => lsns.push(lsn) });
  const recovery = log.recovery;
  await log.close();
  return { lsns, recovery };
}

async function openError(dir: string, options: LogOptions = {}): Promise<CorruptionError> {
  const error = await Log.open(dir, options).then(
    async (log) => {
      await log.close();
      throw new Error('open succeeded');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CorruptionError);
  return error as CorruptionError;
}

describe('recovery', () => {
  test('a record cut mid-payload at the tail is truncated and reported', async ({ dir }) => {
    await writeLog(dir, 5);
    dropCloseMarker(dir);
    const [file] = segmentFiles(dir);
    truncateAt(file!, fileSize(file!) - 10);
    const { lsns, recovery } = await reopen(dir);
    expect(lsns).toEqual([1, 2, 3, 4]);
    expect(recovery.cleanShutdown).toBe(false);
    expect(recovery.truncated).toMatchObject({ file, offset: SEGMENT_HEADER + 4 * (HEADER + 40), bytes: HEADER + 30, case: 'tail-payload-past-eof' });
    expect(RECOVERY_RULES['tail-payload-past-eof']).toBe('truncate-and-report');
    // The truncation is on disk: a second open finds nothing to cut.
    expect((await reopen(dir)).recovery.truncated).toBeUndefined();
  });

  test('a zero-filled tail (size updated before the data) is truncated', async ({ dir }) => {
    await writeLog(dir, 3);
    dropCloseMarker(dir);
    const [file] = segmentFiles(dir);
    appendBytes(file!, Buffer.alloc(4096));
    const { lsns, recovery } = await reopen(dir);
    expect(lsns).toEqual([1, 2, 3]);
    expect(recovery.truncated).toMatchObject({ bytes: 4096, case: 'tail-unvouched-damage', damage: 'header-crc' });
  });

  test('a bad checksum in the last batch of the last segment is a torn tail', async ({ dir }) => {
    await writeLog(dir, 3);
    dropCloseMarker(dir);
    const [file] = segmentFiles(dir);
    flipByte(file!, fileSize(file!) - 5);
    const { lsns, recovery } = await reopen(dir);
    expect(lsns).toEqual([1, 2]);
    expect(recovery.truncated).toMatchObject({ case: 'tail-unvouched-damage', damage: 'payload-crc' });
  });

  test('fails with CorruptionError when later synced records vouch for the damaged one', async ({ dir }) => {
    await writeLog(dir, 3); // sync mode: record 3 was written after record 2 was synced
    const [file] = segmentFiles(dir);
    const second = SEGMENT_HEADER + (HEADER + 40);
    flipByte(file!, second + HEADER + 1);
    const error = await openError(dir);
    expect(error).toMatchObject({ code: 'ERR_BLERO_CORRUPT', file, offset: second, reason: 'vouched-damage' });
    expect(error.message).toContain(`offset ${second}`);
  });

  test('a flipped length field is caught by the header checksum, not taken for a torn tail', async ({ dir }) => {
    await writeLog(dir, 3);
    const [file] = segmentFiles(dir);
    const second = SEGMENT_HEADER + (HEADER + 40);
    flipByte(file!, second + 6, 0x01); // payloadLength high byte: would point far past EOF
    const error = await openError(dir);
    expect(error).toMatchObject({ offset: second, reason: 'vouched-damage' });
  });

  test('fails with CorruptionError when a sealed segment has a bad checksum', async ({ dir }) => {
    await writeLog(dir, 60, 100, { segmentSize: 4096 });
    const files = segmentFiles(dir);
    expect(files.length).toBeGreaterThan(1);
    flipByte(files[0]!, SEGMENT_HEADER + HEADER + 3);
    const error = await openError(dir, { segmentSize: 4096 });
    expect(error).toMatchObject({ file: files[0], offset: SEGMENT_HEADER, reason: 'sealed-segment-damage' });
  });

  test('fails when a sealed segment lost its tail (SEAL missing)', async ({ dir }) => {
    await writeLog(dir, 60, 100, { segmentSize: 4096 });
    const files = segmentFiles(dir);
    truncateAt(files[0]!, fileSize(files[0]!) - 20);
    const error = await openError(dir);
    expect(error).toMatchObject({ file: files[0], reason: 'sealed-segment-damage' });
  });

  test('fails on a missing middle segment and on a missing first segment', async ({ dir }) => {
    await writeLog(dir, 120, 100, { segmentSize: 4096 });
    const files = segmentFiles(dir);
    expect(files.length).toBeGreaterThanOrEqual(3);
    const middle = readFileSync(files[1]!);
    await rm(files[1]!);
    expect(await openError(dir)).toMatchObject({ file: files[2], offset: 0, reason: 'lsn-gap' });
    writeFileSync(files[1]!, middle);
    await rm(files[0]!);
    expect(await openError(dir)).toMatchObject({ file: files[1], offset: 0, reason: 'lsn-gap' });
  });

  test('fails on bad header magic, and on a future format version even with repair', async ({ dir }) => {
    await writeLog(dir, 3);
    const [file] = segmentFiles(dir);
    const original = readFileSync(file!);
    flipByte(file!, 0);
    expect(await openError(dir)).toMatchObject({ offset: 0, reason: 'bad-segment-header' });
    writeFileSync(file!, original);
    // Version 2 with a correct header checksum: a newer blero wrote it.
    const bytes = Buffer.from(original);
    bytes.writeUInt16LE(2, 4);
    const { crc32 } = await import('../../src/engine/crc.ts');
    bytes.writeUInt32LE(crc32(bytes.subarray(0, 28)), 28);
    writeFileSync(file!, bytes);
    expect(await openError(dir)).toMatchObject({ offset: 4, reason: 'future-format-version' });
    expect(await openError(dir, { repair: true })).toMatchObject({ reason: 'future-format-version' });
    expect(readdirSync(dir).filter((n) => n.startsWith('quarantine-'))).toEqual([]);
  });

  test('bytes after a CLOSE marker are corruption', async ({ dir }) => {
    await writeLog(dir, 2);
    const [file] = segmentFiles(dir);
    const copy = readFileSync(file!).subarray(SEGMENT_HEADER, SEGMENT_HEADER + HEADER + 40);
    appendBytes(file!, copy);
    expect(await openError(dir)).toMatchObject({ reason: 'after-seal-or-close' });
  });

  test('repair truncates at the damage and moves the rest into quarantine, deleting nothing', async ({ dir }) => {
    await writeLog(dir, 120, 100, { segmentSize: 4096 });
    const files = segmentFiles(dir);
    const damageAt = SEGMENT_HEADER + 5 * (HEADER + 100);
    flipByte(files[0]!, damageAt + HEADER + 10);
    const totalBefore = files.reduce((sum, f) => sum + fileSize(f), 0);
    const { lsns, recovery } = await reopen(dir, { repair: true });
    expect(lsns).toEqual([1, 2, 3, 4, 5]);
    expect(recovery.quarantined).toMatchObject({ file: files[0], offset: damageAt, case: 'sealed-segment-damage' });
    const quarantine = readdirSync(dir).filter((n) => n.startsWith('quarantine-'));
    expect(quarantine).toHaveLength(files.length);
    const kept = segmentFiles(dir).reduce((sum, f) => sum + fileSize(f), 0);
    const moved = quarantine.reduce((sum, n) => sum + fileSize(path.join(dir, n)), 0);
    // Every byte is still somewhere (the kept segment also gained its CLOSE marker on close).
    expect(kept + moved).toBe(totalBefore + HEADER);
    // The repaired log accepts appends and reopens cleanly without repair.
    const log = await Log.open(dir);
    expect(log.recovery.cleanShutdown).toBe(true);
    await log.append(payloadOf(999));
    expect(log.lastLsn).toBe(6);
    await log.close();
    expect((await reopen(dir)).lsns).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test('removes leftover temp files and leaves unrelated files alone', async ({ dir }) => {
    await writeLog(dir, 2);
    writeFileSync(path.join(dir, 'seg-00000000000000000003-000000.log.tmp'), 'half a segment');
    writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    const { lsns, recovery } = await reopen(dir);
    expect(lsns).toEqual([1, 2]);
    expect(recovery.removedFiles).toEqual(['seg-00000000000000000003-000000.log.tmp']);
    expect(readdirSync(dir).sort()).toEqual(expect.arrayContaining(['notes.txt']));
    expect(readdirSync(dir).some((n) => n.endsWith('.tmp'))).toBe(false);
  });

  test('finishes a compaction that crashed after its rename: sources covered by the output are deleted', async ({ dir }) => {
    const log = await Log.open(dir, { segmentSize: 4096 });
    for (let i = 0; i < 100; i++) await log.append(payloadOf(i, 100));
    const cut = log.cut();
    await log.sync();
    const aside = await makeTempDir();
    const sources = segmentFiles(dir).slice(0, -1);
    for (const file of sources) copyFileSync(file, path.join(aside, path.basename(file)));
    await log.rewrite(cut, async (out) => {
      await out.write(payloadOf(42, 100));
    });
    await log.close();
    // Put the sources back, as if the crash came before their unlink.
    for (const file of sources) copyFileSync(path.join(aside, path.basename(file)), file);
    const { lsns, recovery } = await reopen(dir);
    expect(lsns).toEqual([1]);
    expect([...recovery.removedFiles].sort()).toEqual(sources.map((f) => path.basename(f)).sort());
    await rm(aside, { recursive: true, force: true });
  });

  test('zero-filling any part of the unsynced tail never fails the open', async ({ dir }) => {
    await writeLog(dir, 4, 40, { durability: 'none' }); // no batch vouches for any other
    dropCloseMarker(dir);
    const [file] = segmentFiles(dir);
    zeroRange(file!, SEGMENT_HEADER + 2 * (HEADER + 40), SEGMENT_HEADER + 2 * (HEADER + 40) + 8);
    const { lsns, recovery } = await reopen(dir);
    expect(lsns).toEqual([1, 2]);
    expect(recovery.truncated?.case).toBe('tail-unvouched-damage');
  });

  test('property: after a cut at any byte, reopening yields exactly the records fully written before it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 0, max: 600 }), { minLength: 1, maxLength: 25 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        async (sizes, cutFraction) => {
          const dir = await makeTempDir();
          try {
            const log = await Log.open(dir, { durability: 'none' });
            const ends: number[] = [];
            let end = SEGMENT_HEADER;
            for (const [i, size] of sizes.entries()) {
              await log.append(payloadOf(i, Math.max(size, 4)));
              end += HEADER + Math.max(size, 4);
              ends.push(end);
            }
            await log.close();
            dropCloseMarker(dir);
            const [file] = segmentFiles(dir);
            const cut = SEGMENT_HEADER + Math.floor(cutFraction * (end - SEGMENT_HEADER));
            truncateAt(file!, cut);
            const payloads: number[] = [];
            const reopened = await Log.open(dir, { onRecord: (payload) => payloads.push(payload.readUInt32LE(0)) });
            await reopened.close();
            const expected = ends.filter((e) => e <= cut).length;
            expect(payloads).toEqual(Array.from({ length: expected }, (_, i) => i));
          } finally {
            await rm(dir, { recursive: true, force: true });
          }
        },
      ),
      { numRuns: Number(process.env['BLERO_PROPERTY_RUNS'] ?? 60) },
    );
  });
});
