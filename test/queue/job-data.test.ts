// Job data encoding: JSON values and raw bytes round-trip; what JSON would silently change or
// cannot carry is refused with a TypeError.
import { describe, expect, it } from 'vitest';
import { DataEncoding, decodeData, encodeData, encodeResult, writeData, type EncodedData } from '../../src/queue/job-data.ts';

/** The bytes a record would hold for `data`. */
function stored(data: EncodedData): Buffer {
  const bytes = Buffer.alloc(data.byteLength);
  writeData(bytes, 0, data);
  return bytes;
}

describe('job data', () => {
  it('round-trips JSON values, bytes (as a Buffer) and undefined', () => {
    for (const value of [{ a: [1, 'x', null, true] }, 'tëxt', 0, null, []]) {
      const encoded = encodeData(value);
      expect(encoded.encoding).toBe(DataEncoding.json);
      expect(decodeData(encoded.encoding, stored(encoded))).toEqual(value);
      expect(encoded.byteLength).toBe(Buffer.byteLength(JSON.stringify(value)));
    }
    const bytes = encodeData(new Uint8Array([1, 2, 3]));
    expect(bytes.encoding).toBe(DataEncoding.bytes);
    const back = decodeData(bytes.encoding, stored(bytes));
    expect(Buffer.isBuffer(back)).toBe(true);
    expect([...(back as Buffer)]).toEqual([1, 2, 3]);
    const none = encodeData(undefined);
    expect(decodeData(none.encoding, stored(none))).toBeUndefined();
  });

  it('refuses BigInt, cycles, functions and symbols with a TypeError', () => {
    const cycle: Record<string, unknown> = {};
    cycle['self'] = cycle;
    expect(() => encodeData({ n: 1n })).toThrow(TypeError);
    expect(() => encodeData(cycle)).toThrow(TypeError);
    expect(() => encodeData({ f: () => 1 })).toThrow(/function at key "f"/);
    expect(() => encodeData([Symbol('s')])).toThrow(TypeError);
    expect(() => encodeData(() => 1)).toThrow(/top level/);
    expect(() => encodeData({ deep: [{ ok: 1 }, { f: Symbol('s') }] })).toThrow(/symbol at key "f"/);
  });

  it('accepts what JSON serialises faithfully: toJSON results, dates, inherited methods', () => {
    class Point {
      x = 1;
      norm(): number {
        return this.x;
      }
    }
    const withToJSON = { secret: () => 1, toJSON: () => ({ shown: true }) };
    const back = (value: unknown) => {
      const encoded = encodeData(value);
      return decodeData(encoded.encoding, stored(encoded));
    };
    expect(back(withToJSON)).toEqual({ shown: true });
    expect(back({ at: new Date(0) })).toEqual({ at: '1970-01-01T00:00:00.000Z' });
    expect(back(new Point())).toEqual({ x: 1 });
  });

  it('stores no result instead of failing when a result cannot be serialised', () => {
    expect(encodeResult({ n: 1n })).toBeUndefined();
    expect(encodeResult(5)?.encoding).toBe(DataEncoding.json);
  });
});
