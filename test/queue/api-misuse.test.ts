// Misuse of the public API (issue 5, part 5), through `blero`'s exports only, on a real temp dir:
// invalid names, options of the wrong type or range, data JSON cannot carry, oversized jobs,
// calls after or during close, a second queue on a locked directory. Each must fail with a
// clear, typed error (TypeError/RangeError without a code, or a BleroError with its stable
// code) and write nothing: the directory is compared byte for byte before and after, and a
// reopen finds no job that a refused call could have added.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { access, readFile, readdir } from 'node:fs/promises';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, expect } from 'vitest';
import { BleroError, ClosedError, ErrorCode, LockedError, Queue, RecordTooLargeError } from '../../src/index.ts';
import type { JobOptions, QueueOptions } from '../../src/index.ts';
import { test } from './queue-fixture.ts';

const LOCK_HOLDER = fileURLToPath(new URL('../support/lock-holder.ts', import.meta.url));

/** Every file of the directory with its bytes: compare two with toEqual. */
async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const name of (await readdir(dir)).sort()) files.set(name, await readFile(path.join(dir, name)));
  return files;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** A refusal: the right class, no code for argument errors, and a message that names something. */
async function expectRefused(call: () => Promise<unknown>, kind: typeof TypeError | typeof RangeError | 'either', what: string): Promise<void> {
  const error = await call().then(
    () => undefined,
    (thrown: unknown) => thrown,
  );
  expect(error, `${what}: was accepted`).toBeInstanceOf(Error);
  if (kind === 'either') expect(error instanceof TypeError || error instanceof RangeError, `${what}: ${String(error)}`).toBe(true);
  else expect(error, `${what}: ${String(error)}`).toBeInstanceOf(kind);
  expect(error, `${what}: an argument error is not a BleroError`).not.toBeInstanceOf(BleroError);
  expect((error as Error).message.length, what).toBeGreaterThan(10);
}

const cycle: Record<string, unknown> = { name: 'loop' };
cycle['self'] = cycle;

describe('Queue.open with invalid options', () => {
  const cases: [string, unknown, typeof TypeError | typeof RangeError | 'either'][] = [
    ['options a string', 'fast', TypeError],
    ['options an array', [], TypeError],
    ['durability unknown', { durability: 'fast' }, TypeError],
    ['durability a number', { durability: 1 }, TypeError],
    ['syncIntervalMs NaN', { syncIntervalMs: Number.NaN }, RangeError],
    ['syncIntervalMs negative', { syncIntervalMs: -1 }, RangeError],
    ['syncIntervalMs a string', { syncIntervalMs: '10' }, TypeError],
    ['syncIntervalMs Infinity', { syncIntervalMs: Infinity }, RangeError],
    ['segmentSize fractional', { segmentSize: 8192.5 }, RangeError],
    ['segmentSize below the minimum', { segmentSize: 100 }, RangeError],
    ['segmentSize a string', { segmentSize: '1MB' }, TypeError],
    ['maxRecordSize below 1 KiB', { maxRecordSize: 100 }, RangeError],
    ['maxRecordSize NaN', { maxRecordSize: Number.NaN }, RangeError],
    ['maxRecordSize a string', { maxRecordSize: '1k' }, TypeError],
    ['maxBatchBytes negative', { maxBatchBytes: -1 }, RangeError],
    ['repair a string', { repair: 'yes' }, TypeError],
    ['lock unknown', { lock: 'sometimes' }, TypeError],
    ['defaultJobOptions a string', { defaultJobOptions: 'x' }, TypeError],
    ['default attempts 0', { defaultJobOptions: { attempts: 0 } }, RangeError],
    ['default attempts NaN', { defaultJobOptions: { attempts: Number.NaN } }, RangeError],
    ['default priority fractional', { defaultJobOptions: { priority: 1.5 } }, RangeError],
    ['default backoff negative', { defaultJobOptions: { backoff: -1 } }, RangeError],
    ['default backoff type unknown', { defaultJobOptions: { backoff: { type: 'linear', delayMs: 1 } } }, TypeError],
    ['default timeoutMs 0', { defaultJobOptions: { timeoutMs: 0 } }, RangeError],
    ['default maxStalls negative', { defaultJobOptions: { maxStalls: -1 } }, RangeError],
    ['removeOnComplete negative', { removeOnComplete: -1 }, RangeError],
    ['removeOnComplete a string', { removeOnComplete: '5' }, TypeError],
    ['removeOnFail count NaN', { removeOnFail: { count: Number.NaN } }, RangeError],
    ['removeOnFail ageMs negative', { removeOnFail: { ageMs: -5 } }, RangeError],
    ['payloadCacheBytes negative', { payloadCacheBytes: -1 }, RangeError],
    ['payloadCacheBytes a string', { payloadCacheBytes: '1' }, TypeError],
  ];

  test('refuses each before creating the directory', async ({ dir }) => {
    for (const [what, options] of cases) {
      const target = path.join(dir, 'never-created');
      await expectRefused(() => Queue.open(target, options as QueueOptions), cases.find((c) => c[0] === what)![2], what);
      expect(await exists(target), `${what}: the directory was created`).toBe(false);
    }
    await expectRefused(() => Queue.open(''), TypeError, 'an empty directory name');
    await expectRefused(() => Queue.open(5 as unknown as string), TypeError, 'a directory that is a number');
    expect(await readdir(dir)).toEqual([]);
  });
});

