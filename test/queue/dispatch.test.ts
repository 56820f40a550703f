// Dispatch through the public API: order (priority, then FIFO), concurrency limits, several
// processors (Goblero's dispatch_test.go in spirit: each processor one job at a time, all jobs
// processed once), unregister mid-stream, pause/resume, delayed jobs, synchronous throws, events.
import { once } from 'node:events';
import { describe, expect } from 'vitest';
import { Queue, type Job } from '../../src/index.ts';
import { deferred, sleep, test, waitUntil } from './queue-fixture.ts';

describe('dispatch', () => {
  test('processes jobs enqueued before the processor in FIFO order', async ({ dir }) => {
    const queue = await Queue.open<{ n: number }>(dir);
    for (let n = 0; n < 20; n++) await queue.enqueue('n', n);
    const seen: number[] = [];
    queue.registerProcessor(async (job) => {
      seen.push(job.data);
    });
    await once(queue, 'drained');
    expect(seen).toEqual(Array.from({ length: 20 }, (_, n) => n));
    expect(queue.counts()).toEqual({ pending: 0, delayed: 0, active: 0, completed: 20, failed: 0 });
    await queue.close();
  });

  test('runs higher priorities first, FIFO among equal priorities', async ({ dir }) => {
    const queue = await Queue.open<{ p: string }>(dir);
    await queue.enqueue('p', 'low-1', { priority: -1 });
    await queue.enqueue('p', 'mid-1');
    await queue.enqueue('p', 'high-1', { priority: 10 });
    await queue.enqueue('p', 'mid-2');
    await queue.enqueue('p', 'high-2', { priority: 10 });
    await queue.enqueue('p', 'low-2', { priority: -1 });
    const seen: string[] = [];
    queue.registerProcessor((job) => {
      seen.push(job.data);
    });
    await once(queue, 'drained');
    expect(seen).toEqual(['high-1', 'high-2', 'mid-1', 'mid-2', 'low-1', 'low-2']);
    await queue.close();
  });

  test('keeps the same order after a reopen', async ({ dir }) => {
    const first = await Queue.open<{ p: number }>(dir);
    await first.enqueueMany([3, 1, 2, 1, 3].map((priority, at) => ({ name: 'p', data: at, options: { priority } })));
    await first.close();
    const second = await Queue.open<{ p: number }>(dir);
    const seen: number[] = [];
    second.registerProcessor((job) => {
      seen.push(job.data);
    });
    await once(second, 'drained');
    expect(seen).toEqual([0, 4, 2, 1, 3]);
    await second.close();
  });

  test('never runs more than concurrency jobs at once per processor', async ({ dir }) => {
    const queue = await Queue.open(dir);
    await queue.enqueueMany(Array.from({ length: 40 }, (_, n) => ({ name: 'job', data: n })));
    let running = 0;
    let peak = 0;
    queue.registerProcessor(
      async () => {
        running++;
        peak = Math.max(peak, running);
        await sleep(1);
        running--;
      },
      { concurrency: 4 },
    );
    await once(queue, 'drained');
    expect(peak).toBe(4);
    expect(queue.counts().completed).toBe(40);
    await queue.close();
  });

  test('shares jobs between processors, each running one at a time, each job once', async ({ dir }) => {
    const queue = await Queue.open(dir);
    const count = 30;
    const runs = new Map<number, number>();
    const running = [0, 0, 0];
    const peak = [0, 0, 0];
    const handled = [0, 0, 0];
    for (const at of [0, 1, 2]) {
      queue.registerProcessor(async (job) => {
        running[at]!++;
        peak[at] = Math.max(peak[at]!, running[at]!);
        runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
        handled[at]!++;
        await sleep(1);
        running[at]!--;
      });
    }
    const drainedEvent = once(queue, 'drained');
    await queue.enqueueMany(Array.from({ length: count }, (_, n) => ({ name: 'job', data: n })));
    await drainedEvent;
    expect(runs.size).toBe(count);
    expect([...runs.values()].every((times) => times === 1)).toBe(true);
    expect(handled.every((n) => n > 0)).toBe(true);
    expect(peak).toEqual([1, 1, 1]);
    await queue.close();
  });

  test('gives an unregistered processor no new jobs while its running job finishes', async ({ dir }) => {
    const queue = await Queue.open(dir);
    const gate = deferred();
    const firstSeen: number[] = [];
    const first = queue.registerProcessor(async (job) => {
      firstSeen.push(job.id);
      await gate.promise;
    });
    const ids = await queue.enqueueMany(Array.from({ length: 5 }, (_, n) => ({ name: 'job', data: n })));
    await waitUntil(() => firstSeen.length === 1);
    expect(queue.unregisterProcessor(first)).toBe(true);
    expect(queue.unregisterProcessor(first)).toBe(false);
    const secondSeen: number[] = [];
    queue.registerProcessor((job) => {
      secondSeen.push(job.id);
    });
    await waitUntil(() => secondSeen.length === 4);
    gate.resolve();
    await once(queue, 'drained');
    expect(firstSeen).toEqual([ids[0]]);
    expect(secondSeen).toEqual(ids.slice(1));
    expect((await queue.getJob(ids[0]!))?.state).toBe('completed');
    await queue.close();
  });

  test('pause stops handing out jobs without stopping running ones; resume continues', async ({ dir }) => {
    const queue = await Queue.open(dir);
    const gate = deferred();
    const seen: number[] = [];
    queue.registerProcessor(async (job) => {
      seen.push(job.id);
      if (seen.length === 1) await gate.promise;
    });
    const ids = await queue.enqueueMany(Array.from({ length: 3 }, (_, n) => ({ name: 'job', data: n })));
    await waitUntil(() => seen.length === 1);
    queue.pause();
    expect(queue.paused).toBe(true);
    gate.resolve();
    await waitUntil(async () => (await queue.getJob(ids[0]!))?.state === 'completed');
    await sleep(20);
    expect(seen).toEqual([ids[0]]);
    expect(queue.counts()).toMatchObject({ pending: 2, active: 0, completed: 1 });
    queue.resume();
    await once(queue, 'drained');
    expect(seen).toEqual(ids);
    await queue.close();
  });

  test('runs a delayed job once it is due, and not before', async ({ dir }) => {
    const queue = await Queue.open(dir);
    const enqueuedAt = Date.now();
    const delayedId = await queue.enqueue('later', 1, { delayMs: 80 });
    const atId = await queue.enqueue('at', 2, { runAt: new Date(enqueuedAt + 40) });
    const nowId = await queue.enqueue('now', 3);
    expect(queue.counts()).toMatchObject({ pending: 1, delayed: 2 });
    expect((await queue.getJob(delayedId))?.state).toBe('delayed');
    const seen: { id: number; at: number }[] = [];
    queue.registerProcessor((job) => {
      seen.push({ id: job.id, at: Date.now() });
    });
    await waitUntil(() => seen.length === 3);
    expect(seen.map((entry) => entry.id)).toEqual([nowId, atId, delayedId]);
    // Never early (a lower bound, not a timing assertion on speed).
    expect(seen[1]!.at).toBeGreaterThanOrEqual(enqueuedAt + 40);
    expect(seen[2]!.at).toBeGreaterThanOrEqual(enqueuedAt + 80);
    await queue.close();
  });

  test('keeps a delayed job delayed across a reopen and runs it when due', async ({ dir }) => {
    const first = await Queue.open(dir);
    const id = await first.enqueue('later', 1, { delayMs: 60 });
    await first.close();
    const second = await Queue.open(dir);
    expect((await second.getJob(id))?.state).toBe('delayed');
    const done = once(second, 'completed');
    second.registerProcessor(() => 'ok');
    const [job] = (await done) as [Job];
    expect(job.id).toBe(id);
    await second.close();
  });

  test('fails an attempt whose processor throws synchronously, as if it rejected', async ({ dir }) => {
    const queue = await Queue.open(dir);
    const failed = once(queue, 'failed');
    queue.registerProcessor(() => {
      throw new Error('sync boom');
    });
    const id = await queue.enqueue('job', 1);
    const [job, error] = (await failed) as [Job, Error];
    expect(error.message).toBe('sync boom');
    expect(job).toMatchObject({ id, state: 'failed', attempt: 1, error: { name: 'Error', message: 'sync boom' } });
    expect((await queue.getJob(id))?.error?.message).toBe('sync boom');
    await queue.close();
  });

  test('stores the return value as the result, and a non-serialisable one as no result', async ({ dir }) => {
    const queue = await Queue.open(dir);
    queue.registerProcessor((job) => (job.data === 1 ? { ok: [1, 2] } : { bad: 1n }));
    const drainedEvent = once(queue, 'drained');
    const [a, b] = await queue.enqueueMany([
      { name: 'job', data: 1 },
      { name: 'job', data: 2 },
    ]);
    await drainedEvent;
    await queue.close();
    const reopened = await Queue.open(dir);
    expect(await reopened.getJob(a!)).toMatchObject({ state: 'completed', attempt: 1, result: { ok: [1, 2] } });
    const second = await reopened.getJob(b!);
    expect(second?.state).toBe('completed');
    expect(second?.result).toBeUndefined();
    await reopened.close();
  });

  test('emits active, completed and drained in order with typed jobs', async ({ dir }) => {
    const queue = await Queue.open<{ add: { a: number; b: number } }>(dir);
    const events: string[] = [];
    queue.on('active', (job) => events.push(`active ${job.data.a}`));
    queue.on('completed', (job, result) => events.push(`completed ${job.state} ${String(result)}`));
    queue.on('drained', () => events.push('drained'));
    queue.registerProcessor((job) => job.data.a + job.data.b);
    const drainedEvent = once(queue, 'drained');
    await queue.enqueue('add', { a: 1, b: 2 });
    await drainedEvent;
    expect(events).toEqual(['active 1', 'completed completed 3', 'drained']);
    await queue.close();
  });
});
