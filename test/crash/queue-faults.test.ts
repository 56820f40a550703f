// Run-time I/O faults at queue level (issue 5, part 4), on the simulated disk.
//
// Method: one scripted workload (enqueue, enqueueMany and a processor completing jobs, in 4 KiB
// segments so the log rolls, one compaction halfway, then close) runs once without faults to count its disk operations,
// then once per fault position: EIO on the k-th fdatasync, ENOSPC after N bytes, a short k-th
// write, EIO on the j-th write-side operation of any kind (writev, datasync, directory fsync,
// open, rename, unlink, truncate). Every case must keep the contract of docs/durability.md:
// - the fault is noticed: the enqueue it hits rejects, the queue emits 'error' exactly once;
// - from then on every enqueue and enqueueMany rejects with PoisonedError (ERR_BLERO_POISONED,
//   its cause the original error), nothing is dispatched, and no write or fdatasync reaches the
//   disk (a failed fdatasync is never retried, not even by close());
// - no enqueue that resolved is lost: after the fault is cleared (the disk crashed to a fresh
//   instance, by a process crash and by the harshest power cut) the reopened queue holds every
//   acknowledged job with its data, every job it holds carries data an enqueue call made, and
//   counts() holds no other job.
// Replay faults: EIO on every read, and on the k-th read of the replay for every k, makes
// Queue.open reject with the EIO and leaves the disk as it was; the next open recovers all.
// Sweeps collect every failing position into one report.
import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ErrorCode, PoisonedError, Queue } from '../../src/index.ts';
import type { Durability, Job } from '../../src/index.ts';
import { injectedEio, SimFileSystem } from '../support/sim-fs.ts';
import type { SimOperation, SimOperationEvent } from '../support/sim-fs.ts';

const DIR = '/queue';
const WRITE_SIDE: ReadonlySet<SimOperation> = new Set(['writev', 'datasync', 'syncDirectory', 'open', 'rename', 'unlink', 'truncate']);
const figures = { cases: 0, acknowledgedChecked: 0, reopens: 0 };

function dataFor(tag: number): unknown {
  return tag % 2 === 0 ? { tag, text: 'é'.repeat(40 + (tag % 90)) } : Buffer.from(`${tag}`.padEnd(120 + (tag % 70), '#'));
}

function tagOf(data: unknown): number {
  return Buffer.isBuffer(data) ? Number.parseInt(data.toString('latin1'), 10) : (data as { tag: number }).tag;
}

function sameData(tag: number, data: unknown): boolean {
  const expected = dataFor(tag);
  return Buffer.isBuffer(expected) ? Buffer.isBuffer(data) && data.equals(expected) : isDeepStrictEqual(data, expected);
}

interface Call {
  readonly tags: readonly number[];
  /** Order of the call among all calls; rejections must come after the first one. */
  readonly index: number;
  result: 'pending' | 'resolved' | 'rejected';
  ids: readonly number[];
  error: unknown;
}

interface Run {
  readonly calls: Call[];
  readonly errors: Error[];
  openError: unknown;
  closeError: unknown;
  compactError: unknown;
  /** Handler runs that began after the first 'error' event. */
  runsAfterError: number;
  /** writev/datasync operations after the first 'error' event. */
  writesAfterError: SimOperationEvent[];
  /** fdatasyncs of the file whose fdatasync failed, after the failure. */
  datasyncsAfterFailedOne: number;
}

/**
 * The workload: 12 rounds of two concurrent enqueues and one enqueueMany of three, with a
 * processor completing jobs as they come; then close. Every call is awaited per round, so the
 * order of calls is fixed.
 */
