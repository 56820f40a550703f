// Compaction on a running queue: it must change nothing a user can observe except the size of
// the log. Method: bring a queue into a state that has every kind of job (pending, delayed,
// active, completed and failed with results and errors, waiting to retry, stalled before,
// holding keys), record getJob() for every id and counts(), compact, and compare: right after
// the compaction, after more work, and after a reopen. Churn tests run many rounds of enqueue
// and complete, with compaction manual and automatic, and check that the log stays within twice
// its live data plus one segment. Concurrency tests compact while jobs are enqueued and run, and
// check that no job is lost or run twice. Crashes during compaction: test/crash/compaction-crash.test.ts.
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClosedError, Queue, type Job, type QueueOptions } from '../../src/index.ts';
import type { CompactionReport } from '../../src/queue/compaction.ts';
import { segmentFiles } from '../support/bytes.ts';
import { SimFileSystem } from '../support/sim-fs.ts';
import { deferred, stateOf, test, waitUntil, type Deferred } from './queue-fixture.ts';

const HOUR_MS = 3_600_000;
/** Segment header (32 bytes) and SEAL record (32 + 12): what a compaction output holds besides its records. */
const SEGMENT_FRAMING_BYTES = 32 + 44;
const KEEP_ALL = { count: Number.MAX_SAFE_INTEGER };

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, n) => from + n);
}

/** Bytes of every file in `dir` (segments, and a compaction's temp file while one runs). */
async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(join(dir, name))).size;
  return total;
}

/**
 * A processor that completes, fails or holds each job as its data says:
 * `{ do: 'complete' | 'fail' | 'hold', result? }`. Held jobs stay active until released.
 */
function scriptedProcessor(held: Map<number, Deferred<unknown>>) {
  return async (job: Job): Promise<unknown> => {
    const data = job.data as { do: string; result?: unknown };
    if (data.do === 'fail') {
      const error = new Error(`failed ${job.id}`) as Error & { code: string };
      error.code = 'E_SCRIPTED';
      throw error;
    }
    if (data.do === 'hold') {
      const gate = deferred<unknown>();
      held.set(job.id, gate);
      return gate.promise;
    }
    return data.result ?? `done ${job.id}`;
  };
}

/**
 * Brings `queue` into a state with every kind of job and returns their ids. Two jobs are left
 * active (held) and released only by the caller.
 */
async function mixedState(queue: Queue, held: Map<number, Deferred<unknown>>): Promise<number[]> {
  const now = Date.now();
  const ids = await queue.enqueueMany([
    { name: 'complete', data: { do: 'complete', result: { nested: [1, 'two', null] } } },
    { name: 'bytes', data: { do: 'complete', result: 'x'.repeat(3000) } },
    { name: 'fail', data: { do: 'fail' } },
    { name: 'retry', data: { do: 'fail' }, options: { attempts: 3, backoff: HOUR_MS } },
    { name: 'hold', data: { do: 'hold' }, options: { priority: 5 } },
    { name: 'hold', data: { do: 'hold' }, options: { priority: 5, key: 'held-key' } },
  ]);
  queue.registerProcessor(scriptedProcessor(held), { concurrency: 8 });
  await waitUntil(() => held.size === 2 && queue.counts().completed === 2 && queue.counts().failed === 1 && queue.counts().delayed === 1);
  queue.pause();
  const waiting = await queue.enqueueMany([
    { name: 'pending', data: { do: 'complete' }, options: { priority: -3, key: 'pending-key' } },
    { name: 'raw', data: Buffer.from([0, 1, 2, 255]) },
    { name: 'delayed', data: { do: 'complete' }, options: { runAt: now + HOUR_MS, attempts: 4 } },
    { name: 'big', data: { do: 'complete', blob: 'y'.repeat(20_000) } },
  ]);
  return [...ids, ...waiting];
}

