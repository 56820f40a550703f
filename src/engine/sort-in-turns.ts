// Sorting many integer keys without holding the event loop for long: one Float64Array.sort of a
// million log locations took about 100 ms here. Up to NATIVE_SORT_KEYS keys (about 5 ms per
// 60,000) the native sort runs in one go; above, an LSD radix sort, 16 bits per pass, gives the
// event loop a turn between passes (it is not faster: ~90 ms for a million, in three parts).
// Promises: sortInTurns() sorts `keys` ascending in place; every key must be an integer in
// [0, 2^48) (a log location ranked by segment).
import { Turns } from './turns.ts';

const DIGIT_BITS = 16;
const DIGITS = 1 << DIGIT_BITS;
const LOW_SPAN = 2 ** 32;
const NATIVE_SORT_KEYS = 200_000;

/** One stable counting pass: `order` by digit ((values[i] >>> shift) & 0xffff) into `into`. */
function radixPass(order: Uint32Array, into: Uint32Array, values: Uint32Array, shift: number, counts: Int32Array): void {
  const n = order.length;
  counts.fill(0);
  for (let at = 0; at < n; at++) counts[(values[order[at]!]! >>> shift) & 0xffff]!++;
  let sum = 0;
  for (let d = 0; d < DIGITS; d++) {
    const count = counts[d]!;
    counts[d] = sum;
    sum += count;
  }
  for (let at = 0; at < n; at++) {
    const index = order[at]!;
    into[counts[(values[index]! >>> shift) & 0xffff]!++] = index;
  }
}

/** Thrown from a call, not a template string in the loops: that boxed every key (see JobIndex.relocateCaptured). */
function badKey(key: number): never {
  throw new RangeError(`sort key ${key} is not an integer in [0, 2^48)`);
}

export async function sortInTurns(keys: Float64Array, turnMs: number): Promise<Float64Array> {
  const n = keys.length;
  if (n < 2) return keys;
  if (n <= NATIVE_SORT_KEYS) {
    for (const key of keys) if (!(Number.isInteger(key) && key >= 0 && key < 2 ** 48)) badKey(key);
    return keys.sort();
  }
  const low = new Uint32Array(n);
  const high = new Uint32Array(n);
  let highest = 0;
  for (let at = 0; at < n; at++) {
    const key = keys[at]!;
    if (!(Number.isInteger(key) && key >= 0 && key < 2 ** 48)) badKey(key);
    const top = Math.floor(key / LOW_SPAN);
    high[at] = top;
    low[at] = key - top * LOW_SPAN;
    if (top > highest) highest = top;
  }
  let order = new Uint32Array(n);
  for (let at = 0; at < n; at++) order[at] = at;
  let spare = new Uint32Array(n);
  const counts = new Int32Array(DIGITS);
  const passes: [Uint32Array, number][] = [[low, 0], [low, DIGIT_BITS]];
  if (highest > 0) passes.push([high, 0]);
  const turns = new Turns(turnMs);
  for (const [values, shift] of passes) {
    radixPass(order, spare, values, shift, counts);
    [order, spare] = [spare, order];
    await turns.give();
  }
  const sorted = new Float64Array(n);
  for (let at = 0; at < n; at++) sorted[at] = keys[order[at]!]!;
  keys.set(sorted);
  return keys;
}