async function runWorkload(disk: SimFileSystem, durability: Durability, failedDatasync?: number): Promise<Run> {
  const run: Run = { calls: [], errors: [], openError: undefined, closeError: undefined, compactError: undefined, runsAfterError: 0, writesAfterError: [], datasyncsAfterFailedOne: 0 };
  // With `failedDatasync` = k (the disk fails its k-th fdatasync), a later fdatasync of the same
  // file would be a retry.
  let datasyncs = 0;
  let failedPath: string | undefined;
  disk.onOperation((event) => {
    if (run.errors.length > 0 && (event.op === 'writev' || event.op === 'datasync')) run.writesAfterError.push(event);
    if (event.op !== 'datasync') return;
    if (event.path === failedPath) run.datasyncsAfterFailedOne++;
    if (++datasyncs === failedDatasync) failedPath = event.path;
  });
  let queue: Queue;
  try {
    queue = await Queue.open(DIR, { fileSystem: disk, durability, segmentSize: 4096 });
  } catch (error) {
    run.openError = error;
    return run;
  }
  queue.on('error', (error) => run.errors.push(error));
  queue.registerProcessor(
    (job) => {
      if (run.errors.length > 0) run.runsAfterError++;
      return job.id;
    },
    { concurrency: 2 },
  );
  let tag = 0;
  const track = (tags: number[], promise: Promise<number[]>): Promise<void> => {
    const call: Call = { tags, index: run.calls.length, result: 'pending', ids: [], error: undefined };
    run.calls.push(call);
    return promise.then(
      (ids) => {
        call.result = 'resolved';
        call.ids = ids;
      },
      (error: unknown) => {
        call.result = 'rejected';
        call.error = error;
      },
    );
  };
  for (let round = 0; round < 12; round++) {
    const single = (t: number): Promise<void> => track([t], queue.enqueue('job', dataFor(t)).then((id) => [id]));
    const a = ++tag;
    const b = ++tag;
    const many = [++tag, ++tag, ++tag];
    await Promise.all([
      single(a),
      single(b),
      track(many, queue.enqueueMany(many.map((t) => ({ name: 'job', data: dataFor(t) })))),
    ]);
    await new Promise((resolve) => setImmediate(resolve));
    if (round === 6) await queue.compact().catch((error: unknown) => (run.compactError = error));
  }
  await queue.close().catch((error: unknown) => (run.closeError = error));
  return run;
}

/** The contract while the queue runs: the fault is noticed once, then everything refuses. */
function assertFaultContract(run: Run, context: string): void {
  expect(run.errors.length, `${context}: 'error' events`).toBeLessThanOrEqual(1);
  const firstRejected = run.calls.find((call) => call.result === 'rejected');
  if (firstRejected !== undefined) {
    expect(run.errors, `${context}: a rejected enqueue without an 'error' event`).toHaveLength(1);
    for (const call of run.calls.filter((c) => c.index > firstRejected.index)) {
      expect(call.result, `${context}: call ${call.index} after the poisoning`).toBe('rejected');
    }
    for (const call of run.calls.filter((c) => c.result === 'rejected')) {
      expect(call.error, `${context}: call ${call.index} rejected with`).toBeInstanceOf(PoisonedError);
      expect((call.error as PoisonedError).code).toBe(ErrorCode.poisoned);
      expect((call.error as PoisonedError).cause, `${context}: the PoisonedError names its cause`).toBeInstanceOf(Error);
    }
  }
  if (run.errors.length > 0) {
    expect(run.runsAfterError, `${context}: handlers started after the 'error' event`).toBe(0);
    expect(run.writesAfterError.map((e) => `${e.op} ${e.path}`), `${context}: writes after the 'error' event`).toEqual([]);
  }
  expect(run.datasyncsAfterFailedOne, `${context}: a failed fdatasync was retried`).toBe(0);
}

