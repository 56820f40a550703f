// Job data and job results as bytes: JSON text for plain values, raw bytes for Uint8Array and
// Buffer (handed back as a Buffer), nothing for undefined. Refuses what JSON cannot carry
// faithfully (BigInt, cycles, functions, symbols) with a TypeError, before anything is written.

export const DataEncoding = { json: 0, bytes: 1, undefined: 2 } as const;
export type DataEncoding = (typeof DataEncoding)[keyof typeof DataEncoding];

/** Data ready to be written into a record: JSON text (written as UTF-8 in place) or raw bytes. */
export interface EncodedData {
  readonly encoding: DataEncoding;
  /** The JSON text, or '' for bytes and undefined. */
  readonly text: string;
  /** The raw bytes, or undefined for JSON and undefined. */
  readonly bytes: Uint8Array | undefined;
  /** Bytes the data takes in the record. */
  readonly byteLength: number;
}

/** Data as read back from a record: a view of its bytes. */
export interface StoredData {
  readonly encoding: DataEncoding;
  readonly bytes: Uint8Array;
}

const NO_DATA: EncodedData = { encoding: DataEncoding.undefined, text: '', bytes: undefined, byteLength: 0 };

// JSON.stringify drops functions and symbols silently (and turns a top-level one into
// undefined); a job whose data quietly lost a field would be worse than a refused enqueue. A
// replacer function would catch them but takes V8 off its fast path (twice as slow for small
// objects), so the value is walked separately, after stringify has refused BigInt and cycles.
// The walk sees what stringify sees: own enumerable string keys, and toJSON results.
function refuseNonJson(value: unknown, key: string): void {
  const type = typeof value;
  if (type === 'function' || type === 'symbol') {
    throw new TypeError(`${type} at ${key === '' ? 'the top level' : `key "${key}"`} is not JSON-serialisable`);
  }
  if (type !== 'object' || value === null) return;
  const toJSON = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') {
    refuseNonJson(toJSON.call(value, key), key);
    return;
  }
  if (Array.isArray(value)) {
    for (let at = 0; at < value.length; at++) refuseNonJson(value[at], String(at));
    return;
  }
  for (const name in value) {
    if (Object.hasOwn(value, name)) refuseNonJson((value as Record<string, unknown>)[name], name);
  }
}

/**
 * Encodes job data. Throws TypeError for BigInt, cycles, functions and symbols (JSON.stringify
 * itself throws for the first two). `what` names the value in messages.
 */
export function encodeData(value: unknown, what = 'data'): EncodedData {
  if (value === undefined) return NO_DATA;
  if (value instanceof Uint8Array) return { encoding: DataEncoding.bytes, text: '', bytes: value, byteLength: value.length };
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
    if (typeof value === 'object' || text === undefined) refuseNonJson(value, '');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new TypeError(`${what} is not JSON-serialisable: ${reason}`, { cause: error });
  }
  if (text === undefined) throw new TypeError(`${what} is not JSON-serialisable: ${typeof value} at the top level`);
  return { encoding: DataEncoding.json, text, bytes: undefined, byteLength: Buffer.byteLength(text, 'utf8') };
}

/** Writes `data` at `offset` of `target`, which has room for data.byteLength bytes. */
export function writeData(target: Buffer, offset: number, data: EncodedData): void {
  if (data.bytes !== undefined) target.set(data.bytes, offset);
  else if (data.byteLength > 0) target.write(data.text, offset, data.byteLength, 'utf8');
}

/**
 * Encodes a processor's result, or returns undefined when it cannot be stored: a result is
 * kept only when it is serialisable, and an unserialisable one must not fail a job that ran.
 */
export function encodeResult(value: unknown): EncodedData | undefined {
  try {
    return encodeData(value, 'result');
  } catch {
    return undefined;
  }
}

/** Decodes what encodeData wrote. Bytes come back as a Buffer copy, independent of `source`. */
export function decodeData(encoding: number, source: Uint8Array): unknown {
  switch (encoding) {
    case DataEncoding.undefined:
      return undefined;
    case DataEncoding.bytes:
      return Buffer.from(source);
    case DataEncoding.json:
      return JSON.parse(Buffer.from(source.buffer, source.byteOffset, source.byteLength).toString('utf8'));
    default:
      throw new RangeError(`unknown data encoding ${encoding}`);
  }
}
