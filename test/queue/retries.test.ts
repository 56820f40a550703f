// Failed attempts: retries with fixed and exponential backoff, UnrecoverableError, per-attempt
// timeouts that abort the signal, and fencing (a late outcome of a timed-out attempt is dropped).
import { once } from 'node:events';
import { describe, expect } from 'vitest';
import { ErrorCode, Queue, TimeoutError, UnrecoverableError, type Job } from '../../src/index.ts';
import { deferred, test, waitUntil } from './queue-fixture.ts';

describe('retries', () => {
  test('retries a failing job until its attempts run out, then fails it', async ({ dir }) => {
    const queue = await Queue.open(dir);
    const attempts: number[] = [];
    const retrying: { attempt: number; state: string }[] = [];
    queue.on('retrying', (job) => retrying.push({ attempt: job.attempt, state: job.state }));
    const failed = once(queue, 'failed');
    queue.registerProcessor((job) => {
      attempts.push(job.attempt);
      throw new Error(`attempt ${job.attempt}`);
    });
    const id = await queue.enqueue('flaky', 1, { attempts: 3 });
    const [job, error] = (await failed) as [Job, Error];
    expect(attempts).toEqual([1, 2, 3]);
    expect(retrying).toEqual([
      { attempt: 1, state: 'pending' },
      { attempt: 2, state: 'pending' },
    ]);
    expect(error.message).toBe('attempt 3');
    expect(job).toMatchObject({ id, state: 'failed', attempt: 3, maxAttempts: 3 });
    await queue.close();
    const reopened = await Queue.open(dir);
    expect(await reopened.getJob(id)).toMatchObject({ state: 'failed', attempt: 3, error: { message: 'attempt 3' } });
    await reopened.close();
  });

  test('completes a job that succeeds on a later attempt', async ({ dir }) => {
    const queue = await Queue.open(dir, { defaultJobOptions: { attempts: 5 } });
    queue.registerProcessor((job) => {
      if (job.attempt < 3) throw new Error('not yet');
      return 'done';
    });
    const completedEvent = once(queue, 'completed');
    const id = await queue.enqueue('flaky', 1);
    await completedEvent;
    const job = await queue.getJob(id);
    expect(job).toMatchObject({ state: 'completed', attempt: 3, result: 'done' });
    expect(job?.error).toBeUndefined();
    await queue.close();
  });

  test('waits the exponential backoff between attempts', async ({ dir }) => {
    const queue = await Queue.open(dir);
    const delays: number[] = [];
    queue.on('retrying', (job, _error, retryAt) => {
      expect(job.state).toBe('delayed');
      expect(job.runAt).toBe(retryAt);
      delays.push(retryAt);
    });
    const startedAt: number[] = [];
    queue.registerProcessor(() => {
      startedAt.push(Date.now());
      throw new Error('again');
    });
    const failedEvent = once(queue, 'failed');
    await queue.enqueue('flaky', 1, { attempts: 4, backoff: { type: 'exponential', delayMs: 10 } });
    await failedEvent;
    expect(startedAt).toHaveLength(4);
    // Each retry starts no earlier than its retryAt, and the gaps grow 10, 20, 40 ms.
    for (let at = 0; at < 3; at++) expect(startedAt[at + 1]).toBeGreaterThanOrEqual(delays[at]!);
    const gaps = delays.map((retryAt, at) => retryAt - startedAt[at]!);
    expect(gaps[0]).toBeGreaterThanOrEqual(10);
    expect(gaps[1]).toBeGreaterThanOrEqual(20);
    expect(gaps[2]).toBeGreaterThanOrEqual(40);
    await queue.close();
  });

  test('keeps a retry delayed across a reopen, with its attempt count', async ({ dir }) => {
    const queue = await Queue.open(dir);
    queue.registerProcessor(() => {
      throw new Error('first');
    });
    const retryingEvent = once(queue, 'retrying');
    const id = await queue.enqueue('flaky', 1, { attempts: 2, backoff: 60_000 });
    await retryingEvent;
    await queue.close();
    const reopened = await Queue.open(dir);
    const job = await reopened.getJob(id);
    expect(job).toMatchObject({ state: 'delayed', attempt: 1, error: { message: 'first' } });
    expect(job!.runAt).toBeGreaterThan(Date.now() + 50_000);
    await reopened.close();
  });

  test('skips the remaining attempts on UnrecoverableError', async ({ dir }) => {
    const queue = await Queue.open(dir);
    let runs = 0;
    queue.registerProcessor(() => {
      runs++;
      throw new UnrecoverableError('bad input');
    });
    const failedEvent = once(queue, 'failed');
    const id = await queue.enqueue('job', 1, { attempts: 5 });
    const [, error] = (await failedEvent) as [Job, Error];
    expect(runs).toBe(1);
    expect(error).toBeInstanceOf(UnrecoverableError);
    expect(await queue.getJob(id)).toMatchObject({ state: 'failed', attempt: 1, error: { code: ErrorCode.unrecoverable } });
    await queue.close();
  });

  test('aborts the signal with a TimeoutError and fails the attempt when timeoutMs passes', async ({ dir }) => {
    const queue = await Queue.open(dir);
    let reason: unknown;
    queue.registerProcessor(
      (_job, signal) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => {
            reason = signal.reason;
            reject(signal.reason);
          });
        }),
    );
    const failedEvent = once(queue, 'failed');
    const id = await queue.enqueue('slow', 1, { timeoutMs: 20 });
    const [job, error] = (await failedEvent) as [Job, Error];
    expect(error).toBeInstanceOf(TimeoutError);
    expect(reason).toBe(error);
    expect(job).toMatchObject({ id, state: 'failed', error: { code: ErrorCode.timeout } });
    await queue.close();
  });

  test('discards the outcome of a timed-out attempt that returns later, and runs the retry', async ({ dir }) => {
    const queue = await Queue.open(dir);
    const late = deferred();
    const attempts: number[] = [];
    queue.registerProcessor(
      async (job) => {
        attempts.push(job.attempt);
        if (job.attempt === 1) {
          await late.promise; // ignores its signal
          return 'late result';
        }
        return 'retry result';
      },
      { concurrency: 2 },
    );
    const completions: unknown[] = [];
    queue.on('completed', (_job, result) => completions.push(result));
    const id = await queue.enqueue('slow', 1, { attempts: 2, timeoutMs: 20 });
    await waitUntil(() => completions.length === 1);
    late.resolve();
    await waitUntil(async () => attempts.length === 2 && (await queue.getJob(id))?.state === 'completed');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(completions).toEqual(['retry result']);
    expect(await queue.getJob(id)).toMatchObject({ state: 'completed', attempt: 2, result: 'retry result' });
    await queue.close();
  });

  test('counts a timed-out handler that has not returned against its processor concurrency', async ({ dir }) => {
    const queue = await Queue.open(dir);
    const stuck = deferred();
    const seen: number[] = [];
    queue.registerProcessor(
      async (job) => {
        seen.push(job.id);
        if (seen.length === 1) await stuck.promise;
      },
      { concurrency: 1 },
    );
    const failedEvent = once(queue, 'failed');
    const [first, second] = await queue.enqueueMany([
      { name: 'a', data: 1, options: { timeoutMs: 10 } },
      { name: 'b', data: 2 },
    ]);
    await failedEvent;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(seen).toEqual([first]);
    stuck.resolve();
    await waitUntil(() => seen.length === 2);
    expect(seen).toEqual([first, second]);
    await queue.close();
  });
});