describe('enqueue and enqueueMany with bad input', () => {
  const badNames: [string, unknown][] = [
    ['an empty name', ''],
    ['a name of 256 ASCII bytes', 'x'.repeat(256)],
    ['a name of 256 UTF-8 bytes (128 × é)', 'é'.repeat(128)],
    ['a number as name', 5],
    ['undefined as name', undefined],
    ['null as name', null],
    ['an object as name', { name: 'x' }],
  ];
  const badData: [string, unknown][] = [
    ['a BigInt', 10n],
    ['a BigInt inside an object', { n: 10n }],
    ['a cycle', cycle],
    ['a function', () => 1],
    ['a function inside an object', { run: () => 1 }],
    ['a function inside an array', [1, () => 1]],
    ['a symbol', Symbol('s')],
    ['a symbol inside an object', { s: Symbol('s') }],
    ['a toJSON that returns a function', { toJSON: () => () => 1 }],
  ];
  const badOptions: [string, unknown][] = [
    ['options a string', 'urgent'],
    ['priority NaN', { priority: Number.NaN }],
    ['priority fractional', { priority: 1.5 }],
    ['priority beyond int32', { priority: 2 ** 31 }],
    ['priority a string', { priority: '1' }],
    ['delayMs negative', { delayMs: -1 }],
    ['delayMs NaN', { delayMs: Number.NaN }],
    ['delayMs a string', { delayMs: '5' }],
    ['runAt NaN', { runAt: Number.NaN }],
    ['runAt an invalid Date', { runAt: new Date('not a date') }],
    ['runAt a string', { runAt: 'tomorrow' }],
    ['delayMs and runAt together', { delayMs: 1, runAt: Date.now() }],
    ['attempts 0', { attempts: 0 }],
    ['attempts fractional', { attempts: 1.5 }],
    ['attempts a string', { attempts: '3' }],
    ['backoff negative', { backoff: -1 }],
    ['backoff type unknown', { backoff: { type: 'linear', delayMs: 1 } }],
    ['backoff delayMs negative', { backoff: { type: 'fixed', delayMs: -1 } }],
    ['backoff jitter above 1', { backoff: { type: 'exponential', delayMs: 1, jitter: 2 } }],
    ['timeoutMs 0', { timeoutMs: 0 }],
    ['timeoutMs NaN', { timeoutMs: Number.NaN }],
    ['maxStalls negative', { maxStalls: -1 }],
    ['key empty', { key: '' }],
    ['key a number', { key: 5 }],
    ['key of 1025 bytes', { key: 'k'.repeat(1025) }],
    ['durability unknown', { durability: 'fast' }],
  ];

  test('refuses each with TypeError/RangeError, writes nothing, and a reopen finds no job', async ({ dir }) => {
    const queue = await Queue.open(dir);
    const before = await snapshot(dir);
    for (const [what, name] of badNames) {
      await expectRefused(() => queue.enqueue(name as string, 1), 'either', `enqueue with ${what}`);
      await expectRefused(() => queue.enqueueMany([{ name: 'ok', data: 1 }, { name: name as string, data: 1 }]), 'either', `enqueueMany with ${what}`);
    }
    for (const [what, data] of badData) {
      await expectRefused(() => queue.enqueue('job', data), TypeError, `enqueue of ${what}`);
      await expectRefused(() => queue.enqueueMany([{ name: 'ok', data: 1 }, { name: 'job', data }]), TypeError, `enqueueMany with ${what}`);
    }
    for (const [what, options] of badOptions) {
      await expectRefused(() => queue.enqueue('job', 1, options as JobOptions), 'either', `enqueue with ${what}`);
      await expectRefused(() => queue.enqueueMany([{ name: 'ok', data: 1 }, { name: 'job', data: 1, options: options as JobOptions }]), 'either', `enqueueMany with ${what}`);
    }
    await expectRefused(() => queue.enqueueMany('job' as unknown as []), TypeError, 'enqueueMany of a string');
    await expectRefused(() => queue.enqueueMany([{ name: 'ok', data: 1 }, null as unknown as { name: string; data: unknown }]), TypeError, 'enqueueMany with a null item');
    await expectRefused(() => queue.getJob('1' as unknown as number), TypeError, 'getJob with a string id');
    expect(queue.counts()).toEqual({ pending: 0, delayed: 0, active: 0, completed: 0, failed: 0 });
    expect(await snapshot(dir)).toEqual(before);
    await queue.close();
    const reopened = await Queue.open(dir);
    expect(reopened.counts()).toEqual({ pending: 0, delayed: 0, active: 0, completed: 0, failed: 0 });
    await reopened.close();
  });

  test('refuses an oversized job with RecordTooLargeError, alone or inside enqueueMany, and writes nothing', async ({ dir }) => {
    const queue = await Queue.open(dir, { maxRecordSize: 4096 });
    // A first job takes the id lease (see the next test for an oversized first job).
    const first = await queue.enqueue('small', 1);
    const before = await snapshot(dir);
    for (const [what, data] of [
      ['JSON text', 'x'.repeat(5000)],
      ['bytes', Buffer.alloc(5000, 1)],
    ] as const) {
      const alone = await queue.enqueue('big', data).catch((error: unknown) => error);
      expect(alone, what).toBeInstanceOf(RecordTooLargeError);
      expect(alone, what).toMatchObject({ code: ErrorCode.recordTooLarge, maxRecordSize: 4096 });
      expect((alone as RecordTooLargeError).sizeBytes, what).toBeGreaterThan(4096);
      await expect(queue.enqueueMany([{ name: 'small', data: 1 }, { name: 'big', data }]), what).rejects.toBeInstanceOf(RecordTooLargeError);
    }
    expect(queue.counts().pending).toBe(1);
    expect(await snapshot(dir)).toEqual(before);
    // The queue goes on: a job that fits is accepted.
    const id = await queue.enqueue('small', 'x'.repeat(3000));
    await queue.close();
    expect(id).toBeGreaterThan(first);
    const reopened = await Queue.open(dir);
    expect(reopened.counts().pending).toBe(2);
    expect((await reopened.getJob(id))?.data).toBe('x'.repeat(3000));
    await reopened.close();
  });

  // Found by this file: the first enqueue of a queue (or the one crossing an id lease) appended
  // and fdatasynced the lease's meta record (40 bytes) before the added record was refused as too
  // large. Fixed in b010f45 (the lease record now follows the jobs).
  test('an oversized job that would take a new id lease writes nothing either (regression)', async ({ dir }) => {
    const queue = await Queue.open(dir, { maxRecordSize: 4096 });
    try {
      const before = await snapshot(dir);
      await expect(queue.enqueue('big', 'x'.repeat(5000))).rejects.toBeInstanceOf(RecordTooLargeError);
      await expect(queue.enqueueMany([{ name: 'small', data: 1 }, { name: 'big', data: Buffer.alloc(5000) }])).rejects.toBeInstanceOf(RecordTooLargeError);
      expect(await snapshot(dir), 'the refused enqueue wrote to the log').toEqual(before);
    } finally {
      await queue.close();
    }
  });
});

