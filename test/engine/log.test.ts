// Behaviour of the Log through its public methods on a real temp directory: replay order,
// rollover, group commit (fdatasyncs counted through a wrapping FileSystem), durability
// modes, poisoning, atomic groups, reads by location, clean shutdown and rewrite.
import { describe, expect } from 'vitest';
import { readdirSync } from 'node:fs';
import { crc32 } from '../../src/engine/crc.ts';
import { Log, locationAfter } from '../../src/engine/log.ts';
import { SEGMENT_HEADER_SIZE as SEGMENT_HEADER_BYTES } from '../../src/engine/segment-header.ts';
import type { LogOptions, RewriteOutput, ScanBatch } from '../../src/engine/log.ts';
import { ClosedError, PoisonedError, RecordTooLargeError } from '../../src/errors.ts';
import { CountingFileSystem } from '../support/counting-fs.ts';
import { flipByte, segmentFiles, truncateAt, fileSize } from '../support/bytes.ts';
import { test } from '../support/temp-dir.ts';

function payloadOf(i: number, size = 16): Buffer {
  const bytes = Buffer.alloc(size, i & 0xff);
  bytes.writeUInt32LE(i, 0);
  return bytes;
}

/** Appends `count` records (record i: payloadOf(i, sizeOf(i))) one awaited at a time; returns their locations. */
async function appendAll(log: Log, count: number, sizeOf: (i: number) => number = () => 100): Promise<number[]> {
  const locations: number[] = [];
  for (let i = 0; i < count; i++) {
    await log.append(payloadOf(i, sizeOf(i)));
    locations.push(log.lastLocation);
  }
  return locations;
}

async function replay(dir: string, options: LogOptions = {}): Promise<{ log: Log; records: { lsn: number; payload: Buffer; location: number }[] }> {
  const records: { lsn: number; payload: Buffer; location: number }[] = [];
  const log = await Log.open(dir, { ...options, onRecord: (payload, lsn, location) => records.push({ lsn, payload: Buffer.from(payload), location }) });
  return { log, records };
}

