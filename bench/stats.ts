// Percentiles and latency recording for the bench. Pure computation, no I/O and no clock, so
// test/bench/stats.test.ts can check it exactly.

/**
 * The p-th percentile (0 ≤ p ≤ 100) of `sorted`, which must be sorted ascending and non-empty.
 * Interpolates linearly between the two closest ranks (numpy's default, "type 7"), so the
 * 50th percentile of an even count is the mean of the two middle values and p0/p100 are the
 * minimum and maximum.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) throw new RangeError('percentile of no samples');
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be from 0 to 100, got ${p}`);
  const rank = (p / 100) * (sorted.length - 1);
  const below = Math.floor(rank);
  const above = Math.min(below + 1, sorted.length - 1);
  const low = sorted[below] as number;
  const high = sorted[above] as number;
  return low + (high - low) * (rank - below);
}

export interface Summary {
  readonly count: number;
  readonly min: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

/** Summary of `samples` (any order; not modified). Throws on an empty input. */
export function summarize(samples: ArrayLike<number>): Summary {
  const sorted = Float64Array.from(samples).sort();
  let total = 0;
  for (const value of sorted) total += value;
  return {
    count: sorted.length,
    min: percentile(sorted, 0),
    mean: total / sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: percentile(sorted, 100),
  };
}

/**
 * Collects up to `capacity` samples in a preallocated array, so recording inside a measured
 * loop allocates nothing. Past capacity it keeps every k-th sample (k doubling each time the
 * array fills), which keeps the whole run represented instead of only its beginning.
 */
export class SampleRecorder {
  readonly #samples: Float64Array;
  #length = 0;
  #stride = 1;
  #seen = 0;

  constructor(capacity = 1 << 20) {
    if (!(capacity >= 2) || !Number.isInteger(capacity)) throw new RangeError(`capacity must be an integer ≥ 2, got ${capacity}`);
    this.#samples = new Float64Array(capacity);
  }

  record(value: number): void {
    this.#seen++;
    if (this.#seen % this.#stride !== 0) return;
    if (this.#length === this.#samples.length) {
      this.#halve();
      // The stride doubled: this sample may no longer be one to keep.
      if (this.#seen % this.#stride !== 0) return;
    }
    this.#samples[this.#length++] = value;
  }

  /** Samples recorded so far (kept ones only). */
  get length(): number {
    return this.#length;
  }

  summary(): Summary | undefined {
    return this.#length === 0 ? undefined : summarize(this.#samples.subarray(0, this.#length));
  }

  // Keeps every other sample and doubles the stride, so the kept samples stay evenly spread:
  // kept samples are those whose arrival number is a multiple of the stride, before and after.
  #halve(): void {
    const kept = Math.floor(this.#length / 2);
    for (let i = 0; i < kept; i++) this.#samples[i] = this.#samples[2 * i + 1] as number;
    this.#length = kept;
    this.#stride *= 2;
  }
}
