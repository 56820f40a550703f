// Sorting a large array of numbers without holding the event loop for long: one sort of a
// million took about 100 ms here. Promises: sortInTurns() returns `keys` sorted ascending (in
// place); it gives the event loop a turn whenever a bucket ends more than `turnMs` after the last
// turn, and never sorts more than one bucket (keys that share floor(key / bucketSpan)) at once.
export async function sortInTurns(keys: Float64Array, bucketSpan: number, turnMs: number): Promise<Float64Array> {
  const counts = new Map<number, number>();
  for (const key of keys) {
    const bucket = Math.floor(key / bucketSpan);
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
  }
  const buckets = [...counts.keys()].sort((a, b) => a - b);
  const starts = new Map<number, number>();
  let at = 0;
  for (const bucket of buckets) {
    starts.set(bucket, at);
    at += counts.get(bucket)!;
  }
  const next = new Map(starts);
  const placed = new Float64Array(keys.length);
  for (const key of keys) {
    const bucket = Math.floor(key / bucketSpan);
    const slot = next.get(bucket)!;
    placed[slot] = key;
    next.set(bucket, slot + 1);
  }
  let turnStartedAt = performance.now();
  for (const bucket of buckets) {
    const start = starts.get(bucket)!;
    placed.subarray(start, start + counts.get(bucket)!).sort();
    if (performance.now() - turnStartedAt >= turnMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      turnStartedAt = performance.now();
    }
  }
  keys.set(placed);
  return keys;
}