describe('Log', () => {
  test('replays every appended record in LSN order after a clean close', async ({ dir }) => {
    const log = await Log.open(dir);
    expect(log.recovery.records).toBe(0);
    const lsns: number[] = [];
    for (let i = 0; i < 50; i++) {
      const done = log.append(payloadOf(i));
      lsns.push(log.lastLsn);
      await done;
    }
    expect(lsns).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    await log.close();
    const { log: again, records } = await replay(dir);
    expect(again.recovery.cleanShutdown).toBe(true);
    expect(again.recovery.truncated).toBeUndefined();
    expect(records.map((r) => r.lsn)).toEqual(lsns);
    expect(records.map((r) => r.payload.readUInt32LE(0))).toEqual(Array.from({ length: 50 }, (_, i) => i));
    // Appends continue after the last replayed LSN.
    void again.append(payloadOf(99));
    expect(again.lastLsn).toBe(51);
    await again.close();
  });

  test('concurrent appends get increasing LSNs and share fdatasyncs', async ({ dir }) => {
    const fs = new CountingFileSystem();
    const log = await Log.open(dir, { fileSystem: fs });
    const before = fs.datasyncs;
    const promises: Promise<void>[] = [];
    const lsns: number[] = [];
    for (let i = 0; i < 200; i++) {
      promises.push(log.append(payloadOf(i)));
      lsns.push(log.lastLsn);
    }
    await Promise.all(promises);
    expect(lsns).toEqual([...lsns].sort((a, b) => a - b));
    expect(new Set(lsns).size).toBe(200);
    const used = fs.datasyncs - before;
    expect(used).toBeGreaterThanOrEqual(1);
    expect(used).toBeLessThan(10);
    expect(log.stats().durableLsn).toBe(200);
    await log.close();
  });

  test('a lone append in sync mode resolves only after its own fdatasync', async ({ dir }) => {
    const fs = new CountingFileSystem();
    const log = await Log.open(dir, { fileSystem: fs });
    for (let i = 0; i < 3; i++) {
      const before = fs.datasyncs;
      await log.append(payloadOf(i));
      expect(fs.datasyncs).toBe(before + 1);
      expect(log.stats().durableLsn).toBe(i + 1);
    }
    await log.close();
  });

  test("'none' mode writes without fdatasync until close; a per-call 'sync' forces one", async ({ dir }) => {
    const fs = new CountingFileSystem();
    const log = await Log.open(dir, { fileSystem: fs, durability: 'none' });
    const before = fs.datasyncs;
    for (let i = 0; i < 20; i++) await log.append(payloadOf(i));
    expect(fs.datasyncs).toBe(before);
    expect(log.stats().writtenLsn).toBe(20);
    expect(log.stats().durableLsn).toBe(0);
    await log.append(payloadOf(21), { durability: 'sync' });
    expect(fs.datasyncs).toBe(before + 1);
    expect(log.stats().durableLsn).toBe(21);
    await log.close();
  });

  test("'interval' mode resolves after the write and syncs within syncIntervalMs", async ({ dir }) => {
    const fs = new CountingFileSystem();
    const log = await Log.open(dir, { fileSystem: fs, durability: 'interval', syncIntervalMs: 20 });
    await log.append(payloadOf(1));
    expect(log.stats().writtenLsn).toBe(1);
    const deadline = Date.now() + 5000;
    while (log.stats().durableLsn < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    expect(log.stats().durableLsn).toBe(1);
    await log.close();
  });

  test('rolls over to a new segment past segmentSize and replays across segments', async ({ dir }) => {
    const log = await Log.open(dir, { segmentSize: 4096 });
    for (let i = 0; i < 100; i++) await log.append(payloadOf(i, 100));
    const stats = log.stats();
    // 100 records of 132 bytes in 4 KiB segments: about 30 per segment.
    expect(stats.segments).toBeGreaterThanOrEqual(4);
    await log.close();
    for (const file of segmentFiles(dir).slice(0, -1)) expect(fileSize(file)).toBeLessThanOrEqual(4096 + 44);
    const { log: again, records } = await replay(dir, { segmentSize: 4096 });
    expect(records.map((r) => r.lsn)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    await again.close();
  });

  test('refuses a record above maxRecordSize before writing anything', async ({ dir }) => {
    const log = await Log.open(dir, { maxRecordSize: 100 });
    await expect(log.append(Buffer.alloc(101))).rejects.toBeInstanceOf(RecordTooLargeError);
    await expect(log.append(Buffer.alloc(101))).rejects.toMatchObject({ code: 'ERR_BLERO_RECORD_TOO_LARGE' });
    expect(log.stats().nextLsn).toBe(1);
    await log.append(Buffer.alloc(100));
    await log.close();
    const { log: again, records } = await replay(dir);
    expect(records).toHaveLength(1);
    await again.close();
  });

  test('reads a payload back by its location, in the active and in sealed segments', async ({ dir }) => {
    const log = await Log.open(dir, { segmentSize: 4096 });
    const locations: number[] = [];
    const pending: Promise<void>[] = [];
    for (let i = 0; i < 80; i++) {
      pending.push(log.append(payloadOf(i, 100)));
      locations.push(log.lastLocation);
    }
    // A read may arrive before its record is written: it waits for it.
    expect((await log.read(locations[79]!)).readUInt32LE(0)).toBe(79);
    await Promise.all(pending);
    for (let i = 0; i < 80; i += 7) expect((await log.read(locations[i]!)).readUInt32LE(0)).toBe(i);
    await log.close();
    // Replay reports the same locations.
    const { log: again, records } = await replay(dir, { segmentSize: 4096 });
    expect(records.map((r) => r.location)).toEqual(locations);
    expect((await again.read(records[5]!.location)).equals(payloadOf(5, 100))).toBe(true);
    await again.close();
  });

  test('an atomic group replays whole, and not at all when the crash cut it', async ({ dir }) => {
    const log = await Log.open(dir);
    await log.append(payloadOf(0));
    const group = [payloadOf(1, 200), payloadOf(2, 200), payloadOf(3, 200)];
    await log.appendGroup(group);
    const first = log.lastLocation;
    expect(locationAfter(first, 200)).toBe(first + 32 + 200);
    expect(log.lastLsn).toBe(4);
    await log.close();
    const { log: again, records } = await replay(dir);
    expect(records.map((r) => r.lsn)).toEqual([1, 2, 3, 4]);
    await again.close();
    // Cut the file inside the group's last record (as a crash would): none of the group survives.
    const [file] = segmentFiles(dir);
    const closeMarker = 32;
    truncateAt(file!, fileSize(file!) - closeMarker - 50);
    const { log: third, records: after } = await replay(dir);
    expect(after.map((r) => r.lsn)).toEqual([1]);
    expect(third.recovery.truncated).toMatchObject({ case: 'tail-incomplete-group' });
    expect(third.recovery.cleanShutdown).toBe(false);
    // The next append reuses LSN 2, which never survived.
    void third.append(payloadOf(9));
    expect(third.lastLsn).toBe(2);
    await third.close();
  });

  test('after a failed fdatasync every append rejects with PoisonedError and the sync is not retried', async ({ dir }) => {
    const fs = new CountingFileSystem();
    const log = await Log.open(dir, { fileSystem: fs });
    const poisoned: Error[] = [];
    log.on('poisoned', (error) => poisoned.push(error));
    await log.append(payloadOf(1));
    const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    fs.failNextDatasync = eio;
    const failed = log.append(payloadOf(2));
    await expect(failed).rejects.toBeInstanceOf(PoisonedError);
    await expect(failed).rejects.toMatchObject({ code: 'ERR_BLERO_POISONED', cause: eio });
    const syncsAfterFailure = fs.datasyncs;
    await expect(log.append(payloadOf(3))).rejects.toBeInstanceOf(PoisonedError);
    await expect(log.sync()).rejects.toBeInstanceOf(PoisonedError);
    expect(fs.datasyncs).toBe(syncsAfterFailure);
    expect(poisoned).toEqual([eio]);
    expect(log.poisonedBy).toBe(eio);
    await log.close();
    // Reopening recovers from what is on disk: record 1 surely, record 2 maybe (it was written).
    const { log: again, records } = await replay(dir);
    expect(records[0]?.lsn).toBe(1);
    expect(records.length).toBeLessThanOrEqual(2);
    await again.close();
  });

  test('a short write poisons the log and the torn bytes are cut on reopen', async ({ dir }) => {
    const fs = new CountingFileSystem();
    const log = await Log.open(dir, { fileSystem: fs });
    await log.append(payloadOf(1, 100));
    fs.shortNextWrite = 40;
    await expect(log.append(payloadOf(2, 100))).rejects.toMatchObject({ code: 'ERR_BLERO_POISONED' });
    await log.close();
    const { log: again, records } = await replay(dir);
    expect(records.map((r) => r.lsn)).toEqual([1]);
    expect(again.recovery.truncated).toMatchObject({ bytes: 40, case: 'tail-payload-past-eof' });
    await again.close();
  });

  test('close is idempotent and later calls reject with ClosedError', async ({ dir }) => {
    const log = await Log.open(dir);
    const first = log.close();
    expect(log.close()).toBe(first);
    await first;
    expect(log.status).toBe('closed');
    await expect(log.append(payloadOf(1))).rejects.toBeInstanceOf(ClosedError);
    await expect(log.read(0)).rejects.toBeInstanceOf(ClosedError);
  });

  test('await using closes the log', async ({ dir }) => {
    let held: Log | undefined;
    {
      await using log = await Log.open(dir);
      held = log;
      await log.append(payloadOf(1));
    }
    expect(held.status).toBe('closed');
    const { log: again, records } = await replay(dir);
    expect(records).toHaveLength(1);
    await again.close();
  });

  test('rewrite replaces sealed segments up to a cut with the payloads it is given', async ({ dir }) => {
    const log = await Log.open(dir, { segmentSize: 4096 });
    for (let i = 0; i < 100; i++) await log.append(payloadOf(i, 100));
    const cut = log.cut();
    expect(cut).toBe(100);
    // Appends go on during the rewrite.
    const during = log.append(payloadOf(1000, 100));
    const kept: number[] = [];
    const result = await log.rewrite(cut, async (out) => {
      for (let i = 0; i < 100; i += 10) kept.push(await out.write(payloadOf(i, 100)));
    });
    await during;
    expect(result.records).toBe(10);
    expect(result.bytesAfter).toBeLessThan(result.bytesBefore);
    expect((await log.read(kept[3]!)).readUInt32LE(0)).toBe(30);
    await log.append(payloadOf(1001, 100));
    await log.close();
    const names = readdirSync(dir).filter((n) => n.startsWith('seg-'));
    expect(names.some((n) => n.endsWith('-000001.log'))).toBe(true);
    const { log: again, records } = await replay(dir, { segmentSize: 4096 });
    expect(records.map((r) => r.payload.readUInt32LE(0))).toEqual([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 1000, 1001]);
    expect(records.slice(-2).map((r) => r.lsn)).toEqual([101, 102]);
    // LSNs stay strictly increasing through the compacted segment.
    for (let i = 1; i < records.length; i++) expect(records[i]!.lsn).toBeGreaterThan(records[i - 1]!.lsn);
    // A second rewrite compacts the first one's output too.
    const cut2 = again.cut();
    await again.rewrite(cut2, async (out) => {
      await out.write(payloadOf(7, 10));
    });
    await again.close();
    const { log: third, records: final } = await replay(dir);
    expect(final.map((r) => r.payload.readUInt32LE(0))).toEqual([7]);
    void third.append(payloadOf(8));
    expect(third.lastLsn).toBe(103);
    await third.close();
  });

  test('scanAt streams the sealed records asked for, waiting for an async visitor', async ({ dir }) => {
    const log = await Log.open(dir, { segmentSize: 4096 });
    const locations = await appendAll(log, 100);
    const cut = log.cut();
    expect(cut).toBe(100);
    await log.append(payloadOf(100, 100)); // after the cut
    const seen: { id: number; lsn: number; location: number }[] = [];
    await log.scanAt(new Float64Array(locations), async (batch) => {
      const ids: number[] = [];
      for (let i = 0; i < batch.count; i++) {
        expect(crc32(batch.chunk.subarray(batch.starts[i], batch.ends[i]))).toBe(batch.payloadCrcs[i]);
        ids.push(batch.chunk.readUInt32LE(batch.starts[i]!));
      }
      await new Promise((resolve) => setImmediate(resolve));
      // The batch and its chunk stay valid while the visitor's promise is pending.
      for (let i = 0; i < batch.count; i++) {
        expect(batch.chunk.readUInt32LE(batch.starts[i]!)).toBe(ids[i]);
        seen.push({ id: ids[i]!, lsn: batch.lsns[i]!, location: batch.locations[i]! });
      }
    });
    expect(seen.map((r) => r.id)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(seen.map((r) => r.lsn)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(seen.map((r) => r.location)).toEqual(locations);
    await log.close();
  });

  test('rewrite refuses a boundary that is not a cut', async ({ dir }) => {
    const log = await Log.open(dir, { segmentSize: 4096 });
    for (let i = 0; i < 60; i++) await log.append(payloadOf(i, 100));
    await expect(log.rewrite(7, async () => undefined)).rejects.toBeInstanceOf(RangeError);
    const cut = log.cut();
    await expect(
      log.rewrite(cut, async (out) => {
        for (let i = 0; i <= cut; i++) await out.write(payloadOf(i));
      }),
    ).rejects.toBeInstanceOf(RangeError);
    // The failed rewrite left no temp file and changed nothing.
    expect(readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    await log.close();
    const { log: again, records } = await replay(dir);
    expect(records).toHaveLength(60);
    await again.close();
  });

  test('a rewrite that copies with carried checksums keeps damage visible instead of blessing it', async ({ dir }) => {
    const log = await Log.open(dir);
    const locations = await appendAll(log, 20);
    const cut = log.cut();
    await log.sync();
    const [source] = segmentFiles(dir);
    // A payload byte of record 7, behind the log's back (the page cache serves the log's reads).
    flipByte(source!, SEGMENT_HEADER_BYTES + 7 * (32 + 100) + 32 + 40);
    // A checking scan refuses the damaged record: nothing is rewritten.
    const copyAll = (out: RewriteOutput, carry: boolean, copies: number[] = []) => async (batch: ScanBatch) => {
      for (let i = 0; i < batch.count; i++) {
        const payload = batch.chunk.subarray(batch.starts[i], batch.ends[i]);
        copies.push(carry ? out.writeCopy(batch.payloadCrcs[i]!, payload) : await out.write(payload));
      }
    };
    const all = new Float64Array(locations);
    await expect(log.rewrite(cut, (out) => log.scanAt(all, copyAll(out, false)))).rejects.toMatchObject({
      code: 'ERR_BLERO_CORRUPT',
      reason: 'sealed-segment-damage',
    });
    expect(segmentFiles(dir)[0]).toBe(source);
    // Copying with the carried checksums commits; the copy of record 7 reads as damaged.
    const copies: number[] = [];
    await log.rewrite(cut, (out) => log.scanAt(all, copyAll(out, true, copies), { verifyPayloads: false }));
    expect(copies).toHaveLength(20);
    expect((await log.read(copies[6]!)).readUInt32LE(0)).toBe(6);
    await expect(log.read(copies[7]!)).rejects.toMatchObject({ code: 'ERR_BLERO_CORRUPT', reason: 'payload-crc' });
    await log.close();
    const [compacted] = segmentFiles(dir);
    expect(compacted).not.toBe(source);
    await expect(Log.open(dir)).rejects.toMatchObject({ code: 'ERR_BLERO_CORRUPT', file: compacted, offset: SEGMENT_HEADER_BYTES + 7 * (32 + 100) });
  });

  test('scanAt visits exactly the records asked for, in log order, however far apart or large', async ({ dir }) => {
    const log = await Log.open(dir, { segmentSize: 256 * 1024 });
    // Small records, a few larger than the slack scanAt reads past a record's start, and wide gaps.
    const locations = await appendAll(log, 600, (i) => (i % 97 === 0 ? 100_000 : 200 + (i % 13) * 50));
    let cut = log.cut();
    // Rewrite it all: the copies sit in a segment whose ordinal is higher than the next ones'.
    const moved: number[] = [];
    await log.rewrite(cut, (out) => log.scanAt(new Float64Array(locations), (batch) => {
      for (let i = 0; i < batch.count; i++) moved.push(out.writeCopy(batch.payloadCrcs[i]!, batch.chunk.subarray(batch.starts[i], batch.ends[i])));
    }));
    expect(moved).toHaveLength(600);
    for (let i = 600; i < 700; i++) {
      await log.append(payloadOf(i, 300));
      moved.push(log.lastLocation);
    }
    cut = log.cut();
    // Every third record, asked for in reverse order: visited in log order, each once.
    const wanted = moved.filter((_, i) => i % 3 === 0).reverse();
    const seen: number[] = [];
    await log.scanAt(new Float64Array(wanted), (batch) => {
      for (let i = 0; i < batch.count; i++) {
        expect(crc32(batch.chunk.subarray(batch.starts[i], batch.ends[i]))).toBe(batch.payloadCrcs[i]);
        seen.push(batch.chunk.readUInt32LE(batch.starts[i]!));
      }
    });
    expect(seen).toEqual(moved.map((_, i) => i).filter((i) => i % 3 === 0));
    await log.close();
  });

  // Copies listed in log order have their new locations filled as they are copied; listed in
  // any other order, they are looked up by run afterwards. Both must say where each went.
  for (const listed of ['in log order', 'reversed'] as const) test(`scanAt copies runs of records as they are, in log order with the visited ones, and says where each went (copies listed ${listed})`, async ({ dir }) => {
    const log = await Log.open(dir, { segmentSize: 64 * 1024 });
    const locations: number[] = [];
    // Atomic groups of five, so copied headers carry the group flag; sizes vary.
    for (let g = 0; g < 60; g++) {
      await log.appendGroup(Array.from({ length: 5 }, (_, k) => payloadOf(g * 5 + k, 40 + ((g * 5 + k) % 7) * 30)));
      // lastLocation is the group's first record; the others follow it.
      let at = log.lastLocation;
      for (let k = 0; k < 5; k++) {
        locations.push(at);
        at = locationAfter(at, 40 + ((g * 5 + k) % 7) * 30);
      }
    }
    for (let i = 0; i < 300; i++) expect((await log.read(locations[i]!)).readUInt32LE(0)).toBe(i);
    // A last record that is not kept: its LSN (the cut's) is the one the output's last record takes.
    await log.append(Buffer.from('end'));
    const cut = log.cut();
    await log.sync();
    // Copied: records 0-99 and 150-299 except every tenth, which is visited; 100-149 dropped.
    const copied = locations.filter((_, i) => (i < 100 || i >= 150) && i % 10 !== 0);
    const visited = locations.filter((_, i) => (i < 100 || i >= 150) && i % 10 === 0);
    if (listed === 'reversed') copied.reverse();
    const order: number[] = [];
    const newLocations = new Float64Array(copied.length);
    const written = new Map<number, number>();
    const result = await log.rewrite(cut, async (out) => {
      const count = await log.scanAt(new Float64Array(visited).reverse(), (batch) => {
        for (let i = 0; i < batch.count; i++) {
          const payload = batch.chunk.subarray(batch.starts[i], batch.ends[i]);
          order.push(payload.readUInt32LE(0));
          written.set(payload.readUInt32LE(0), out.writeCopyAt(batch.lsns[i]!, batch.payloadCrcs[i]!, payload));
        }
      }, { copy: { locations: new Float64Array(copied), into: out, newLocations } });
      expect(count).toBe(copied.length);
      // The output may not end inside a group: close it with a record of the cut's LSN.
      await out.write(Buffer.from('end'), cut);
    });
    expect(order).toEqual(visited.map((_, k) => locations.indexOf(visited[k]!)));
    for (let i = 0; i < 300; i++) {
      const moved = written.get(i) ?? (copied.includes(locations[i]!) ? newLocations[copied.indexOf(locations[i]!)]! : -1);
      if (i >= 100 && i < 150) {
        expect(moved).toBe(-1);
        continue;
      }
      expect((await log.read(moved)).readUInt32LE(0)).toBe(i);
    }
    expect(result.records).toBe(copied.length + visited.length + 1);
    await log.close();
    // The output replays: copied records keep their own LSNs, visited ones the LSNs given, all rising.
    const { log: again, records } = await replay(dir);
    expect(records.map((r) => (r.payload.length === 3 ? -1 : r.payload.readUInt32LE(0)))).toEqual([
      ...locations.map((_, i) => i).filter((i) => i < 100 || i >= 150),
      -1,
    ]);
    const lsns = records.map((r) => r.lsn);
    expect(lsns).toEqual([...lsns].sort((a, b) => a - b));
    expect(new Set(lsns).size).toBe(lsns.length);
    await again.close();
  });

  test('copied runs are written straight from the read buffers, which are not read into again until written', async ({ dir }) => {
    // Many segments (each read as its own range) and 1 MiB of copies per output flush: the
    // runs of several read buffers wait in the output while the scan reads on.
    const log = await Log.open(dir, { segmentSize: 256 * 1024, durability: 'none' });
    const locations = await appendAll(log, 6000, (i) => 200 + (i % 13) * 50);
    await log.append(Buffer.from('end'));
    const cut = log.cut();
    await log.sync();
    const visited = locations.filter((_, i) => i % 97 === 0);
    const copied = locations.filter((_, i) => i % 97 !== 0);
    const newLocations = new Float64Array(copied.length);
    const written = new Map<number, number>();
    await log.rewrite(cut, async (out) => {
      await log.scanAt(new Float64Array(visited), async (batch) => {
        for (let i = 0; i < batch.count; i++) {
          const payload = batch.chunk.subarray(batch.starts[i], batch.ends[i]);
          written.set(payload.readUInt32LE(0), out.writeCopyAt(batch.lsns[i]!, batch.payloadCrcs[i]!, payload));
        }
        if (out.needsFlush) await out.flush();
      }, { copy: { locations: new Float64Array(copied), into: out, newLocations } });
      await out.write(Buffer.from('end'), cut);
    });
    // Every record reads back whole (read() checks its checksum) at its new location.
    for (let i = 0, k = 0; i < locations.length; i++) {
      const moved = i % 97 === 0 ? written.get(i)! : newLocations[k++]!;
      expect((await log.read(moved)).equals(payloadOf(i, 200 + (i % 13) * 50))).toBe(true);
    }
    await log.close();
    const { log: again, records } = await replay(dir);
    expect(records).toHaveLength(locations.length + 1);
    await again.close();
  });

  test('a rewrite refuses copied records out of LSN order and an output that ends inside a group', async ({ dir }) => {
    const log = await Log.open(dir);
    await log.appendGroup([payloadOf(1), payloadOf(2)]);
    const first = log.lastLocation;
    const second = locationAfter(first, 16);
    await log.append(payloadOf(3));
    const cut = log.cut();
    // The group's first record alone: its flag says another follows.
    await expect(log.rewrite(cut, (out) => log.scanAt(new Float64Array(0), () => undefined, { copy: { locations: new Float64Array([first]), into: out, newLocations: new Float64Array(1) } }))).rejects.toThrow(
      /ends inside an atomic group/,
    );
    // A record given an LSN at or below the last copied one.
    await expect(
      log.rewrite(cut, async (out) => {
        await log.scanAt(new Float64Array(0), () => undefined, { copy: { locations: new Float64Array([first, second]), into: out, newLocations: new Float64Array(2) } });
        out.writeCopyAt(2, crc32(payloadOf(9)), payloadOf(9));
      }),
    ).rejects.toThrow(RangeError);
    // Nothing was committed: the log still replays all three.
    await log.close();
    const { log: again, records } = await replay(dir);
    expect(records.map((r) => r.payload.readUInt32LE(0))).toEqual([1, 2, 3]);
    await again.close();
  });

  test('scanAt reports a copied run whose last record has a damaged header, naming file and offset', async ({ dir }) => {
    const log = await Log.open(dir);
    const locations = await appendAll(log, 10);
    const cut = log.cut();
    await log.sync();
    const [source] = segmentFiles(dir);
    // The length field of record 4, the last of the run 0-4 (record 5 is not asked for).
    flipByte(source!, SEGMENT_HEADER_BYTES + 4 * (32 + 100) + 4);
    const copies = new Float64Array(locations.slice(0, 5));
    await expect(log.rewrite(cut, (out) => log.scanAt(new Float64Array(0), () => undefined, { copy: { locations: copies, into: out, newLocations: new Float64Array(copies.length) } }))).rejects.toMatchObject({
      code: 'ERR_BLERO_CORRUPT',
      file: source,
    });
    await log.close().catch(() => undefined);
  });

  test('validates options with TypeError and RangeError before touching the disk', async ({ dir }) => {
    await expect(Log.open(dir, { durability: 'fast' as never })).rejects.toBeInstanceOf(TypeError);
    await expect(Log.open(dir, { segmentSize: 10 })).rejects.toBeInstanceOf(RangeError);
    await expect(Log.open(dir, { maxRecordSize: Number.NaN })).rejects.toBeInstanceOf(RangeError);
    await expect(Log.open(dir, { syncIntervalMs: '5' as never })).rejects.toBeInstanceOf(TypeError);
    expect(readdirSync(dir)).toEqual([]);
  });
});