/** Every acknowledged job survives once the fault is gone; nothing else appears. */
async function assertRecovers(disk: SimFileSystem, run: Run, durability: Durability, context: string): Promise<void> {
  const crashes = durability === 'sync' ? (['process', 'durable'] as const) : (['process'] as const);
  const acked = run.calls.filter((call) => call.result === 'resolved');
  const maxId = run.calls.length * 3 + 2;
  for (const mode of crashes) {
    const queue = await Queue.open(DIR, { fileSystem: disk.crash({ mode }) });
    figures.reopens++;
    try {
      const jobs = new Map<number, Job>();
      for (let id = 1; id <= maxId; id++) {
        const job = await queue.getJob(id);
        if (job !== undefined) jobs.set(id, job);
      }
      const counts = queue.counts();
      expect(counts.pending + counts.delayed + counts.active + counts.completed + counts.failed, `${context}, ${mode} crash: jobs beyond the ids handed out`).toBe(jobs.size);
      for (const call of acked) {
        call.ids.forEach((id, at) => {
          const job = jobs.get(id);
          expect(job, `${context}, ${mode} crash: acknowledged job ${id} lost`).toBeDefined();
          expect(tagOf(job!.data), `${context}, ${mode} crash: job ${id}`).toBe(call.tags[at]);
          figures.acknowledgedChecked++;
        });
      }
      for (const [id, job] of jobs) expect(sameData(tagOf(job.data), job.data), `${context}, ${mode} crash: job ${id} holds data no call made`).toBe(true);
    } finally {
      await queue.close();
    }
  }
}

async function sweep(cases: number, body: (index: number) => Promise<void>): Promise<void> {
  const failures: string[] = [];
  for (let index = 0; index < cases; index++) {
    figures.cases++;
    try {
      await body(index);
    } catch (error) {
      failures.push(error instanceof Error ? error.message.split('\n')[0]! : String(error));
    }
  }
  expect(failures, `${failures.length} of ${cases} fault positions broke the contract`).toEqual([]);
}

/** The fault-free run, to size the sweeps. */
async function cleanRun(durability: Durability): Promise<{ disk: SimFileSystem; run: Run }> {
  const disk = new SimFileSystem();
  const run = await runWorkload(disk, durability);
  expect(run.calls.every((call) => call.result === 'resolved')).toBe(true);
  expect(run.errors).toEqual([]);
  return { disk, run };
}

describe('Queue under run-time I/O faults', () => {
  it('EIO on the k-th fdatasync: error event, PoisonedError for every later enqueue, no retry, nothing lost', async () => {
    const { disk: clean } = await cleanRun('sync');
    const syncs = clean.counters.datasyncs;
    expect(syncs).toBeGreaterThan(10);
    await sweep(syncs, async (index) => {
      const k = index + 1;
      const context = `EIO on fdatasync #${k} of ${syncs}`;
      const disk = new SimFileSystem();
      disk.failDatasync(k);
      const run = await runWorkload(disk, 'sync', k);
      // Seen by an 'error' event (an fdatasync of appended records), or by compact() or close()
      // rejecting (their own fdatasyncs).
      if (run.openError === undefined) {
        expect(run.errors.length > 0 || run.closeError !== undefined || run.compactError !== undefined, `${context}: went unnoticed`).toBe(true);
      }
      assertFaultContract(run, context);
      await assertRecovers(disk, run, 'sync', context);
    });
  });

  it('ENOSPC after N bytes: the enqueue that hits it and every later one reject; reopen cuts the torn tail', async () => {
    for (const durability of ['sync', 'none'] as const) {
      const { disk: clean } = await cleanRun(durability);
      const bytes = clean.counters.bytesWritten;
      const step = 97;
      await sweep(Math.ceil(bytes / step), async (index) => {
        const n = index * step;
        const context = `${durability}: ENOSPC after ${n} of ${bytes} bytes`;
        const disk = new SimFileSystem();
        disk.failNoSpaceAfter(n);
        const run = await runWorkload(disk, durability);
        // Seen by an 'error' event, or, when the full disk refuses only close()'s own CLOSE
        // marker, by close() rejecting (nothing is running by then to emit to).
        if (run.openError === undefined && !(run.errors.length === 0 && run.closeError !== undefined && run.calls.every((call) => call.result === 'resolved'))) {
          expect(run.errors, `${context}: 'error' events`).toHaveLength(1);
        }
        assertFaultContract(run, context);
        await assertRecovers(disk, run, durability, context);
      });
    }
  });

  it('a short write of the m-th writev poisons the queue; reopen keeps every acknowledged job', async () => {
    const { disk: clean } = await cleanRun('sync');
    const writevs = clean.counters.writevs;
    await sweep(writevs, async (index) => {
      const m = index + 1;
      const context = `writev #${m} of ${writevs} writes 5 bytes`;
      const disk = new SimFileSystem();
      let seen = 0;
      disk.onOperation((event) => {
        if (event.op === 'writev' && ++seen === m) disk.shortWrite(5);
      });
      const run = await runWorkload(disk, 'sync');
      assertFaultContract(run, context);
      await assertRecovers(disk, run, 'sync', context);
    });
  });

  it('EIO on the j-th write-side disk operation of any kind keeps the contract', async () => {
    const { disk: clean } = await cleanRun('sync');
    const positions: number[] = [];
    const probe = new SimFileSystem();
    probe.onOperation((event) => {
      if (WRITE_SIDE.has(event.op)) positions.push(event.index);
    });
    await runWorkload(probe, 'sync');
    expect(probe.counters.operations).toBe(clean.counters.operations);
    let openFailures = 0;
    await sweep(positions.length, async (at) => {
      const j = positions[at]!;
      const disk = new SimFileSystem();
      const injected = injectedEio(`operation #${j}`);
      const failedOperation = disk.failOperation(j, injected);
      const run = await runWorkload(disk, 'sync');
      const failed = failedOperation();
      const context = `EIO on operation #${j} (${failed?.op} ${failed?.path})`;
      if (run.openError !== undefined) {
        expect(run.openError, `${context}: open rejected with`).toBe(injected);
        openFailures++;
      }
      assertFaultContract(run, context);
      await assertRecovers(disk, run, 'sync', context);
    });
    expect(openFailures).toBeGreaterThan(0);
  });
});

