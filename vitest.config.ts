import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Whole-structure invariant checks (verify()) run in every test.
    env: { BLERO_VERIFY: '1' },
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Two cores: file-level parallelism beyond that only adds fsync contention.
    maxWorkers: 2,
  },
});
