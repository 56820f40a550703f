// Recovery after a crash: jobs active when the process died run again with a stall counted, fail
// with a StalledError past maxStalls, and jobs released by close() count neither. Crashes are
// real where it matters (a child process SIGKILLed while its job runs) and simulated where many
// are needed (SimFileSystem: a process crash keeps what was written, a power crash tears the
// unsynced tail at random per seed).
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ClosedError, ErrorCode, Queue, type Job } from '../../src/index.ts';
import { SimFileSystem } from '../support/sim-fs.ts';
import { deferred, test, waitUntil } from './queue-fixture.ts';

const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
const SIM_DIR = '/queue';

/** Runs crash-child in `dir`, waits until its processor holds a job, then SIGKILLs it. */
async function crashWhileActive(dir: string, maxStalls?: number): Promise<{ active: number; attempt: number; stalls: number }> {
  const args = maxStalls === undefined ? [dir] : [dir, String(maxStalls)];
  const child = fork(CHILD, args, { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit');
  const message = await Promise.race([
    once(child, 'message').then(([value]) => value as { active: number; attempt: number; stalls: number }),
    exited.then(([code]) => {
      throw new Error(`child exited with ${String(code)} before running a job: ${stderr}`);
    }),
  ]);
  child.kill('SIGKILL');
  await exited;
  return message;
}

/** A queue on a simulated disk, with its 'error' events (expected once the disk crashes) collected. */
async function openSim(fileSystem: SimFileSystem, options: Parameters<typeof Queue.open>[1] = {}): Promise<Queue> {
  const queue = await Queue.open(SIM_DIR, { ...options, fileSystem });
  queue.on('error', () => undefined);
  return queue;
}

describe('recovery', () => {
  test('puts a job that was active when the process was killed back to pending, counts the stall, and runs it again', async ({ dir }) => {
    const crashed = await crashWhileActive(dir, 3);
    expect(crashed).toMatchObject({ attempt: 1, stalls: 0 });
    const queue = await Queue.open(dir);
    expect(await queue.getJob(crashed.active)).toMatchObject({ state: 'pending', stalls: 1, attempt: 0 });
    const completed = once(queue, 'completed');
    queue.registerProcessor((job) => `ran with ${job.stalls} stall(s), attempt ${job.attempt}`);
    const [job, result] = (await completed) as [Job, unknown];
    expect(job.id).toBe(crashed.active);
    expect(result).toBe('ran with 1 stall(s), attempt 1');
    await queue.close();
  });

  test('fails a job with a StalledError once the process died under it more than maxStalls times', async ({ dir }) => {
    const first = await crashWhileActive(dir, 1);
    const second = await crashWhileActive(dir);
    expect(second).toMatchObject({ active: first.active, attempt: 1, stalls: 1 });
    const queue = await Queue.open(dir);
    const job = await queue.getJob(first.active);
    expect(job).toMatchObject({ state: 'failed', stalls: 2, attempt: 1, error: { name: 'StalledError', code: ErrorCode.stalled } });
    expect(queue.counts()).toMatchObject({ pending: 0, active: 0, failed: 1 });
    await queue.close();
  }, 60_000);

  it('counts stalls across repeated crashes and fails the job on the one past maxStalls', async () => {
    let disk = new SimFileSystem();
    let queue = await openSim(disk);
    const id = await queue.enqueue('crashy', 1, { maxStalls: 3 });
    for (let crash = 1; crash <= 4; crash++) {
      const started = deferred<Job>();
      queue.registerProcessor(async (job) => {
        started.resolve(job);
        await new Promise(() => undefined);
      });
      expect(await started.promise).toMatchObject({ id, attempt: 1, stalls: crash - 1 });
      disk = disk.crash({ mode: 'process' });
      queue = await openSim(disk);
      const job = await queue.getJob(id);
      if (crash <= 3) expect(job).toMatchObject({ state: 'pending', stalls: crash });
      else expect(job).toMatchObject({ state: 'failed', stalls: 4, error: { code: ErrorCode.stalled } });
    }
    await queue.close();
  });

  test('releases a job that outlives close({ timeoutMs }) without counting a stall or an attempt', async ({ dir }) => {
    const queue = await Queue.open(dir);
    let reason: unknown;
    const started = deferred<number>();
    queue.registerProcessor(async (job, signal) => {
      signal.addEventListener('abort', () => (reason = signal.reason));
      started.resolve(job.id);
      await new Promise(() => undefined); // ignores the abort
    });
    const id = await queue.enqueue('slow', 1, { attempts: 1 });
    await started.promise;
    await queue.close({ timeoutMs: 20 });
    expect(reason).toBeInstanceOf(ClosedError);
    const reopened = await Queue.open(dir);
    expect(await reopened.getJob(id)).toMatchObject({ state: 'pending', stalls: 0, attempt: 0 });
    const completed = once(reopened, 'completed');
    reopened.registerProcessor((job) => job.attempt);
    const [, attempt] = (await completed) as [Job, number];
    expect(attempt).toBe(1);
    await reopened.close();
  });

  test('close() waits for running jobs to finish and records their outcome', async ({ dir }) => {
    const queue = await Queue.open(dir);
    const gate = deferred();
    const started = deferred();
    queue.registerProcessor(async () => {
      started.resolve();
      await gate.promise;
      return 'finished';
    });
    const id = await queue.enqueue('job', 1);
    await started.promise;
    const closing = queue.close();
    let closed = false;
    void closing.then(() => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(closed).toBe(false);
    gate.resolve();
    await closing;
    const reopened = await Queue.open(dir);
    expect(await reopened.getJob(id)).toMatchObject({ state: 'completed', result: 'finished' });
    await reopened.close();
  });

  it('keeps ids strictly increasing across a crash that loses nothing acknowledged', async () => {
    let disk = new SimFileSystem();
    let queue = await openSim(disk);
    const before = [await queue.enqueue('a', 1), await queue.enqueue('a', 2)];
    disk = disk.crash({ mode: 'durable' });
    queue = await openSim(disk);
    expect(queue.counts().pending).toBe(2);
    const after = await queue.enqueue('a', 3);
    expect(after).toBeGreaterThan(before[1]!);
    await queue.close();
  });

  it('never hands out an id twice, even after a power cut lost acknowledged jobs', async () => {
    let disk = new SimFileSystem();
    let queue = await openSim(disk, { durability: 'none' });
    const lost = [await queue.enqueue('a', 1), await queue.enqueue('a', 2), ...(await queue.enqueueMany([{ name: 'a', data: 3 }]))];
    // The harshest power cut: nothing unsynced survives. The first enqueue waited for the id
    // lease's fsync, which took its own record along; the later two are gone with their ids.
    disk = disk.crash({ mode: 'durable' });
    queue = await openSim(disk, { durability: 'none' });
    expect(queue.counts().pending).toBe(1);
    expect(await queue.getJob(lost[2]!)).toBeUndefined();
    const next = await queue.enqueue('a', 4);
    expect(next).toBeGreaterThan(Math.max(...lost));
    await queue.close();
  });

  it('enqueueMany is atomic: after a power cut at any point either all of its jobs are there or none', async () => {
    const disk = new SimFileSystem();
    const queue = await openSim(disk, { durability: 'none' });
    const durable = await queue.enqueue('before', 0, { durability: 'sync' });
    const group = await queue.enqueueMany(Array.from({ length: 200 }, (_, n) => ({ name: 'group', data: 'x'.repeat(n * 10) })));
    const outcomes = new Set<number>();
    for (let seed = 1; seed <= 40; seed++) {
      const reopened = await openSim(disk.crash(seed));
      expect((await reopened.getJob(durable))?.name).toBe('before');
      let present = 0;
      for (const id of group) if ((await reopened.getJob(id)) !== undefined) present++;
      expect([0, group.length]).toContain(present);
      outcomes.add(present);
      await reopened.close();
    }
    // The seeds cover both outcomes, so the test would see a torn group if one could survive.
    expect(outcomes.size).toBe(2);
  });

  it('replays jobs whose completions were lost in a power cut as pending again (at-least-once)', async () => {
    const disk = new SimFileSystem();
    const queue = await openSim(disk, { durability: 'none' });
    const ids = await queue.enqueueMany(Array.from({ length: 10 }, (_, n) => ({ name: 'job', data: n, options: { durability: 'sync' } })));
    queue.registerProcessor(() => 'done');
    await waitUntil(() => queue.counts().completed === 10);
    // Completions are appended without an fsync: a durable-only crash keeps the jobs, loses the runs.
    const reopened = await openSim(disk.crash({ mode: 'durable' }));
    const states = await Promise.all(ids.map(async (id) => (await reopened.getJob(id))?.state));
    expect(states.every((state) => state === 'pending' || state === 'completed')).toBe(true);
    expect(states.filter((state) => state === 'pending').length).toBeGreaterThan(0);
    await reopened.close();
  });
});
