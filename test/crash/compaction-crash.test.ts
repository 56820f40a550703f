// A crash at every step of a compaction, and I/O faults during one, on the simulated disk.
//
// Method: a base directory is built once (a queue with history: completed, failed and retried
// jobs, keys, payloads from a few bytes to 20 KB, over many 8 KiB segments, then closed). Each
// run starts from a durable copy of it, opens the queue, lets a processor take two jobs and hold
// them (active at the cut), syncs everything with a 'sync' enqueue, and then compacts while a
// second 'sync' enqueue runs alongside. The run is counted once without a crash; then for every
// k up to that count the disk crashes after k operations of the run, and the crashed disk is
// reopened four ways: as a process crash (the page cache survives) and as three seeded power
// cuts (unsynced bytes and directory changes kept, lost or torn at random). Every reopen must
// show exactly the state of a crash without any compaction (the same disk, process crash before
// compact()): every job with every field getJob reports, the same counts, the two held jobs
// back to pending with one more stall, the concurrent enqueue present if it was acknowledged,
// and new ids above every old one. No temp file may survive a reopen.
import { describe, expect, it } from 'vitest';
import { Queue, type QueueOptions } from '../../src/index.ts';
import { injectedEio, SimFileSystem } from '../support/sim-fs.ts';
import type { CrashOptions } from '../support/sim-fs.ts';
import { stateOf } from '../queue/queue-fixture.ts';

const DIR = '/queue';
const HOUR_MS = 3_600_000;
const OPTIONS = { compaction: false, segmentSize: 8 * 1024, removeOnComplete: 15, removeOnFail: 5 } satisfies QueueOptions;
const CRASHES: readonly CrashOptions[] = [{ mode: 'process' }, { seed: 11 }, { seed: 23 }, { seed: 37 }];

async function open(disk: SimFileSystem): Promise<Queue> {
  const queue = await Queue.open(DIR, { ...OPTIONS, fileSystem: disk });
  // A crashed disk poisons the log; the queue reports it as 'error'.
  queue.on('error', () => undefined);
  return queue;
}

