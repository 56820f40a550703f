// CopyMap: where runs of copied records went. Checked against a per-record model.
import { describe, expect, it } from 'vitest';
import { CopyMap } from '../../src/engine/copy-map.ts';
import { packLocation } from '../../src/engine/recovery.ts';

describe('CopyMap', () => {
  it('finds every record inside a run at its distance from the run start, and nothing else', () => {
    const map = new CopyMap();
    const model = new Map<number, number>();
    let to = packLocation(9, 32);
    // Runs in two segments, segment 4 after segment 2 in log order but lower in numbers.
    for (const [ordinal, starts] of [[7, [32, 500, 501, 2000]], [2, [32, 64, 900]]] as const) {
      for (const start of starts) {
        const bytes = 1 + (start % 5);
        if ([...model.keys()].some((from) => from >= packLocation(ordinal, start) && from < packLocation(ordinal, start + bytes))) continue;
        map.add(packLocation(ordinal, start), to, bytes, 1);
        for (let k = 0; k < bytes; k++) model.set(packLocation(ordinal, start + k), to + k);
        to += bytes;
      }
    }
    for (const ordinal of [2, 7, 3]) {
      for (let offset = 0; offset < 2100; offset++) {
        const location = packLocation(ordinal, offset);
        expect(map.find(location), `${ordinal}:${offset}`).toBe(model.get(location) ?? -1);
      }
    }
    // Lookups out of order (backwards) give the same answers.
    for (const location of [...model.keys()].reverse()) expect(map.find(location)).toBe(model.get(location));
  });

  it('refuses a run that starts before the end of the previous one of its segment', () => {
    const map = new CopyMap();
    map.add(packLocation(1, 100), 0, 50, 2);
    expect(() => map.add(packLocation(1, 120), 60, 10, 1)).toThrow();
    expect(map.records).toBe(2);
  });
});