describe('processors and close', () => {
  test('refuses bad processors and processor options, and unregistering an unknown id returns false', async ({ dir }) => {
    const queue = await Queue.open(dir);
    expect(() => queue.registerProcessor('run' as unknown as () => void)).toThrow(TypeError);
    expect(() => queue.registerProcessor(() => undefined, 'fast' as unknown as { concurrency: number })).toThrow(TypeError);
    expect(() => queue.registerProcessor(() => undefined, { concurrency: 0 })).toThrow(RangeError);
    expect(() => queue.registerProcessor(() => undefined, { concurrency: Number.NaN })).toThrow(RangeError);
    expect(() => queue.registerProcessor(() => undefined, { concurrency: 1.5 })).toThrow(RangeError);
    expect(() => queue.registerProcessor(() => undefined, { concurrency: '2' as unknown as number })).toThrow(TypeError);
    expect(queue.unregisterProcessor(12345)).toBe(false);
    await queue.close();
  });

  test('close with bad options rejects and leaves the queue open', async ({ dir }) => {
    const queue = await Queue.open(dir);
    await expectRefused(() => queue.close({ timeoutMs: -1 }), RangeError, 'close with a negative timeout');
    await expectRefused(() => queue.close({ timeoutMs: Number.NaN }), RangeError, 'close with a NaN timeout');
    await expectRefused(() => queue.close('soon' as unknown as { timeoutMs: number }), TypeError, 'close with a string');
    expect(queue.status).toBe('open');
    expect(await queue.enqueue('job', 1)).toBeGreaterThan(0);
    await queue.close();
  });

  test('double close returns the same promise; every call during and after close fails with ClosedError', async ({ dir }) => {
    const queue = await Queue.open(dir);
    await queue.enqueue('job', 1);
    const closing = queue.close();
    expect(queue.close()).toBe(closing);
    expect(queue.close({ timeoutMs: 5 })).toBe(closing);
    expect(queue.status).toBe('closing');
    await expect(queue.enqueue('job', 2)).rejects.toBeInstanceOf(ClosedError);
    await expect(queue.enqueueMany([{ name: 'job', data: 3 }])).rejects.toMatchObject({ code: ErrorCode.closed });
    expect(() => queue.registerProcessor(() => undefined)).toThrow(ClosedError);
    await closing;
    const after = await snapshot(dir);
    expect(queue.status).toBe('closed');
    await expect(queue.enqueue('job', 4)).rejects.toBeInstanceOf(ClosedError);
    await expect(queue.enqueueMany([{ name: 'job', data: 5 }])).rejects.toBeInstanceOf(ClosedError);
    await expect(queue.getJob(1)).rejects.toBeInstanceOf(ClosedError);
    expect(() => queue.counts()).toThrow(ClosedError);
    expect(() => queue.registerProcessor(() => undefined)).toThrow(ClosedError);
    await expect(queue.close()).resolves.toBeUndefined();
    await expect(queue[Symbol.asyncDispose]()).resolves.toBeUndefined();
    expect(await snapshot(dir)).toEqual(after);
    const reopened = await Queue.open(dir);
    expect(reopened.counts().pending).toBe(1);
    await reopened.close();
  });
});

