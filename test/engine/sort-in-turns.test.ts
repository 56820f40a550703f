import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sortInTurns } from '../../src/engine/sort-in-turns.ts';

describe('sortInTurns', () => {
  it('sorts like a plain numeric sort, whatever the bucket span', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 0, max: 2 ** 40 }), { maxLength: 2000 }), fc.integer({ min: 1, max: 2 ** 34 }), async (values, span) => {
        const keys = Float64Array.from(values);
        await sortInTurns(keys, span, 0);
        expect([...keys]).toEqual([...values].sort((a, b) => a - b));
      }),
      { numRuns: 200 },
    );
  });
});
