// When a failed attempt runs again: the backoff delay for attempt n. Pure computation; the
// caller decides whether there is an attempt left and supplies the random source.

export const BackoffType = { fixed: 0, exponential: 1 } as const;
export type BackoffType = (typeof BackoffType)[keyof typeof BackoffType];

/** A validated backoff, as stored in a job's added record. */
export interface BackoffPolicy {
  readonly type: BackoffType;
  /** Base delay in ms, ≥ 0. */
  readonly delayMs: number;
  /** 0 to 1. */
  readonly jitter: number;
  /** Upper bound before jitter; Infinity when unbounded. */
  readonly maxDelayMs: number;
}

export const NO_BACKOFF: BackoffPolicy = { type: BackoffType.fixed, delayMs: 0, jitter: 0, maxDelayMs: Infinity };

/** Longest delay any policy yields (~24.8 days): also the longest a single timer can wait. */
export const MAX_BACKOFF_MS = 2 ** 31 - 1;

/**
 * Delay in ms before the attempt after `attempt` (1-based: the attempt that just failed).
 * `random` returns a number in [0, 1) and is only called when jitter is set.
 */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: () => number = Math.random): number {
  const base =
    policy.type === BackoffType.exponential ? policy.delayMs * 2 ** Math.min(attempt - 1, 1023) : policy.delayMs;
  const bounded = Math.min(base, policy.maxDelayMs, MAX_BACKOFF_MS);
  if (policy.jitter === 0) return Math.round(bounded);
  return Math.round(bounded * (1 - policy.jitter * random()));
}