describe('A poisoned queue, step by step', () => {
  it('ENOSPC: the enqueue rejects with PoisonedError caused by ENOSPC, a backlog is not dispatched, reopen runs it', async () => {
    const disk = new SimFileSystem();
    const queue = await Queue.open(DIR, { fileSystem: disk });
    const errors: Error[] = [];
    queue.on('error', (error) => errors.push(error));
    queue.pause();
    const backlog = await queue.enqueueMany([1, 2, 3, 4, 5].map((tag) => ({ name: 'job', data: dataFor(tag) })));
    disk.failNoSpaceAfter(0);
    const failed = await queue.enqueue('job', dataFor(6)).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(PoisonedError);
    expect((failed as PoisonedError).cause).toMatchObject({ code: 'ENOSPC' });
    await expect(queue.enqueue('job', dataFor(7))).rejects.toMatchObject({ code: ErrorCode.poisoned });
    await expect(queue.enqueueMany([{ name: 'job', data: dataFor(8) }])).rejects.toMatchObject({ code: ErrorCode.poisoned });
    const counters = disk.counters;
    let ran = 0;
    queue.registerProcessor(() => {
      ran++;
    });
    queue.resume();
    for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(ran).toBe(0);
    expect(errors).toHaveLength(1);
    expect(queue.counts()).toMatchObject({ pending: 5, active: 0 });
    await queue.close();
    expect(disk.counters.writevs).toBe(counters.writevs);
    expect(disk.counters.datasyncs).toBe(counters.datasyncs);
    // A fresh disk instance without the fault: the backlog is there and runs.
    const reopened = await Queue.open(DIR, { fileSystem: disk.crash({ mode: 'durable' }) });
    const done: number[] = [];
    await new Promise<void>((resolve) => {
      reopened.on('drained', resolve);
      reopened.registerProcessor((job) => void done.push(job.id));
    });
    expect(done.sort((a, b) => a - b)).toEqual(backlog);
    expect(reopened.counts()).toMatchObject({ pending: 0, completed: 5 });
    await reopened.close();
  });

  it('EIO on fdatasync: the enqueue in flight rejects (never resolves as if durable), and close() does not sync again', async () => {
    const disk = new SimFileSystem();
    const queue = await Queue.open(DIR, { fileSystem: disk });
    const errors: Error[] = [];
    queue.on('error', (error) => errors.push(error));
    const kept = await queue.enqueue('job', dataFor(1));
    disk.failDatasync(1);
    const inFlight = [queue.enqueue('job', dataFor(2)), queue.enqueue('job', dataFor(3))];
    for (const call of inFlight) await expect(call).rejects.toMatchObject({ code: ErrorCode.poisoned, cause: { code: 'EIO', syscall: 'fdatasync' } });
    const syncs = disk.counters.datasyncs;
    await expect(queue.enqueue('job', dataFor(4))).rejects.toBeInstanceOf(PoisonedError);
    await queue.close();
    expect(disk.counters.datasyncs, 'the failed fdatasync is not retried').toBe(syncs);
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ code: 'EIO' });
    // Linux may have dropped the pages of the failed sync: after a power cut only job 1 is certain.
    const reopened = await Queue.open(DIR, { fileSystem: disk.crash({ mode: 'durable' }) });
    expect(reopened.counts().pending).toBe(1);
    expect(sameData(1, (await reopened.getJob(kept))?.data)).toBe(true);
    await reopened.close();
  });

  it('EIO on reading a job back for dispatch: error event, the queue is not poisoned and the job keeps its data', async () => {
    const disk = new SimFileSystem();
    // No payload cache: the dispatcher must read every job back from the log.
    const queue = await Queue.open(DIR, { fileSystem: disk, payloadCacheBytes: 0 });
    const errors: Error[] = [];
    queue.on('error', (error) => errors.push(error));
    const id = await queue.enqueue('job', dataFor(1), { attempts: 3 });
    disk.failReads();
    const ran: number[] = [];
    queue.registerProcessor((job) => void ran.push(job.id));
    for (let turn = 0; turn < 20 && errors.length === 0; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(errors.map((error) => (error as NodeJS.ErrnoException).code)).toEqual(['EIO']);
    expect(ran).toEqual([]);
    disk.clearFaults();
    expect(sameData(1, (await queue.getJob(id))?.data)).toBe(true);
    const next = await queue.enqueue('job', dataFor(2));
    for (let turn = 0; turn < 20 && !ran.includes(next); turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(ran).toContain(next);
    await queue.close();
  });
});

