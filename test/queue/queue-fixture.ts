// Shared helpers of the queue tests: the temp-dir fixture, a deferred promise, and a bounded
// wait for a condition the queue reaches asynchronously (no test asserts on timing).
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
