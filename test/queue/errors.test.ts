// Internal failures: a failed fsync poisons the log; the queue reports it on 'error', stops
// dispatching, and refuses enqueues with PoisonedError until it is reopened.
import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Log } from '../../src/engine/log.ts';
import { CorruptionError, LockedError, PoisonedError, Queue } from '../../src/index.ts';
import { SimFileSystem } from '../support/sim-fs.ts';
import { sleep, test } from './queue-fixture.ts';

describe('errors', () => {
  it('emits error on a failed fsync, stops dispatching and rejects later enqueues with PoisonedError', async () => {
    const disk = new SimFileSystem();
    const queue = await Queue.open('/queue', { fileSystem: disk });
    const pendingId = await queue.enqueue('job', 1);
    const errors: Error[] = [];
    queue.on('error', (error) => errors.push(error));
    disk.failDatasync();
    await expect(queue.enqueue('job', 2)).rejects.toThrow();
    await sleep(5);
    expect(errors).toHaveLength(1);
    await expect(queue.enqueue('job', 3)).rejects.toThrow(PoisonedError);
    let ran = 0;
    queue.registerProcessor(() => {
      ran++;
    });
    await sleep(20);
    expect(ran).toBe(0);
    await queue.close();
    // Reopening recovers from what is on disk.
    const reopened = await Queue.open('/queue', { fileSystem: disk.crash({ mode: 'process' }) });
    expect((await reopened.getJob(pendingId))?.state).toBe('pending');
    await reopened.close();
  });

  it('refuses to open a log holding a queue record kind it does not know (written by a newer version)', async () => {
    const disk = new SimFileSystem();
    const queue = await Queue.open('/queue', { fileSystem: disk });
    await queue.enqueue('job', 1);
    await queue.close();
    const log = await Log.open('/queue', { fileSystem: disk });
    await log.append(Buffer.from([200, 0, 1, 0, 0, 0, 0, 0]));
    await log.close();
    await expect(Queue.open('/queue', { fileSystem: disk })).rejects.toThrow(CorruptionError);
  });

  test('refuses a second queue on a directory that is open, until the first is closed', async ({ dir }) => {
    const first = await Queue.open(dir);
    await expect(Queue.open(dir)).rejects.toThrow(LockedError);
    await first.close();
    const second = await Queue.open(dir);
    await second.close();
  });

  it('refuses invalid queue options before touching the disk', async () => {
    const disk = new SimFileSystem();
    await expect(Queue.open('/queue', { fileSystem: disk, durability: 'fast' as 'sync' })).rejects.toThrow(TypeError);
    await expect(Queue.open('/queue', { fileSystem: disk, maxRecordSize: 100 })).rejects.toThrow(RangeError);
    await expect(Queue.open('/queue', { fileSystem: disk, payloadCacheBytes: -1 })).rejects.toThrow(RangeError);
    await expect(Queue.open('/queue', { fileSystem: disk, defaultJobOptions: { attempts: 0 } })).rejects.toThrow(RangeError);
    expect(disk.listFiles()).toEqual([]);
  });

  it('rejects invalid processor options', async () => {
    const queue = await Queue.open('/queue', { fileSystem: new SimFileSystem() });
    expect(() => queue.registerProcessor(() => undefined, { concurrency: 0 })).toThrow(RangeError);
    expect(() => queue.registerProcessor('x' as unknown as () => void)).toThrow(TypeError);
    await queue.close();
  });

  it('surfaces a throwing event listener as an uncaught exception without breaking the queue', async () => {
    const queue = await Queue.open('/queue', { fileSystem: new SimFileSystem() });
    const uncaught = new Promise<Error>((resolve) => {
      const listeners = process.listeners('uncaughtException');
      process.removeAllListeners('uncaughtException');
      process.once('uncaughtException', (error) => {
        for (const listener of listeners) process.on('uncaughtException', listener);
        resolve(error);
      });
    });
    queue.once('completed', () => {
      throw new Error('listener bug');
    });
    queue.registerProcessor(() => 'ok');
    const first = await queue.enqueue('job', 1);
    expect((await uncaught).message).toBe('listener bug');
    const completedEvent = once(queue, 'completed');
    const second = await queue.enqueue('job', 2);
    await completedEvent;
    expect((await queue.getJob(first))?.state).toBe('completed');
    expect((await queue.getJob(second))?.state).toBe('completed');
    await queue.close();
  });
});
