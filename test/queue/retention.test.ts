// Retention of finished jobs: count limits per kind (oldest removed first), age limits, and the
// same retained set after a reopen (removal is not logged, replay applies the same limits).
import { once } from 'node:events';
import { describe, expect } from 'vitest';
import { Queue } from '../../src/index.ts';
import { test, waitUntil } from './queue-fixture.ts';

describe('retention', () => {
  test('keeps the newest completed and failed jobs up to their counts, and the same ones after a reopen', async ({ dir }) => {
    const options = { removeOnComplete: 3, removeOnFail: { count: 2 } };
    const queue = await Queue.open(dir, options);
    queue.registerProcessor((job) => {
      if ((job.data as number) % 2 === 1) throw new Error('odd');
    });
    const drainedEvent = once(queue, 'drained');
    const ids = await queue.enqueueMany(Array.from({ length: 10 }, (_, n) => ({ name: 'job', data: n })));
    await drainedEvent;
    const kept = async (q: Queue) => (await Promise.all(ids.map((id) => q.getJob(id)))).map((job) => job?.state ?? '-');
    const expected = ['-', '-', '-', '-', 'completed', '-', 'completed', 'failed', 'completed', 'failed'];
    expect(await kept(queue)).toEqual(expected);
    expect(queue.counts()).toMatchObject({ completed: 3, failed: 2 });
    await queue.close();
    const reopened = await Queue.open(dir, options);
    expect(await kept(reopened)).toEqual(expected);
    await reopened.close();
  });

  test('defaults to keeping 1,000 completed jobs', async ({ dir }) => {
    const queue = await Queue.open(dir);
    queue.registerProcessor(() => undefined, { concurrency: 16 });
    const drainedEvent = once(queue, 'drained');
    const ids = await queue.enqueueMany(Array.from({ length: 1005 }, (_, n) => ({ name: 'job', data: n })));
    await drainedEvent;
    expect(queue.counts().completed).toBe(1000);
    expect(await queue.getJob(ids[4]!)).toBeUndefined();
    expect((await queue.getJob(ids[5]!))?.state).toBe('completed');
    await queue.close();
  });

  test('removes finished jobs once they are older than ageMs, also at open', async ({ dir }) => {
    const queue = await Queue.open(dir, { removeOnComplete: { ageMs: 30 } });
    queue.registerProcessor(() => 'ok');
    const completedEvent = once(queue, 'completed');
    const id = await queue.enqueue('job', 1);
    await completedEvent;
    expect((await queue.getJob(id))?.state).toBe('completed');
    await waitUntil(async () => (await queue.getJob(id)) === undefined);
    expect(queue.counts().completed).toBe(0);
    await queue.close();
    const reopened = await Queue.open(dir, { removeOnComplete: { ageMs: 30 } });
    expect(await reopened.getJob(id)).toBeUndefined();
    await reopened.close();
  });

  test('removes a completed job at once with a count of 0, and frees its key', async ({ dir }) => {
    const queue = await Queue.open(dir, { removeOnComplete: 0 });
    queue.registerProcessor(() => 'ok');
    const completedEvent = once(queue, 'completed');
    const id = await queue.enqueue('job', 1, { key: 'k' });
    await completedEvent;
    expect(await queue.getJob(id)).toBeUndefined();
    expect(await queue.enqueue('job', 2, { key: 'k' })).toBeGreaterThan(id);
    await queue.close();
  });

  test('refuses invalid retention options', async ({ dir }) => {
    await expect(Queue.open(dir, { removeOnComplete: -1 })).rejects.toThrow(RangeError);
    await expect(Queue.open(dir, { removeOnFail: { ageMs: Number.NaN } })).rejects.toThrow(RangeError);
    await expect(Queue.open(dir, { removeOnFail: 'all' as unknown as number })).rejects.toThrow(TypeError);
  });
});
