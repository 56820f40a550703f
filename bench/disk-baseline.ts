// The raw limits of the disk under the bench's temp dir, measured in the same run as the engine
// so that every engine figure can be read as a fraction of what this disk allows right now.
// It uses Node's asynchronous callback fs API on raw descriptors, as the engine's
// NodeFileSystem does (one threadpool hop per call), so both pay the same per-call cost.
//
// Four limits:
// - append 100 B + fdatasync: every sync also commits the file's new size (a journal commit on
//   ext4), which is what a log that grows its file pays per sync.
// - overwrite 100 B + fdatasync in a preallocated, already written file: the sync carries data
//   only, the ceiling for a log that reuses or preallocates its segment space.
// - 64 records of 100 B per writev + fdatasync (appending): the ceiling for group commit with
//   64 writers in flight.
// - sequential 1 MiB writes, one fdatasync at the end: bandwidth in MB/s (10^6 bytes).
// And one floor for compaction's latency target: the p99 of 100 B append + fdatasync while
// another file gets what a compaction gives the disk (1 MiB writes, an fdatasync every 4 MiB,
// then the file replaced and deleted), against the same loop alone.
import * as fs from 'node:fs';
import { join } from 'node:path';
import type { BenchContext, Row } from './scenario.ts';
import { formatNumber } from './report.ts';
import { MB, details, latencyText, measure, nowNs, payloadOf, roundsText, secondsSince } from './scenario.ts';
import { SampleRecorder } from './stats.ts';

const RECORD_SIZE = 100;
const BATCH_RECORDS = 64;
const CHUNK_SIZE = 1024 * 1024;
const PREALLOCATED_BYTES = 64 * 1024 * 1024;

function call<T>(run: (callback: (error: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    run((error, value) => (error ? reject(error) : resolve(value)));
  });
}

const openFile = (path: string): Promise<number> => call<number>((cb) => fs.open(path, 'w+', 0o644, cb));
const write = (fd: number, buffer: Uint8Array, position: number): Promise<number> =>
  call<number>((cb) => fs.write(fd, buffer, 0, buffer.length, position, cb));
const writev = (fd: number, buffers: Uint8Array[], position: number): Promise<number> =>
  call<number>((cb) => fs.writev(fd, buffers, position, cb));
const datasync = (fd: number): Promise<void> => call<void>((cb) => fs.fdatasync(fd, (error) => cb(error, undefined)));
const close = (fd: number): Promise<void> => call<void>((cb) => fs.close(fd, (error) => cb(error, undefined)));

/** Runs `body` on a new file in a scratch directory, then closes and removes both. */
async function withFile<T>(context: BenchContext, name: string, body: (fd: number) => Promise<T>): Promise<T> {
  const directory = await context.scratch(`disk-${name}`);
  const fd = await openFile(join(directory, 'data'));
  try {
    return await body(fd);
  } finally {
    await close(fd);
    await context.discard(directory);
  }
}

async function appendSync(context: BenchContext): Promise<Row> {
  context.progress('disk: append 100 B + fdatasync');
  const record = payloadOf(RECORD_SIZE);
  const result = await withFile(context, 'append', async (fd) => {
    let position = 0;
    return measure(context.config, { latency: true }, async () => {
      position += await write(fd, record, position);
      await datasync(fd);
    });
  });
  return {
    section: 'disk',
    key: 'disk.append-sync',
    label: 'append 100 B + fdatasync, one at a time',
    value: result.rate,
    unit: 'ops/s',
    detail: details(roundsText(result), latencyText(result)),
    status: 'measured',
    data: { ops: result.ops, seconds: result.seconds },
  };
}

async function overwriteSync(context: BenchContext): Promise<Row> {
  context.progress('disk: overwrite 100 B + fdatasync in a preallocated file');
  const record = payloadOf(RECORD_SIZE);
  const result = await withFile(context, 'overwrite', async (fd) => {
    // Written (not fallocated) blocks: an fallocated extent is "unwritten" and its first write
    // still needs a metadata commit, which is the cost this limit is meant to leave out.
    const chunk = payloadOf(CHUNK_SIZE);
    for (let offset = 0; offset < PREALLOCATED_BYTES; offset += CHUNK_SIZE) await write(fd, chunk, offset);
    await datasync(fd);
    let position = 0;
    return measure(context.config, { latency: true }, async () => {
      await write(fd, record, position);
      await datasync(fd);
      position = (position + RECORD_SIZE) % (PREALLOCATED_BYTES - RECORD_SIZE);
    });
  });
  return {
    section: 'disk',
    key: 'disk.overwrite-sync',
    label: 'overwrite 100 B + fdatasync, preallocated file',
    value: result.rate,
    unit: 'ops/s',
    detail: details(roundsText(result), latencyText(result)),
    status: 'measured',
    data: { ops: result.ops, seconds: result.seconds },
  };
}

async function batchSync(context: BenchContext): Promise<Row> {
  context.progress('disk: 64 × 100 B per writev + fdatasync');
  const records = Array.from({ length: BATCH_RECORDS }, (_, i) => payloadOf(RECORD_SIZE, i + 1));
  const result = await withFile(context, 'batch', async (fd) => {
    let position = 0;
    return measure(context.config, {}, async () => {
      position += await writev(fd, records, position);
      await datasync(fd);
    });
  });
  return {
    section: 'disk',
    key: 'disk.batch-sync',
    label: `append ${BATCH_RECORDS} × 100 B per writev + fdatasync`,
    value: result.rate * BATCH_RECORDS,
    unit: 'records/s',
    detail: details(`${Math.round(result.rate).toLocaleString('en-US')} fdatasyncs/s`, roundsText(result, BATCH_RECORDS)),
    status: 'measured',
    data: { syncs: result.ops, seconds: result.seconds },
  };
}

