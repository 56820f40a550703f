// Backoff delays: fixed and exponential growth, the upper bound, and jitter within its range.
import { describe, expect, it } from 'vitest';
import { BackoffType, MAX_BACKOFF_MS, backoffDelayMs } from '../../src/queue/retry-policy.ts';

describe('retry policy', () => {
  it('waits the same delay after every attempt with a fixed backoff', () => {
    const policy = { type: BackoffType.fixed, delayMs: 100, jitter: 0, maxDelayMs: Infinity };
    expect([1, 2, 3].map((attempt) => backoffDelayMs(policy, attempt))).toEqual([100, 100, 100]);
  });

  it('doubles the delay after each attempt with an exponential backoff, up to maxDelayMs', () => {
    const policy = { type: BackoffType.exponential, delayMs: 100, jitter: 0, maxDelayMs: 700 };
    expect([1, 2, 3, 4, 5].map((attempt) => backoffDelayMs(policy, attempt))).toEqual([100, 200, 400, 700, 700]);
    const unbounded = { ...policy, maxDelayMs: Infinity };
    expect(backoffDelayMs(unbounded, 5000)).toBe(MAX_BACKOFF_MS);
  });

  it('draws a jittered delay from [delay * (1 - jitter), delay]', () => {
    const policy = { type: BackoffType.fixed, delayMs: 1000, jitter: 0.25, maxDelayMs: Infinity };
    expect(backoffDelayMs(policy, 1, () => 0)).toBe(1000);
    expect(backoffDelayMs(policy, 1, () => 0.999999)).toBe(750);
    expect(backoffDelayMs(policy, 1, () => 0.5)).toBe(875);
  });
});
