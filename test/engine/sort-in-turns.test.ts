import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sortInTurns } from '../../src/engine/sort-in-turns.ts';

describe('sortInTurns', () => {
  it('sorts like a plain numeric sort, across all three 16-bit digits of a 48-bit key', async () => {
    const key = fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 2 ** 48 - 1 }));
    await fc.assert(
      fc.asyncProperty(fc.array(key, { maxLength: 2000 }), async (values) => {
        const keys = Float64Array.from(values);
        await sortInTurns(keys, 0);
        expect([...keys]).toEqual([...values].sort((a, b) => a - b));
      }),
      { numRuns: 200 },
    );
  });

  it('sorts a large array by radix passes the same way', async () => {
    const values = Array.from({ length: 250_000 }, (_, i) => ((i * 2_654_435_761) % 2 ** 32) + (i % 3) * 2 ** 32 + (i % 7 === 0 ? 2 ** 40 : 0));
    const keys = Float64Array.from(values);
    await sortInTurns(keys, 0);
    expect([...keys]).toEqual(values.sort((a, b) => a - b));
  });

  it('refuses keys it cannot sort', async () => {
    await expect(sortInTurns(Float64Array.from([1, 0.5]), 0)).rejects.toThrow(RangeError);
    await expect(sortInTurns(Float64Array.from([2 ** 48, 1]), 0)).rejects.toThrow(RangeError);
  });
});