async function waitFor(condition: () => boolean): Promise<void> {
  for (let turn = 0; !condition(); turn++) {
    if (turn > 10_000) throw new Error('condition not reached');
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** The base directory: a queue with a history, closed cleanly. Returns its files and job ids. */
async function buildBase(): Promise<{ files: Map<string, Buffer>; ids: number[] }> {
  const disk = new SimFileSystem();
  const queue = await open(disk);
  const ids: number[] = [];
  queue.registerProcessor(
    (job) => {
      const data = job.data as { n: number };
      if (data.n % 5 === 1) throw new Error(`no ${data.n}`);
      return { doubled: data.n * 2 };
    },
    { concurrency: 3 },
  );
  for (let round = 0; round < 6; round++) {
    ids.push(
      ...(await queue.enqueueMany(
        Array.from({ length: 20 }, (_, n) => ({
          name: `round-${round}`,
          data: { n, pad: 'h'.repeat((n * 37) % 400) },
          options: n % 7 === 3 ? { attempts: 2, backoff: 0 } : { key: `k${round}-${n}` },
        })),
      )),
    );
    await waitFor(() => queue.counts().pending === 0 && queue.counts().active === 0);
  }
  // retry-later fails once and waits an hour to retry.
  ids.push(await queue.enqueue('retry-later', { n: 1 }, { attempts: 3, backoff: HOUR_MS, priority: 9 }));
  await waitFor(() => queue.counts().delayed === 1);
  queue.pause();
  ids.push(
    ...(await queue.enqueueMany([
      { name: 'big', data: { n: 0, pad: 'B'.repeat(20_000) }, options: { priority: 8 } },
      { name: 'delayed', data: { n: 2 }, options: { runAt: Date.now() + HOUR_MS } },
      { name: 'keyed', data: { n: 3 }, options: { key: 'live-key', priority: 1 } },
      { name: 'bytes', data: Buffer.from('raw bytes stay bytes') },
      ...Array.from({ length: 10 }, (_, n) => ({ name: 'backlog', data: { n: 10 + n, pad: 'w'.repeat(n * 50) } })),
    ])),
  );
  await queue.close();
  return { files: disk.snapshot(), ids };
}

function durableCopy(files: ReadonlyMap<string, Buffer>): SimFileSystem {
  const disk = new SimFileSystem();
  for (const [file, bytes] of files) disk.writeFileSync(file, bytes, { durable: true });
  return disk;
}

interface Prepared {
  readonly disk: SimFileSystem;
  readonly queue: Queue;
  readonly held: number[];
  readonly marker: number;
}

/** Opens a copy of the base, makes two jobs active (held forever), and syncs everything. */
async function prepare(files: ReadonlyMap<string, Buffer>): Promise<Prepared> {
  const disk = durableCopy(files);
  const queue = await open(disk);
  const held: number[] = [];
  queue.registerProcessor(
    (job) => {
      held.push(job.id);
      return new Promise(() => undefined);
    },
    { concurrency: 2 },
  );
  await waitFor(() => held.length === 2);
  // Started records are appended without an fsync: this 'sync' enqueue takes them to disk, so a
  // power cut during the compaction finds them whatever it does.
  const marker = await queue.enqueue('marker', { n: -1 }, { durability: 'sync' });
  return { disk, queue, held, marker };
}

describe('a crash during compaction', () => {
  it('reopens to the state before the compaction plus the acknowledged appends, at every operation, after process crashes and power cuts', async () => {
    const base = await buildBase();
    // The reference: the same disk, crashed just before compact() would have run.
    const reference = await prepare(base.files);
    // The marker is enqueued anew by each run (its timestamps differ): it is checked on its own.
    const all = base.ids;
    const expected = await stateOf(await open(reference.disk.crash({ mode: 'process' })), all);
    expect(expected.counts).toMatchObject({ active: 0, delayed: 2 });
    for (const id of reference.held) expect(expected.jobs.get(id)).toMatchObject({ state: 'pending', stalls: 1 });

    // Count the operations of one full run.
    const counted = await prepare(base.files);
    const start = counted.disk.counters.operations;
    const [report] = await Promise.all([counted.queue.compact(), counted.queue.enqueue('late', { n: -2 }, { durability: 'sync' })]);
    const total = counted.disk.counters.operations - start;
    expect(report.bytesAfter).toBeLessThan(report.bytesBefore / 2);
    expect(total).toBeGreaterThan(15);

    const outcomes = { committed: 0, notCommitted: 0, lateKept: 0, lateLost: 0 };
    for (let k = 0; k <= total; k++) {
      const run = await prepare(base.files);
      expect(run.held).toEqual(reference.held);
      expect(run.marker).toBe(reference.marker);
      run.disk.crashAfterOperations(k);
      let committed = false;
      let lateId: number | undefined;
      const compaction = run.queue.compact().then(
        () => (committed = true),
        () => undefined,
      );
      const late = run.queue.enqueue('late', { n: -2 }, { durability: 'sync' }).then(
        (id) => (lateId = id),
        () => undefined,
      );
      await Promise.all([compaction, late]);
      if (k < total) expect(run.disk.crashed).toBe(true);
      for (const crash of CRASHES) {
        const context = `crash after ${k} of ${total} operations, ${JSON.stringify(crash)}`;
        const reopened = await open(run.disk.crash(crash));
        const state = await stateOf(reopened, all);
        expect(state.jobs, context).toEqual(expected.jobs);
        expect(await reopened.getJob(reference.marker), context).toMatchObject({ name: 'marker', state: 'pending', data: { n: -1 } });
        const lateJob = (await reopened.getJob(reference.marker + 1)) ?? undefined;
        if (lateId !== undefined) expect(lateJob, context).toMatchObject({ id: lateId, name: 'late', state: 'pending' });
        if (lateJob !== undefined) expect(lateJob, context).toMatchObject({ name: 'late', data: { n: -2 } });
        const extra = lateJob === undefined ? 0 : 1;
        expect(state.counts, context).toEqual({ ...expected.counts, pending: expected.counts.pending + extra });
        if (lateJob === undefined) outcomes.lateLost++;
        else outcomes.lateKept++;
        const next = await reopened.enqueue('after', { n: -3 });
        expect(next, context).toBeGreaterThan(reference.marker + 1);
        await reopened.close();
      }
      if (committed) outcomes.committed++;
      else outcomes.notCommitted++;
      await run.queue.close({ timeoutMs: 0 }).catch(() => undefined);
    }
    // The sweep reached both sides of the commit point, and crashes both kept and lost the late enqueue.
    expect(outcomes.committed).toBeGreaterThan(0);
    expect(outcomes.notCommitted).toBeGreaterThan(0);
    expect(outcomes.lateKept).toBeGreaterThan(0);
    expect(outcomes.lateLost).toBeGreaterThan(0);
  }, 120_000);
});

describe('an I/O fault during compaction', () => {
  /** The compaction's output is built as `seg-<base>-<generation ≥ 1>.log.tmp`. */
  const isOutput = (file: string): boolean => /-(?!000000)\d{6}\.log\.tmp$/.test(file);
  const faults: readonly { name: string; inject: (disk: SimFileSystem) => (() => void) | void }[] = [
    { name: 'the disk fills up while the new segment is written', inject: (disk) => disk.failNoSpaceAfter(2000) },
    {
      name: 'fdatasync of the new segment fails',
      inject: (disk) =>
        disk.onOperation((event) => {
          if (event.op === 'datasync' && isOutput(event.path)) throw injectedEio(event.path);
        }),
    },
    {
      name: 'the directory fsync after the rename fails',
      inject: (disk) => {
        let renamed = false;
        return disk.onOperation((event) => {
          if (event.op === 'rename' && isOutput(event.path)) renamed = true;
          else if (event.op === 'syncDirectory' && renamed) {
            renamed = false;
            throw injectedEio(event.path);
          }
        });
      },
    },
    { name: 'a read of the old segments fails', inject: (disk) => disk.failReads() },
  ];
  for (const fault of faults) {
    it(`rejects compact() and leaves the queue working and its state as it was when ${fault.name}`, async () => {
      const base = await buildBase();
      const run = await prepare(base.files);
      const all = [...base.ids, run.marker];
      const before = await stateOf(run.queue, all);
      const removeHook = fault.inject(run.disk);
      await expect(run.queue.compact()).rejects.toThrow();
      run.disk.clearFaults();
      removeHook?.();
      expect(run.queue.stats().compaction).toMatchObject({ running: false, runs: 0, failures: 1 });
      expect(run.queue.stats().compaction.lastError).toBeInstanceOf(Error);
      expect(run.disk.listFiles().filter(isOutput)).toEqual([]);
      expect(await stateOf(run.queue, all)).toEqual(before);
      const id = await run.queue.enqueue('after', { n: 1 }, { durability: 'sync' });
      expect(await run.queue.getJob(id)).toMatchObject({ state: 'pending' });
      const live = before.counts.pending + before.counts.delayed + before.counts.active + before.counts.completed + before.counts.failed + 1;
      expect((await run.queue.compact()).jobs).toBe(live);
      expect((await stateOf(run.queue, all)).jobs).toEqual(before.jobs);
      for (const crash of CRASHES) {
        const reopened = await open(run.disk.crash(crash));
        const after = await stateOf(reopened, [...all, id]);
        for (const held of run.held) expect(after.jobs.get(held)).toMatchObject({ state: 'pending', stalls: 1 });
        for (const other of all.filter((other) => !run.held.includes(other))) expect(after.jobs.get(other)).toEqual(before.jobs.get(other));
        expect(after.jobs.get(id)).toMatchObject({ name: 'after', state: 'pending' });
        await reopened.close();
      }
    });
  }
});