describe('Queue.open under read errors during replay', () => {
  /** A disk holding a closed queue: pending, completed and failed jobs in several segments. */
  async function populated(): Promise<{ disk: SimFileSystem; ids: number[] }> {
    const disk = new SimFileSystem();
    const queue = await Queue.open(DIR, { fileSystem: disk, segmentSize: 4096 });
    const ids: number[] = [];
    for (let tag = 1; tag <= 30; tag++) ids.push(await queue.enqueue('job', dataFor(tag)));
    let left = 10;
    await new Promise<void>((resolve) => {
      queue.registerProcessor((job) => {
        if (--left === 0) resolve();
        if (left < 0) return new Promise(() => undefined);
        if (job.id % 3 === 0) throw new Error('planned failure');
        return job.id;
      });
    });
    await queue.close({ timeoutMs: 0 });
    return { disk, ids };
  }

  async function expectAllThere(disk: SimFileSystem, ids: readonly number[], context: string): Promise<void> {
    const queue = await Queue.open(DIR, { fileSystem: disk });
    figures.reopens++;
    try {
      expect(queue.counts(), context).toEqual({ pending: 20, delayed: 0, active: 0, completed: 7, failed: 3 });
      for (const [at, id] of ids.entries()) expect(sameData(at + 1, (await queue.getJob(id))?.data), `${context}: job ${id}`).toBe(true);
    } finally {
      await queue.close();
    }
  }

  it('rejects with the EIO when every read fails, writes nothing, and opens once the fault is gone', async () => {
    const { disk, ids } = await populated();
    const before = disk.snapshot();
    disk.failReads();
    const counters = disk.counters;
    await expect(Queue.open(DIR, { fileSystem: disk })).rejects.toMatchObject({ code: 'EIO', syscall: 'read' });
    expect(disk.counters.writevs).toBe(counters.writevs);
    expect(disk.snapshot()).toEqual(before);
    disk.clearFaults();
    await expectAllThere(disk, ids, 'after the fault is cleared');
    await expectAllThere(disk.crash({ mode: 'durable' }), ids, 'after a power cut');
  });

  it('rejects when the k-th read of the replay fails, for every k, and the next open recovers everything', async () => {
    const { disk: base, ids } = await populated();
    const probe = base.crash({ mode: 'process' });
    const readsBefore = probe.counters.reads;
    await (await Queue.open(DIR, { fileSystem: probe })).close();
    const reads = probe.counters.reads - readsBefore;
    expect(reads).toBeGreaterThan(3);
    let disk = base;
    await sweep(reads, async (index) => {
      disk = disk.crash({ mode: 'process' });
      const context = `EIO on read #${index + 1} of ${reads}`;
      let seen = 0;
      const unsubscribe = disk.onOperation((event) => {
        if (event.op === 'read' && ++seen === index + 1) throw injectedEio(`read #${seen}`);
      });
      const opened = await Queue.open(DIR, { fileSystem: disk }).then(
        async (queue) => {
          await queue.close();
          return 'opened';
        },
        (error: unknown) => error,
      );
      unsubscribe();
      // Reads after the replay (settling stalls, none here) could fail without failing the open.
      if (opened !== 'opened') expect(opened, context).toMatchObject({ code: 'EIO' });
      await expectAllThere(disk, ids, context);
    });
  });

  // Found by the model test (BLERO_MODEL_SEED=random, 3000 runs: 8 unhandled rejections from
  // settleStalledJobs in src/queue/queue.ts; the default seed shrinks it to: 'sync', settle
  // 'immediate', concurrency 3, three enqueues, a process crash, a reopen whose disk dies after
  // 17 operations — replayPath "AEEj:K", path "261:6:5:6:5:5:5:5:5:6:6:6:6:6:6:6:6:6"). Open settles the jobs the dead process was running:
  // for each it reads the job back, then appends a stalled record, and awaits the appends only
  // after the loop. When the disk fails in between, an append is refused at once by the
  // poisoned log, then the next read throws out of the loop, and the refused append's rejected
  // promise has no handler: Node's default --unhandled-rejections=throw kills the process
  // instead of letting Queue.open reject. Needs calls that settle a turn later (the disk of
  // SimFileSystem's 'immediate' mode), so that a read resolves after a write has failed.
  it('a crash of the disk at any operation while open settles stalled jobs rejects the open, with no unhandled rejection', async () => {
    const disk = new SimFileSystem({ settle: 'immediate' });
    const queue = await Queue.open(DIR, { fileSystem: disk, payloadCacheBytes: 0 });
    const started: number[] = [];
    queue.registerProcessor((job) => {
      started.push(job.id);
      return new Promise(() => undefined);
    }, { concurrency: 3 });
    await queue.enqueueMany([1, 2, 3].map((tag) => ({ name: 'job', data: dataFor(tag) })));
    for (let turn = 0; turn < 50 && started.length < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(started).toHaveLength(3);
    // The process dies with three jobs running; each restart's disk dies after k operations.
    const probe = disk.crash({ mode: 'process' });
    await (await Queue.open(DIR, { fileSystem: probe })).close();
    const operations = probe.counters.operations;
    const unhandled: string[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(String(reason).split('\n')[0]!);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (let k = 0; k < operations; k++) {
        const restarted = disk.crash({ mode: 'process' });
        restarted.crashAfterOperations(k);
        const before = unhandled.length;
        const opened = await Queue.open(DIR, { fileSystem: restarted }).catch(() => undefined);
        opened?.on('error', () => undefined);
        for (let turn = 0; turn < 10; turn++) await new Promise((resolve) => setImmediate(resolve));
        if (unhandled.length > before) unhandled.push(`(disk died after ${k} of ${operations} operations of the open)`);
        figures.cases++;
      }
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    expect(unhandled).toEqual([]);
    const reopened = await Queue.open(DIR, { fileSystem: disk.crash({ mode: 'process' }) });
    for (const id of started) expect(await reopened.getJob(id)).toMatchObject({ state: 'pending', stalls: 1 });
    await reopened.close();
  });

  it('reports what it checked', () => {
    console.log(`queue faults: ${JSON.stringify(figures)}`);
    expect(figures.cases).toBeGreaterThan(0);
  });
});