/** Starts test/support/lock-holder.ts holding <dir>'s lock in `mode`; resolves once it holds it. */
async function holdLock(dir: string, mode: 'flock' | 'pidfile'): Promise<{ pid: number; release: () => Promise<void> }> {
  const child = fork(LOCK_HOLDER, [dir, mode], { execArgv: ['--import', 'tsx'], stdio: ['pipe', 'pipe', 'ignore', 'ipc'] });
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await once(lines, 'line')) as [string];
  const message = JSON.parse(line) as { acquired?: string; pid?: number };
  expect(message.acquired).toBe(mode);
  return {
    pid: message.pid!,
    release: async () => {
      const exited = once(child, 'exit');
      child.stdin!.end();
      await exited;
    },
  };
}

describe('a second queue on the same directory', () => {
  for (const lock of ['flock', 'pidfile'] as const) {
    test(`is refused with LockedError in this process ('${lock}') and writes nothing`, async ({ dir }) => {
      const first = await Queue.open(dir, { lock });
      await first.enqueue('job', 1);
      const before = await snapshot(dir);
      for (const second of ['flock', 'pidfile', 'auto'] as const) {
        const refused = await Queue.open(dir, { lock: second }).catch((error: unknown) => error);
        expect(refused, `${lock} holder, ${second} opener`).toBeInstanceOf(LockedError);
        expect(refused).toMatchObject({ code: ErrorCode.locked });
      }
      expect(await snapshot(dir)).toEqual(before);
      // The holder is unaffected.
      await first.enqueue('job', 2);
      await first.close();
      const reopened = await Queue.open(dir, { lock });
      expect(reopened.counts().pending).toBe(2);
      await reopened.close();
    });

    test(`is refused with LockedError naming the holder when another process holds it ('${lock}')`, async ({ dir }) => {
      const seed = await Queue.open(dir);
      await seed.enqueue('job', 1);
      await seed.close();
      const holder = await holdLock(dir, lock);
      try {
        const before = await snapshot(dir);
        const refused = await Queue.open(dir, { lock }).catch((error: unknown) => error);
        expect(refused).toBeInstanceOf(LockedError);
        expect(refused).toMatchObject({ code: ErrorCode.locked, holderPid: holder.pid });
        expect(await snapshot(dir)).toEqual(before);
      } finally {
        await holder.release();
      }
      const reopened = await Queue.open(dir, { lock });
      expect(reopened.counts().pending).toBe(1);
      await reopened.close();
    });
  }
});