describe('compaction', () => {
  test('changes no job: getJob and counts are the same before, after, and after a reopen', async ({ dir }) => {
    const options: QueueOptions = { compaction: false, removeOnComplete: KEEP_ALL, removeOnFail: KEEP_ALL };
    const queue = await Queue.open(dir, options);
    const held = new Map<number, Deferred<unknown>>();
    const ids = await mixedState(queue, held);
    const before = await stateOf(queue, ids);
    expect(before.counts).toEqual({ pending: 3, delayed: 2, active: 2, completed: 2, failed: 1 });

    const report = await queue.compact();
    expect(report.jobs).toBe(ids.length);
    expect(report.bytesAfter).toBeLessThan(report.bytesBefore);
    expect(await stateOf(queue, ids)).toEqual(before);

    // The held jobs finish after the compaction: their new outcomes are kept, the rest unchanged.
    for (const gate of held.values()) gate.resolve('late result');
    await waitUntil(() => queue.counts().completed === 4);
    const finished = await stateOf(queue, ids);
    for (const id of held.keys()) expect(finished.jobs.get(id)).toMatchObject({ state: 'completed', result: 'late result', attempt: 1 });
    await queue.close();

    const reopened = await Queue.open(dir, options);
    expect(await stateOf(reopened, ids)).toEqual(finished);
    await reopened.close();
  });

  test('writes exactly the live jobs: the new segment is the live estimate plus its framing', async ({ dir }) => {
    const queue = await Queue.open(dir, { compaction: false, durability: 'none' });
    queue.registerProcessor((job) => (job.data as number) % 2 === 0 ? job.id : Promise.reject(new Error('odd')), { concurrency: 4 });
    for (let round = 0; round < 5; round++) {
      await queue.enqueueMany(range(1, 500).map((n) => ({ name: 'job', data: n })));
      await once(queue, 'drained');
    }
    queue.pause();
    await queue.enqueueMany(range(1, 100).map((n) => ({ name: 'waiting', data: { n, pad: 'z'.repeat(n) } })));
    const liveBytes = queue.stats().liveBytes;
    const report = await queue.compact();
    expect(report.bytesAfter).toBe(liveBytes + SEGMENT_FRAMING_BYTES);
    // The log is now the new segment plus an empty active segment (its 32-byte header).
    expect(queue.stats()).toMatchObject({ logBytes: report.bytesAfter + 32, segments: 2, liveBytes });
    await queue.close();
  });

  test('after a reopen ids keep increasing and attempts, stalls, run-at, results, errors and retention order are kept', async () => {
    let disk = new SimFileSystem();
    const sim = { fileSystem: disk, compaction: false, removeOnComplete: 3, removeOnFail: 2 } satisfies QueueOptions;
    let queue = await Queue.open('/q', sim);
    queue.on('error', () => undefined);
    const held = new Map<number, Deferred<unknown>>();
    // A stall first: the process dies while job `stalled` runs.
    const stalled = await queue.enqueue('stalled', { do: 'complete' }, { maxStalls: 5, priority: -10 });
    const running = deferred<number>();
    queue.registerProcessor((job) => {
      running.resolve(job.id);
      return new Promise(() => undefined);
    });
    expect(await running.promise).toBe(stalled);
    disk = disk.crash({ mode: 'process' });
    queue = await Queue.open('/q', { ...sim, fileSystem: disk });
    expect(await queue.getJob(stalled)).toMatchObject({ state: 'pending', stalls: 1 });

    const runAt = Date.now() + HOUR_MS;
    const ids = await queue.enqueueMany([
      ...range(1, 6).map((n) => ({ name: 'done', data: { do: 'complete', result: n } })),
      ...range(1, 3).map(() => ({ name: 'bad', data: { do: 'fail' } })),
      { name: 'retry', data: { do: 'fail' }, options: { attempts: 5, backoff: { type: 'exponential' as const, delayMs: HOUR_MS } } },
      { name: 'later', data: { do: 'complete' }, options: { runAt } },
    ]);
    const completionOrder: number[] = [];
    queue.on('completed', (job) => completionOrder.push(job.id));
    queue.registerProcessor(scriptedProcessor(held), { concurrency: 4 });
    await waitUntil(() => queue.counts().pending === 0 && queue.counts().completed === 3 && queue.counts().failed === 2 && queue.counts().delayed === 2 && queue.counts().active === 0);
    const all = [stalled, ...ids];
    const before = await stateOf(queue, all);
    await queue.compact();
    await queue.close();

    queue = await Queue.open('/q', { ...sim, fileSystem: disk.crash({ mode: 'process' }) });
    expect(await stateOf(queue, all)).toEqual(before);
    expect(before.jobs.get(stalled)).toMatchObject({ state: 'completed', stalls: 1, attempt: 1 });
    expect(before.jobs.get(ids[9]!)).toMatchObject({ state: 'delayed', attempt: 1, error: { message: `failed ${ids[9]}`, code: 'E_SCRIPTED' } });
    expect(before.jobs.get(ids[10]!)).toMatchObject({ state: 'delayed', runAt });
    // Retention order survived: two more completions evict the two oldest retained jobs.
    const retained = completionOrder.slice(-3);
    expect(retained.map((id) => before.jobs.get(id)?.state)).toEqual(['completed', 'completed', 'completed']);
    const next = await queue.enqueueMany([{ name: 'new', data: { do: 'complete' } }, { name: 'new', data: { do: 'complete' } }]);
    expect(Math.min(...next)).toBeGreaterThan(Math.max(...all));
    queue.registerProcessor(scriptedProcessor(held));
    await waitUntil(async () => (await queue.getJob(next[1]!))?.state === 'completed');
    const kept = (await stateOf(queue, [...retained, ...next])).jobs;
    expect([...kept].filter(([, job]) => job !== undefined).map(([id]) => id)).toEqual([retained[2], ...next]);
    await queue.close();
  });

  it('keeps jobs that were active at the cut active on disk, so a crash after the compaction counts their stall', async () => {
    const disk = new SimFileSystem();
    const queue = await Queue.open('/q', { fileSystem: disk, compaction: false });
    queue.on('error', () => undefined);
    const held = new Map<number, Deferred<unknown>>();
    const ids = await queue.enqueueMany([{ name: 'a', data: { do: 'hold' } }, { name: 'b', data: { do: 'complete' } }]);
    queue.registerProcessor(scriptedProcessor(held), { concurrency: 2 });
    await waitUntil(() => held.size === 1 && queue.counts().completed === 1);
    await queue.compact();
    const reopened = await Queue.open('/q', { fileSystem: disk.crash({ mode: 'process' }) });
    expect(await reopened.getJob(ids[0]!)).toMatchObject({ state: 'pending', stalls: 1, attempt: 0 });
    expect(await reopened.getJob(ids[1]!)).toMatchObject({ state: 'completed', result: `done ${ids[1]}` });
    await reopened.close();
  });

  test('keeps an outcome appended while the compaction runs, and the job it belongs to', async ({ dir }) => {
    const queue = await Queue.open(dir, { compaction: false, durability: 'none' });
    const held = new Map<number, Deferred<unknown>>();
    queue.registerProcessor(scriptedProcessor(held), { concurrency: 4 });
    await queue.enqueueMany(range(1, 3000).map((n) => ({ name: 'filler', data: { do: 'complete', n } })));
    await waitUntil(() => queue.counts().pending === 0 && queue.counts().active === 0);
    const [holdId] = await queue.enqueueMany([{ name: 'hold', data: { do: 'hold' } }]);
    await waitUntil(() => held.has(holdId!));
    const compaction = queue.compact();
    expect(queue.stats().compaction.running).toBe(true);
    held.get(holdId!)!.resolve('finished during compaction');
    const [late] = await queue.enqueueMany([{ name: 'late', data: { do: 'complete' } }]);
    await compaction;
    await waitUntil(() => queue.counts().pending === 0 && queue.counts().active === 0);
    expect(await queue.getJob(holdId!)).toMatchObject({ state: 'completed', result: 'finished during compaction' });
    expect(await queue.getJob(late!)).toMatchObject({ state: 'completed' });
    const after = await stateOf(queue, [holdId!, late!]);
    await queue.close();
    const reopened = await Queue.open(dir);
    expect(await stateOf(reopened, [holdId!, late!])).toEqual(after);
    await reopened.close();
  });

  test('copies finished jobs whose added records outgrow what it holds in memory by reading them back', async ({ dir }) => {
    // 9,000 added records of ~1 KiB come before their completed records: more than the 8 MiB
    // the compaction keeps while it waits for each job's outcome record.
    const options: QueueOptions = { compaction: false, durability: 'none', removeOnComplete: KEEP_ALL };
    const queue = await Queue.open(dir, options);
    queue.pause();
    const ids = await queue.enqueueMany(range(1, 9000).map((n) => ({ name: 'job', data: { n, pad: 'p'.repeat(1000) } })));
    queue.registerProcessor((job) => (job.data as { n: number }).n, { concurrency: 8 });
    const drained = once(queue, 'drained');
    queue.resume();
    await drained;
    const sample = ids.filter((_, n) => n % 97 === 0 || n === ids.length - 1);
    const before = await stateOf(queue, sample);
    const report = await queue.compact();
    expect(report.jobs).toBe(9000);
    expect(await stateOf(queue, sample)).toEqual(before);
    await queue.close();
    const reopened = await Queue.open(dir, options);
    expect(await stateOf(reopened, sample)).toEqual(before);
    expect(reopened.counts().completed).toBe(9000);
    await reopened.close();
  });

  test('runs one compaction at a time: a second call returns the running one', async ({ dir }) => {
    const queue = await Queue.open(dir, { compaction: false });
    await queue.enqueueMany(range(1, 100).map((n) => ({ name: 'job', data: n })));
    const reports: CompactionReport[] = [];
    queue.on('compacted', (report) => reports.push(report));
    const first = queue.compact();
    const second = queue.compact();
    expect(second).toBe(first);
    const report = await first;
    expect(reports).toEqual([report]);
    expect(report).toMatchObject({ jobs: 100 });
    expect(report.durationMs).toBeGreaterThan(0);
    // The next call starts a new one.
    const third = queue.compact();
    expect(third).not.toBe(first);
    await third;
    expect(queue.stats().compaction).toMatchObject({ running: false, runs: 2, failures: 0 });
    await queue.close();
  });

  test('keeps the ids of enqueues that were not acknowledged yet when the log was cut', async ({ dir }) => {
    const queue = await Queue.open(dir, { compaction: false });
    const first = await queue.enqueue('a', 1);
    // Appended but not acknowledged (its fsync is pending) when compact() cuts the log.
    const inflight = queue.enqueueMany(range(1, 50).map((n) => ({ name: 'b', data: n })));
    const report = await queue.compact();
    const ids = await inflight;
    expect(report.jobs).toBe(51);
    const state = await stateOf(queue, [first, ...ids]);
    expect(state.counts.pending).toBe(51);
    // Compact again: the second compaction finds every job at its new location.
    await queue.compact();
    expect(await stateOf(queue, [first, ...ids])).toEqual(state);
    await queue.close();
    const reopened = await Queue.open(dir);
    expect(await stateOf(reopened, [first, ...ids])).toEqual(state);
    await reopened.close();
  });

  test('compacts on its own once the log is large and mostly dead; compaction: false turns that off', async ({ dir }) => {
    const churn = async (queue: Queue): Promise<void> => {
      queue.registerProcessor(() => undefined, { concurrency: 8 });
      for (let round = 0; round < 20; round++) {
        const drained = once(queue, 'drained');
        await queue.enqueueMany(range(1, 200).map((n) => ({ name: 'job', data: { n, pad: 'p'.repeat(200) } })));
        await drained;
      }
      await waitUntil(() => !queue.stats().compaction.running);
    };
    const small = { minSizeBytes: 256 * 1024, deadRatio: 0.5 };
    const auto = await Queue.open(join(dir, 'auto'), { durability: 'none', segmentSize: 64 * 1024, compaction: small });
    const reports: CompactionReport[] = [];
    auto.on('compacted', (report) => reports.push(report));
    await churn(auto);
    expect(reports.length).toBeGreaterThan(0);
    expect(auto.stats().compaction.runs).toBe(reports.length);
    for (const report of reports) expect(report.bytesBefore).toBeGreaterThanOrEqual(small.minSizeBytes / 2);
    await auto.close();

    for (const [name, compaction] of [['manual', false], ['manual-options', { ...small, auto: false }]] as const) {
      const manual = await Queue.open(join(dir, name), { durability: 'none', segmentSize: 64 * 1024, compaction });
      await churn(manual);
      expect(manual.stats().compaction.runs).toBe(0);
      expect(manual.stats().logBytes).toBeGreaterThan(4 * small.minSizeBytes);
      await manual.close();
    }
  });

  test('writes no faster than maxBytesPerSecond while enqueues are being synced', async ({ dir }) => {
    // A lower bound on the duration only: a slow machine cannot make this fail.
    const maxBytesPerSecond = 8 * 1024 * 1024;
    const queue = await Queue.open(dir, { durability: 'none', compaction: { auto: false, maxBytesPerSecond } });
    const ids = await queue.enqueueMany(range(1, 3000).map((n) => ({ name: 'job', data: { n, pad: 'r'.repeat(1000) } })));
    const before = (await stateOf(queue, ids.slice(0, 20))).jobs;
    // Synced enqueues flow before the compaction starts: it takes tens of ms now, and on a busy
    // machine the first fdatasync could otherwise come back only after it had run unpaced.
    let compacting = true;
    let synced = 0;
    const enqueuing = (async () => {
      while (compacting) {
        await queue.enqueue('job', { n: 0 }, { durability: 'sync' });
        synced++;
      }
    })();
    while (synced < 3) await new Promise((resolve) => setImmediate(resolve));
    const report = await queue.compact().finally(() => (compacting = false));
    await enqueuing;
    expect(report.bytesAfter).toBeGreaterThan(3 * 1024 * 1024);
    // The first chunk may go at once (no sync seen yet), and one short burst after it.
    expect(report.durationMs).toBeGreaterThanOrEqual(((report.bytesAfter - 2 * 1024 * 1024) / maxBytesPerSecond) * 1000);
    expect((await stateOf(queue, ids.slice(0, 20))).jobs).toEqual(before);
    await queue.close();
  });

  test('runs at full speed while appends are not synced, even as the log rolls', async ({ dir }) => {
    // At 10 KB/s a paced compaction of this log would take minutes (the test's timeout fails it):
    // appends with durability 'none' and the fdatasyncs of segment rolls must not pace it.
    const queue = await Queue.open(dir, { durability: 'none', segmentSize: 64 * 1024, compaction: { auto: false, maxBytesPerSecond: 10_000 } });
    await queue.enqueueMany(range(1, 3000).map((n) => ({ name: 'job', data: { n, pad: 'f'.repeat(1000) } })));
    let compacting = true;
    const compaction = queue.compact().finally(() => (compacting = false));
    let appended = 0;
    while (compacting) {
      await queue.enqueueMany(range(1, 20).map((n) => ({ name: 'job', data: { n, pad: 'g'.repeat(1000) } })));
      appended += 20;
    }
    const report = await compaction;
    expect(report.bytesAfter).toBeGreaterThan(3 * 1024 * 1024);
    expect(queue.counts().pending).toBe(3000 + appended);
    await queue.close();
  });

  test('close() does not wait out a paced compaction', async ({ dir }) => {
    // At 10 KB/s the output would take minutes: close must abort the pacing, not sit it out.
    const queue = await Queue.open(dir, { durability: 'none', compaction: { auto: false, maxBytesPerSecond: 10_000 } });
    const ids = await queue.enqueueMany(range(1, 3000).map((n) => ({ name: 'job', data: { n, pad: 'w'.repeat(1000) } })));
    const before = (await stateOf(queue, ids.slice(0, 10))).jobs;
    const compaction = queue.compact();
    // Synced enqueues make the compaction pace itself.
    for (let n = 0; n < 20; n++) await queue.enqueue('job', { n }, { durability: 'sync' });
    expect(queue.stats().compaction.running).toBe(true);
    await queue.close();
    await expect(compaction).rejects.toThrow(ClosedError);
    expect((await readdir(dir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    const reopened = await Queue.open(dir);
    expect((await stateOf(reopened, ids.slice(0, 10))).jobs).toEqual(before);
    await reopened.close();
  });

  test('close() abandons a running compaction; the queue reopens with the same state and no leftovers', async ({ dir }) => {
    const queue = await Queue.open(dir, { compaction: false, durability: 'none' });
    const ids = await queue.enqueueMany(range(1, 20_000).map((n) => ({ name: 'job', data: { n, pad: 'q'.repeat(100) } })));
    const before = await stateOf(queue, ids.slice(0, 50));
    const compaction = queue.compact();
    const closed = queue.close();
    await expect(compaction).rejects.toThrow(ClosedError);
    await closed;
    expect((await readdir(dir)).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    const reopened = await Queue.open(dir);
    expect(reopened.counts().pending).toBe(20_000);
    expect(await stateOf(reopened, ids.slice(0, 50))).toEqual(before);
    await expect(reopened.close().then(() => reopened.compact())).rejects.toThrow(ClosedError);
  });

  describe('damage in the records it copies or drops', () => {
    const options: QueueOptions = { compaction: false, removeOnComplete: { count: 0 } };

    /** A queue with 20 completed jobs (gone: none retained) and 10 pending ones, closed. */
    async function build(dir: string): Promise<{ pending: number[]; files: string[] }> {
      const queue = await Queue.open(dir, options);
      const processor = queue.registerProcessor(() => 'ok');
      const drained = once(queue, 'drained');
      await queue.enqueueMany(range(100, 119).map((n) => ({ name: `dead-${n}`, data: { n } })));
      await drained;
      queue.unregisterProcessor(processor);
      const pending = await queue.enqueueMany(range(100, 109).map((n) => ({ name: `live-${n}`, data: { n } })));
      await queue.close();
      return { pending, files: segmentFiles(dir) };
    }

    /** Flips a byte of the added record of the job named `name`, `delta` bytes from the start of its payload. */
    function damageAdded(files: string[], name: string, delta: number): void {
      for (const file of files) {
        const bytes = readFileSync(file);
        // The name follows the added record's fixed 66-byte header.
        const at = bytes.indexOf(Buffer.from(name)) - 66;
        if (at < 0) continue;
        bytes[at + delta] = bytes[at + delta]! ^ 0xff;
        writeFileSync(file, bytes);
        return;
      }
      throw new Error(`no added record named ${name}`);
    }

    test('drops a damaged dead record and keeps every live job', async ({ dir }) => {
      const { pending, files } = await build(dir);
      // Open checks every record and would refuse damage: it comes while the queue is open.
      const queue = await Queue.open(dir, options);
      const before = await stateOf(queue, pending);
      damageAdded(files, 'dead-105', 80);
      await queue.compact();
      expect(await stateOf(queue, pending)).toEqual(before);
      await queue.close();
      const reopened = await Queue.open(dir, options);
      expect(await stateOf(reopened, pending)).toEqual(before);
      await reopened.close();
    });

    // A never-started job is copied as it is, damage and all: it reads as corrupt afterwards, its
    // neighbour reads fine, and the next open refuses the compacted segment.
    for (const { where, damaged, delta, intact } of [
      { where: 'data', damaged: 4, delta: 80, intact: 5 },
      { where: 'id', damaged: 7, delta: 3, intact: 6 },
    ]) {
      test(`copies a never-started job with damage in its ${where} as it is: the job reads as corrupt, and so does the next open`, async ({ dir }) => {
        const { pending, files } = await build(dir);
        const queue = await Queue.open(dir, options);
        damageAdded(files, `live-${100 + damaged}`, delta);
        await queue.compact();
        await expect(queue.getJob(pending[damaged]!)).rejects.toMatchObject({ code: 'ERR_BLERO_CORRUPT' });
        expect((await queue.getJob(pending[intact]!))?.data).toEqual({ n: 100 + intact });
        await queue.close();
        await expect(Queue.open(dir, options)).rejects.toMatchObject({ code: 'ERR_BLERO_CORRUPT', reason: 'sealed-segment-damage' });
      });
    }

    test('refuses to commit when damage hides a live job it must snapshot, and names the damaged record', async ({ dir }) => {
      // Retained completed jobs are snapshotted: their records are read and decided one by one.
      const retaining: QueueOptions = { compaction: false, removeOnComplete: { count: 100 } };
      const built = await Queue.open(dir, retaining);
      const processor = built.registerProcessor(() => 'ok');
      const drained = once(built, 'drained');
      await built.enqueueMany(range(100, 109).map((n) => ({ name: `done-${n}`, data: { n } })));
      await drained;
      built.unregisterProcessor(processor);
      await built.close();
      const files = segmentFiles(dir);
      const queue = await Queue.open(dir, retaining);
      damageAdded(files, 'done-107', 3); // in the job's id
      await expect(queue.compact()).rejects.toMatchObject({ code: 'ERR_BLERO_CORRUPT', reason: 'payload-crc' });
      // The old segments are all there (the cut added an active segment), and no temp file.
      const after = await readdir(dir);
      for (const file of files) expect(after).toContain(file.slice(dir.length + 1));
      expect(after.filter((name) => name.endsWith('.tmp'))).toEqual([]);
      expect(queue.stats().compaction).toMatchObject({ failures: 1, runs: 0 });
      await queue.close();
    });
  });

  test('a job snapshotted while running, then released by close(), is written as a plain job by the next compaction', async ({ dir }) => {
    // Pending again with no attempt and no stall, but it sits at a snapshot record: compaction
    // must read it (not copy the snapshot blind as if it were an added record).
    const first = await Queue.open(dir, { compaction: false });
    const [held, waiting] = await first.enqueueMany([
      { name: 'held', data: { n: 1, pad: 'h'.repeat(300) } },
      { name: 'waiting', data: { n: 2 } },
    ]);
    const started = deferred<void>();
    first.registerProcessor(async (job) => {
      if (job.id === held) {
        started.resolve();
        await new Promise(() => undefined); // ignores its signal: close() gives up on it
      }
      return 'done';
    });
    await started.promise;
    await first.compact(); // the held job is active: written as a snapshot
    await first.close({ timeoutMs: 10 }); // released
    for (let round = 0; round < 3; round++) {
      const queue = await Queue.open(dir, { compaction: false });
      const job = await queue.getJob(held!);
      expect(job).toMatchObject({ state: 'pending', stalls: 0, data: { n: 1, pad: 'h'.repeat(300) } });
      expect(queue.counts()).toMatchObject({ pending: 2, active: 0 });
      const liveBytes = queue.stats().liveBytes;
      const report = await queue.compact();
      expect(report.jobs).toBe(2);
      expect(await queue.getJob(held!)).toEqual(job);
      // Written as its added record, without a snapshot header: exactly the live data.
      expect(report.bytesAfter, `round ${round}`).toBe(liveBytes + SEGMENT_FRAMING_BYTES);
      await queue.close();
    }
    expect(waiting).toBeGreaterThan(held!);
  });

  it('validates the compaction options', async () => {
    const disk = new SimFileSystem();
    for (const deadRatio of [0, 1, -0.5, Number.NaN]) {
      await expect(Queue.open('/q', { fileSystem: disk, compaction: { deadRatio } })).rejects.toThrow(RangeError);
    }
    await expect(Queue.open('/q', { fileSystem: disk, compaction: { minSizeBytes: -1 } })).rejects.toThrow(RangeError);
    await expect(Queue.open('/q', { fileSystem: disk, compaction: { minSizeBytes: 1.5 } })).rejects.toThrow(RangeError);
    await expect(Queue.open('/q', { fileSystem: disk, compaction: true as unknown as false })).rejects.toThrow(TypeError);
    await expect(Queue.open('/q', { fileSystem: disk, compaction: { deadRatio: '0.5' as unknown as number } })).rejects.toThrow(TypeError);
    for (const maxBytesPerSecond of [0, -1, Number.NaN]) {
      await expect(Queue.open('/q', { fileSystem: disk, compaction: { maxBytesPerSecond } })).rejects.toThrow(RangeError);
    }
    await expect(Queue.open('/q', { fileSystem: disk, compaction: { maxBytesPerSecond: '1e6' as unknown as number } })).rejects.toThrow(TypeError);
    await expect(Queue.open('/q', { fileSystem: disk, compaction: { auto: 'no' as unknown as boolean } })).rejects.toThrow(TypeError);
  });
});

describe('compaction under churn', () => {
  test('leaves every job unchanged across many rounds of enqueue, complete and compact', async ({ dir }) => {
    const options: QueueOptions = { compaction: false, durability: 'none', segmentSize: 32 * 1024, removeOnComplete: 150, removeOnFail: 50 };
    let queue = await Queue.open(dir, options);
    const held = new Map<number, Deferred<unknown>>();
    const seen: number[] = [];
    let previous = 0;
    for (let round = 0; round < 12; round++) {
      const kinds = ['complete', 'complete', 'fail', 'complete'];
      const ids = await queue.enqueueMany(range(1, 120).map((n) => ({ name: `r${round}`, data: { do: kinds[n % 4], n, pad: 'c'.repeat(n) } })));
      expect(ids[0]).toBeGreaterThan(previous);
      previous = ids[ids.length - 1]!;
      seen.push(...ids);
      if (round % 3 === 2) {
        // A reopen between rounds (a clean close): ids jump past the lease, state stays.
        const state = await stateOf(queue, seen);
        await queue.close();
        queue = await Queue.open(dir, options);
        expect(await stateOf(queue, seen)).toEqual(state);
      }
      const processor = queue.registerProcessor(scriptedProcessor(held), { concurrency: 4 });
      // Leave some work pending for the next round.
      await waitUntil(() => queue.counts().pending <= 30);
      queue.unregisterProcessor(processor);
      await waitUntil(() => queue.counts().active === 0);
      const before = await stateOf(queue, seen);
      const report = await queue.compact();
      expect(report.jobs).toBe(before.counts.pending + before.counts.delayed + before.counts.completed + before.counts.failed);
      expect(await stateOf(queue, seen)).toEqual(before);
      // After a compaction with nothing appended since, the log is its live data plus framing.
      const stats = queue.stats();
      expect(stats.logBytes).toBe(stats.liveBytes + SEGMENT_FRAMING_BYTES + 32);
    }
    await queue.close();
  });

  test('keeps the log within twice its live data plus one segment when compacting on its own', async ({ dir }) => {
    const segmentSize = 64 * 1024;
    const queue = await Queue.open(dir, {
      durability: 'none',
      segmentSize,
      removeOnComplete: 200,
      compaction: { minSizeBytes: 4 * segmentSize },
    });
    // A steady backlog that never runs, and a churn of jobs that enqueue and complete.
    await queue.enqueueMany(range(1, 300).map((n) => ({ name: 'backlog', data: { n, pad: 'b'.repeat(200) }, options: { runAt: Date.now() + HOUR_MS } })));
    queue.registerProcessor(() => 'ok', { concurrency: 8 });
    let worst = 0;
    let compactions = 0;
    queue.on('compacted', () => compactions++);
    for (let round = 0; round < 60; round++) {
      const drained = once(queue, 'drained');
      await queue.enqueueMany(range(1, 100).map((n) => ({ name: 'churn', data: { n, pad: 'x'.repeat(300) } })));
      await drained;
      await waitUntil(() => !queue.stats().compaction.running);
      const stats = queue.stats();
      const onDisk = await directoryBytes(dir);
      worst = Math.max(worst, onDisk / (2 * stats.liveBytes + segmentSize));
      expect(onDisk).toBeLessThanOrEqual(2 * stats.liveBytes + segmentSize);
    }
    expect(compactions).toBeGreaterThan(3);
    expect(worst).toBeGreaterThan(0.5);
    await queue.close();
  });
});

describe('compaction concurrent with enqueue and processing', () => {
  test('loses no job and runs none twice while compactions run back to back', async ({ dir }) => {
    const options: QueueOptions = {
      durability: 'none',
      segmentSize: 128 * 1024,
      removeOnComplete: KEEP_ALL,
      // Unpaced: the log only grows here (every job is kept), and fifteen paced compactions of it
      // would take longer than the test may; pacing has its own tests above.
      compaction: { minSizeBytes: 256 * 1024, maxBytesPerSecond: Infinity },
    };
    const queue = await Queue.open(dir, options);
    const runs = new Map<number, number>();
    queue.registerProcessor(
      async (job) => {
        runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
        if (job.id % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
        return job.id * 2;
      },
      { concurrency: 8 },
    );
    const enqueued: number[] = [];
    let producing = true;
    const producers = range(1, 4).map(async (producer) => {
      for (let batch = 0; producing; batch++) {
        const size = 1 + ((batch * 7 + producer) % 40);
        enqueued.push(...(await queue.enqueueMany(range(1, size).map((n) => ({ name: `p${producer}`, data: { n, pad: 'e'.repeat(n * 5) } })))));
        if (batch % 5 === 0) enqueued.push(await queue.enqueue('single', { producer, batch }, { durability: 'sync' }));
      }
    });
    let manual = 0;
    while (manual < 15) {
      await queue.compact();
      manual++;
    }
    producing = false;
    await Promise.all(producers);
    await waitUntil(() => queue.counts().pending === 0 && queue.counts().active === 0, 30_000);
    expect(new Set(enqueued).size).toBe(enqueued.length);
    expect(queue.counts()).toMatchObject({ pending: 0, delayed: 0, active: 0, completed: enqueued.length, failed: 0 });
    for (const id of enqueued) expect(runs.get(id)).toBe(1);
    expect(runs.size).toBe(enqueued.length);
    expect(queue.stats().compaction.runs).toBeGreaterThanOrEqual(manual);
    const sample = enqueued.filter((_, n) => n % 50 === 0);
    const state = await stateOf(queue, sample);
    for (const id of sample) expect(state.jobs.get(id)).toMatchObject({ state: 'completed', result: id * 2 });
    await queue.close();
    const reopened = await Queue.open(dir, { ...options, compaction: false });
    expect(reopened.counts()).toMatchObject({ pending: 0, active: 0, completed: enqueued.length });
    expect(await stateOf(reopened, sample)).toEqual(state);
    await reopened.close();
  });
});

describe('reads racing compaction', () => {
  it('keeps a segment replaced by one compaction readable for a read started before it, even when the next compaction starts', async () => {
    // A disk whose reads wait at a gate while it is closed: a getJob started before a compaction
    // is still reading the old segment when the next compaction begins.
    const sim = new SimFileSystem();
    let gate: Deferred<void> | undefined;
    const gated = (handle: Awaited<ReturnType<SimFileSystem['open']>>): typeof handle => ({
      read: async (...args) => {
        const waitFor = gate?.promise;
        if (waitFor !== undefined) await waitFor;
        return handle.read(...args);
      },
      writev: (...args) => handle.writev(...args),
      datasync: () => handle.datasync(),
      truncate: (length) => handle.truncate(length),
      size: () => handle.size(),
      close: () => handle.close(),
    });
    const disk: NonNullable<QueueOptions['fileSystem']> = {
      open: async (path, mode) => gated(await sim.open(path, mode)),
      readdir: (path) => sim.readdir(path),
      rename: (source, target) => sim.rename(source, target),
      unlink: (path) => sim.unlink(path),
      mkdir: (path) => sim.mkdir(path),
      syncDirectory: (path) => sim.syncDirectory(path),
    };
    const first = await Queue.open('/q', { fileSystem: disk, compaction: false });
    const ids = await first.enqueueMany(range(1, 20).map((n) => ({ name: 'job', data: { n } })));
    await first.close();
    // Reopened: no job is cached, getJob reads the log.
    const queue = await Queue.open('/q', { fileSystem: disk, compaction: false });
    const held = deferred();
    gate = held;
    const reading = queue.getJob(ids[3]!);
    gate = undefined;
    // This compaction replaces the segment the read is waiting on; the next one would close it.
    await queue.compact();
    let nextDone = false;
    const next = queue.compact().then(() => (nextDone = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(nextDone, 'the next compaction waits for the read').toBe(false);
    held.resolve();
    await next;
    expect(await reading).toMatchObject({ id: ids[3], data: { n: 4 } });
    expect(await queue.getJob(ids[4]!)).toMatchObject({ id: ids[4], data: { n: 5 } });
    await queue.close();
  });
});
