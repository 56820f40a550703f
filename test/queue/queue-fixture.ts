// Shared helpers of the queue tests: the temp-dir fixture, a deferred promise, and a bounded
// wait for a condition the queue reaches asynchronously (no test asserts on timing).
import type { Job, Queue } from '../../src/index.ts';

export { test } from '../support/temp-dir.ts';

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` until it holds; fails after `limitMs` so a bug shows as a clear failure, not a hang. */
export async function waitUntil(condition: () => boolean | Promise<boolean>, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${limitMs} ms`);
    await sleep(2);
  }
}

/** What a user can observe of a queue: its counts, and getJob for each of `ids`. */
export interface QueueState {
  readonly counts: ReturnType<Queue['counts']>;
  readonly jobs: ReadonlyMap<number, Job | undefined>;
}

export async function stateOf(queue: Queue, ids: Iterable<number>): Promise<QueueState> {
  const jobs = new Map<number, Job | undefined>();
  for (const id of ids) jobs.set(id, await queue.getJob(id));
  return { counts: queue.counts(), jobs };
}
