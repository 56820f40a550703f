// Bug checks. A failed assert means blero itself is wrong and throws at once; problems in the
// world (bad disk, bad input) get typed errors from src/errors.ts instead.

export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** True when whole-structure checks should run (the test suite sets BLERO_VERIFY=1). */
export const verifyEnabled = process.env['BLERO_VERIFY'] === '1';

/** Runs an O(n) consistency check only when BLERO_VERIFY=1; keep hot paths O(1) otherwise. */
export function verify(check: () => void): void {
  if (verifyEnabled) check();
}

/**
 * Throws AssertionError. For hot paths, `if (!(condition)) fail(`...${detail}`)` instead of
 * `assert(condition, `...${detail}`)`: the second builds its message on every call.
 */
export function fail(message: string): never {
  throw new AssertionError(message);
}