/** Seconds to write `total` bytes in 1 MiB writes with one fdatasync at the end (after a 16 MiB warm-up). */
export async function sequentialSeconds(context: BenchContext, total: number, name = 'sequential'): Promise<number> {
  const chunk = payloadOf(CHUNK_SIZE);
  return withFile(context, name, async (fd) => {
    // Warm-up: the first writes of a process pay for threadpool start-up and page-cache growth.
    for (let offset = 0; offset < 16 * CHUNK_SIZE; offset += CHUNK_SIZE) await write(fd, chunk, offset);
    await datasync(fd);
    const startNs = nowNs();
    for (let offset = 16 * CHUNK_SIZE; offset < 16 * CHUNK_SIZE + total; offset += CHUNK_SIZE) {
      await write(fd, chunk, offset);
    }
    await datasync(fd);
    return secondsSince(startNs);
  });
}

async function sequentialWrite(context: BenchContext): Promise<Row> {
  const total = context.config.sequentialBytes;
  context.progress(`disk: sequential write ${total / CHUNK_SIZE} MiB + fdatasync`);
  const seconds = await sequentialSeconds(context, total);
  return {
    section: 'disk',
    key: 'disk.sequential',
    label: 'sequential write, 1 MiB writes, fdatasync at the end',
    value: total / MB / seconds,
    unit: 'MB/s',
    detail: `${total / CHUNK_SIZE} MiB in ${seconds.toFixed(2)} s`,
    status: 'measured',
    data: { bytes: total, seconds },
  };
}

/**
 * p99 of append + fdatasync while compaction-shaped I/O runs beside it, in alternating windows
 * (writer busy, then as long without), as the compaction latency row measures the queue.
 */
async function interference(context: BenchContext): Promise<Row> {
  const windowsMs = context.config.full ? 5000 : 1500;
  const fileBytes = 32 * 1024 * 1024;
  context.progress(`disk: append + fdatasync p99 beside ${fileBytes / CHUNK_SIZE} MiB files written, synced every 4 MiB and deleted`);
  const directory = await context.scratch('disk-interference');
  const chunk = payloadOf(CHUNK_SIZE);
  const record = payloadOf(RECORD_SIZE);
  const during = new SampleRecorder();
  const alone = new SampleRecorder();
  const appendFd = await openFile(join(directory, 'log'));
  let position = 0;
  const appendLoop = async (recorder: SampleRecorder, busy: () => boolean): Promise<void> => {
    while (busy()) {
      const startNs = nowNs();
      position += await write(appendFd, record, position);
      await datasync(appendFd);
      recorder.record(Number(nowNs() - startNs) / 1e6);
    }
  };
  let writtenBytes = 0;
  let writingNs = 0n;
  let files = 0;
  try {
    await appendLoop(new SampleRecorder(), ((end: bigint) => () => nowNs() < end)(nowNs() + 200_000_000n)); // warm-up
    let busyMs = 0;
    while (busyMs < windowsMs) {
      const startNs = nowNs();
      let writing = true;
      const writer = (async () => {
        const fd = await openFile(join(directory, `out-${files}`));
        for (let offset = 0; offset < fileBytes; offset += CHUNK_SIZE) {
          await write(fd, chunk, offset);
          if ((offset + CHUNK_SIZE) % (4 * CHUNK_SIZE) === 0) await datasync(fd);
        }
        await datasync(fd);
        await close(fd);
        // The file it replaces goes, as a compaction's sources do.
        if (files > 0) await fs.promises.unlink(join(directory, `out-${files - 1}`));
        files++;
      })().finally(() => (writing = false));
      await appendLoop(during, () => writing);
      await writer;
      const windowNs = nowNs() - startNs;
      writingNs += windowNs;
      writtenBytes += fileBytes;
      busyMs += Number(windowNs) / 1e6;
      await appendLoop(alone, ((end: bigint) => () => nowNs() < end)(nowNs() + windowNs));
    }
  } finally {
    await close(appendFd);
    await context.discard(directory);
  }
  const withWriter = during.summary();
  const without = alone.summary();
  if (withWriter === undefined || without === undefined) throw new Error('no latency samples');
  return {
    section: 'disk',
    key: 'disk.interference',
    label: 'p99 append 100 B + fdatasync beside compaction-shaped writes ÷ alone',
    value: withWriter.p99 / without.p99,
    unit: '×',
    detail: `p99 ${withWriter.p99.toFixed(2)} vs ${without.p99.toFixed(2)} ms (p50 ${withWriter.p50.toFixed(2)} vs ${without.p50.toFixed(2)} ms); the writer: ${files} files of ${fileBytes / CHUNK_SIZE} MiB at ${formatNumber(writtenBytes / MB / (Number(writingNs) / 1e9))} MB/s, an fdatasync every 4 MiB, each deleting the one before`,
    status: 'measured',
    data: { p99During: withWriter.p99, p99Alone: without.p99, writerMBps: writtenBytes / MB / (Number(writingNs) / 1e9), files },
  };
}

/** The raw limits, in this order; each scenario on its own file, removed afterwards. */
export async function runDiskBaseline(context: BenchContext): Promise<Row[]> {
  return [
    await appendSync(context),
    await overwriteSync(context),
    await batchSync(context),
    await sequentialWrite(context),
    await interference(context),
  ];
}
