// Checks the bench's percentile arithmetic against values worked out by hand (numpy's default
// linear interpolation), and that the sample recorder keeps an evenly spread subset once full.
import { describe, expect, it } from 'vitest';
import { SampleRecorder, percentile, summarize } from '../../bench/stats.ts';

describe('percentile', () => {
  it('interpolates linearly between the closest ranks', () => {
    const sorted = [10, 20, 30, 40];
    expect(percentile(sorted, 0)).toBe(10);
    expect(percentile(sorted, 50)).toBe(25);
    expect(percentile(sorted, 100)).toBe(40);
    expect(percentile(sorted, 90)).toBeCloseTo(37, 10);
  });

  it('returns the only sample for every p', () => {
    expect(percentile([7], 0)).toBe(7);
    expect(percentile([7], 99)).toBe(7);
  });

  it('refuses an empty input and a p outside 0..100', () => {
    expect(() => percentile([], 50)).toThrow(RangeError);
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], Number.NaN)).toThrow(RangeError);
  });
});

describe('summarize', () => {
  it('sorts a copy and reports count, extremes, mean and percentiles', () => {
    const samples = [5, 1, 4, 2, 3];
    const summary = summarize(samples);
    expect(summary).toEqual({ count: 5, min: 1, mean: 3, p50: 3, p90: 4.6, p99: expect.closeTo(4.96, 10), max: 5 });
    expect(samples).toEqual([5, 1, 4, 2, 3]);
  });
});

describe('SampleRecorder', () => {
  it('keeps every sample while below capacity', () => {
    const recorder = new SampleRecorder(8);
    for (let i = 1; i <= 8; i++) recorder.record(i);
    expect(recorder.length).toBe(8);
    expect(recorder.summary()?.p50).toBe(4.5);
  });

  it('keeps every k-th sample once full, spread over the whole run', () => {
    const recorder = new SampleRecorder(4);
    for (let i = 1; i <= 16; i++) recorder.record(i);
    // Capacity 4: after 16 samples the stride is 4 and the kept ones are 4, 8, 12, 16.
    expect(recorder.length).toBe(4);
    expect(recorder.summary()).toMatchObject({ min: 4, max: 16, mean: 10 });
  });

  it('has no summary before the first sample', () => {
    expect(new SampleRecorder().summary()).toBeUndefined();
  });
});
