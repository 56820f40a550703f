// Enqueueing through the public API: ids, validation before anything is written, data kinds,
// idempotency keys, enqueueMany, per-job durability, and what happens after close.
import { readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { describe, expect } from 'vitest';
import { ClosedError, Queue, RecordTooLargeError } from '../../src/index.ts';
import { test } from './queue-fixture.ts';

async function logBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) if (name.endsWith('.log')) total += (await stat(path.join(dir, name))).size;
  return total;
}

describe('enqueue', () => {
  test('assigns positive, strictly increasing ids, also across a reopen', async ({ dir }) => {
    const first = await Queue.open(dir);
    const ids = [await first.enqueue('a', 1), await first.enqueue('a', 2), ...(await first.enqueueMany([{ name: 'b', data: 3 }]))];
    await first.close();
    const second = await Queue.open(dir);
    ids.push(await second.enqueue('a', 4));
    await second.close();
    expect(ids[0]).toBeGreaterThan(0);
    for (let at = 1; at < ids.length; at++) expect(ids[at]).toBeGreaterThan(ids[at - 1]!);
  });

  test('stores JSON data and bytes; getJob returns bytes as a Buffer', async ({ dir }) => {
    const queue = await Queue.open<{ json: { n: number[] }; raw: Uint8Array }>(dir);
    const jsonId = await queue.enqueue('json', { n: [1, 2] });
    const rawId = await queue.enqueue('raw', new Uint8Array([9, 8, 7]));
    await queue.close();
    const reopened = await Queue.open(dir);
    expect(await reopened.getJob(jsonId)).toMatchObject({ id: jsonId, name: 'json', data: { n: [1, 2] }, state: 'pending', attempt: 0 });
    const raw = await reopened.getJob(rawId);
    expect(Buffer.isBuffer(raw?.data)).toBe(true);
    expect([...(raw?.data as Buffer)]).toEqual([9, 8, 7]);
    expect(await reopened.getJob(999)).toBeUndefined();
    await reopened.close();
  });

  test('refuses invalid names, data and options with TypeError/RangeError and writes nothing', async ({ dir }) => {
    const queue = await Queue.open(dir);
    await queue.enqueue('ok', 1, { durability: 'sync' });
    const before = await logBytes(dir);
    const cycle: Record<string, unknown> = {};
    cycle['self'] = cycle;
    await expect(queue.enqueue('', 1)).rejects.toThrow(RangeError);
    await expect(queue.enqueue('x'.repeat(256), 1)).rejects.toThrow(RangeError);
    await expect(queue.enqueue('é'.repeat(128), 1)).rejects.toThrow(RangeError);
    await expect(queue.enqueue(5 as unknown as string, 1)).rejects.toThrow(TypeError);
    await expect(queue.enqueue('bad', { n: 10n })).rejects.toThrow(TypeError);
    await expect(queue.enqueue('bad', cycle)).rejects.toThrow(TypeError);
    await expect(queue.enqueue('bad', { f: () => 1 })).rejects.toThrow(TypeError);
    await expect(queue.enqueue('bad', 1, { attempts: 0 })).rejects.toThrow(RangeError);
    await expect(queue.enqueue('bad', 1, { priority: 1.5 })).rejects.toThrow(RangeError);
    await expect(queue.enqueue('bad', 1, { delayMs: Number.NaN })).rejects.toThrow(RangeError);
    await expect(queue.enqueue('bad', 1, { delayMs: 1, runAt: 5 })).rejects.toThrow(TypeError);
    await expect(queue.enqueue('bad', 1, { backoff: { type: 'linear' as 'fixed', delayMs: 1 } })).rejects.toThrow(TypeError);
    await expect(queue.enqueue('bad', 1, { timeoutMs: 0 })).rejects.toThrow(RangeError);
    await expect(queue.enqueue('bad', 1, { key: '' })).rejects.toThrow(RangeError);
    await expect(queue.enqueue('bad', 1, { durability: 'fast' as 'sync' })).rejects.toThrow(TypeError);
    // One bad item refuses the whole batch.
    await expect(queue.enqueueMany([{ name: 'ok', data: 1 }, { name: 'bad', data: 2n }])).rejects.toThrow(TypeError);
    expect(queue.counts().pending).toBe(1);
    await queue.close();
    const reopened = await Queue.open(dir);
    expect(reopened.counts().pending).toBe(1);
    await reopened.close();
    // Only the CLOSE markers of the two closes were added.
    expect(await logBytes(dir)).toBeLessThanOrEqual(before + 2 * 64);
  });

  test('rejects a job larger than maxRecordSize with RecordTooLargeError and keeps going', async ({ dir }) => {
    const queue = await Queue.open(dir, { maxRecordSize: 4096 });
    await expect(queue.enqueue('big', 'x'.repeat(5000))).rejects.toThrow(RecordTooLargeError);
    const id = await queue.enqueue('small', 'x');
    expect(await queue.getJob(id)).toMatchObject({ name: 'small', data: 'x' });
    expect(queue.counts().pending).toBe(1);
    await queue.close();
  });

  test('returns the existing id for a key held by a pending, delayed or active job, and a new one once it finished', async ({ dir }) => {
    const queue = await Queue.open(dir);
    const [first, second] = await Promise.all([queue.enqueue('mail', 1, { key: 'user-1' }), queue.enqueue('mail', 2, { key: 'user-1' })]);
    expect(second).toBe(first);
    const delayed = await queue.enqueue('mail', 3, { key: 'user-2', delayMs: 60_000 });
    expect(await queue.enqueue('mail', 4, { key: 'user-2' })).toBe(delayed);
    const ids = await queue.enqueueMany([
      { name: 'mail', data: 5, options: { key: 'user-3' } },
      { name: 'mail', data: 6, options: { key: 'user-3' } },
      { name: 'mail', data: 7, options: { key: 'user-1' } },
    ]);
    expect(ids[1]).toBe(ids[0]);
    expect(ids[2]).toBe(first);
    expect(queue.counts()).toMatchObject({ pending: 2, delayed: 1 });
    let release!: () => void;
    const running = new Promise<void>((resolve) => (release = resolve));
    const started = new Promise<number>((resolve) => {
      queue.registerProcessor(async (job) => {
        resolve(job.id);
        await running;
      });
    });
    expect(await started).toBe(first);
    expect(await queue.enqueue('mail', 8, { key: 'user-1' })).toBe(first);
    release();
    await new Promise((resolve) => queue.once('completed', resolve));
    const fresh = await queue.enqueue('mail', 9, { key: 'user-1' });
    expect(fresh).toBeGreaterThan(first);
    await queue.close({ timeoutMs: 0 });
  });

  test('keeps keys across a reopen', async ({ dir }) => {
    const first = await Queue.open(dir);
    const id = await first.enqueue('mail', 1, { key: 'k' });
    await first.close();
    const second = await Queue.open(dir);
    expect(await second.enqueue('mail', 2, { key: 'k' })).toBe(id);
    expect(second.counts().pending).toBe(1);
    await second.close();
  });

  test('enqueueMany returns ids in order and an empty call writes nothing', async ({ dir }) => {
    const queue = await Queue.open(dir);
    expect(await queue.enqueueMany([])).toEqual([]);
    const ids = await queue.enqueueMany(Array.from({ length: 100 }, (_, at) => ({ name: 'n', data: at })));
    expect(ids).toEqual(Array.from({ length: 100 }, (_, at) => ids[0]! + at));
    expect((await queue.getJob(ids[42]!))?.data).toBe(42);
    await queue.close();
  });

  test('accepts a per-job durability weaker or stronger than the queue default', async ({ dir }) => {
    const queue = await Queue.open(dir, { durability: 'interval', syncIntervalMs: 60_000 });
    const ids = await Promise.all([
      queue.enqueue('a', 1, { durability: 'sync' }),
      queue.enqueue('a', 2, { durability: 'none' }),
      queue.enqueue('a', 3),
    ]);
    expect(new Set(ids).size).toBe(3);
    await queue.close();
    const reopened = await Queue.open(dir);
    expect(reopened.counts().pending).toBe(3);
    await reopened.close();
  });

  test('rejects with ClosedError once closed, and close() is memoized', async ({ dir }) => {
    const queue = await Queue.open(dir);
    expect(queue.status).toBe('open');
    const closing = queue.close();
    expect(queue.status).toBe('closing');
    expect(queue.close()).toBe(closing);
    await expect(queue.enqueue('a', 1)).rejects.toThrow(ClosedError);
    await closing;
    expect(queue.status).toBe('closed');
    await expect(queue.enqueueMany([{ name: 'a', data: 1 }])).rejects.toThrow(ClosedError);
    await expect(queue.getJob(1)).rejects.toThrow(ClosedError);
    expect(() => queue.counts()).toThrow(ClosedError);
    expect(() => queue.registerProcessor(async () => undefined)).toThrow(ClosedError);
  });

  test('closes through Symbol.asyncDispose', async ({ dir }) => {
    {
      await using queue = await Queue.open(dir);
      await queue.enqueue('a', 1);
    }
    const reopened = await Queue.open(dir);
    expect(reopened.counts().pending).toBe(1);
    await reopened.close();
  });
});
