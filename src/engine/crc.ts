// CRC-32 (IEEE 802.3, the zlib/PNG polynomial) for record checksums. The `crc-32` package
// provides the table; crc32Range runs slice-by-8 over a byte range without creating a view
// (replay checks two ranges per record, and views cost more than the checksum). Node's
// zlib.crc32 (native, same polynomial) wins from about 1 KiB up, so large inputs use it when
// this Node has it. All give identical values (tested), so the format never depends on which ran.
import CRC32 from 'crc-32';
import * as zlib from 'node:zlib';

const nativeCrc32: ((data: Uint8Array, value?: number) => number) | undefined = (
  zlib as unknown as { crc32?: (data: Uint8Array, value?: number) => number }
).crc32;

const NATIVE_THRESHOLD_BYTES = 1024;

// T[k][b]: the CRC of byte b followed by k zero bytes; T[0] is the package's table.
const T = new Int32Array(8 * 256);
T.set((CRC32 as unknown as { table: ArrayLike<number> }).table, 0);
for (let b = 0; b < 256; b++) {
  for (let k = 1; k < 8; k++) {
    const previous = T[(k - 1) * 256 + b]!;
    T[k * 256 + b] = (previous >>> 8) ^ T[previous & 0xff]!;
  }
}

/** Unsigned CRC-32 of `bytes[start..end)`. */
export function crc32Range(bytes: Uint8Array, start: number, end: number): number {
  if (nativeCrc32 !== undefined && end - start >= NATIVE_THRESHOLD_BYTES) {
    return nativeCrc32(bytes.subarray(start, end)) >>> 0;
  }
  let crc = -1;
  let i = start;
  for (const last = end - 7; i < last; i += 8) {
    const a = crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    crc =
      T[1792 + (a & 0xff)]! ^
      T[1536 + ((a >>> 8) & 0xff)]! ^
      T[1280 + ((a >>> 16) & 0xff)]! ^
      T[1024 + (a >>> 24)]! ^
      T[768 + bytes[i + 4]!]! ^
      T[512 + bytes[i + 5]!]! ^
      T[256 + bytes[i + 6]!]! ^
      T[bytes[i + 7]!]!;
  }
  for (; i < end; i++) crc = (crc >>> 8) ^ T[(crc ^ bytes[i]!) & 0xff]!;
  return ~crc >>> 0;
}

/** Unsigned CRC-32 of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  return crc32Range(bytes, 0, bytes.length);
}

/** CRC-32 computed by the package's own routine only; tests compare it with crc32(). */
export function crc32Portable(bytes: Uint8Array): number {
  return CRC32.buf(bytes) >>> 0;
}

// Combining checksums: CRC-32 is linear over GF(2), so crc(A ‖ B) = M(len B)·crc(A) ⊕ crc(B),
// where M(n) multiplies by x^(8n) modulo the polynomial (zlib's crc32_combine). Compaction uses
// it to give a copied record the checksum its source bytes already had instead of computing a
// fresh one over them: a fresh checksum over damaged bytes would make the damage look valid.
const POLYNOMIAL = 0xedb88320;

/** a·b modulo the CRC polynomial, both in the reflected bit order CRC-32 uses. */
function multiplyModP(a: number, b: number): number {
  let m = 0x80000000;
  let product = 0;
  for (;;) {
    if ((a & m) !== 0) {
      product ^= b;
      if ((a & (m - 1)) === 0) break;
    }
    m >>>= 1;
    b = b & 1 ? (b >>> 1) ^ POLYNOMIAL : b >>> 1;
  }
  return product >>> 0;
}

// X2N[k] = x^(2^k) mod P.
const X2N = new Uint32Array(32);
X2N[0] = 0x40000000; // x^1
for (let k = 1; k < 32; k++) X2N[k] = multiplyModP(X2N[k - 1]!, X2N[k - 1]!);

/** x^(8·length) mod P: the operator that shifts a CRC past `length` bytes. */
function shiftOperator(length: number): number {
  let operator = 0x80000000; // x^0
  let k = 3; // 8 = 2^3
  for (let n = length; n > 0; n = Math.floor(n / 2), k++) {
    if (n % 2 === 1) operator = multiplyModP(X2N[k & 31]!, operator);
  }
  return operator;
}

// Records of one queue come in a handful of lengths; computing an operator costs ~log2(length) products.
const operators = new Map<number, number>();
const MAX_CACHED_OPERATORS = 4096;

function cachedShiftOperator(length: number): number {
  let operator = operators.get(length);
  if (operator === undefined) {
    if (operators.size >= MAX_CACHED_OPERATORS) operators.clear();
    operator = shiftOperator(length);
    operators.set(length, operator);
  }
  return operator;
}

/** CRC-32 of A ‖ B from crc(A), crc(B) and B's length, without reading either. */
export function crc32Combine(crcA: number, crcB: number, lengthB: number): number {
  return (multiplyModP(cachedShiftOperator(lengthB), crcA >>> 0) ^ crcB) >>> 0;
}

/**
 * CRC-32 of B from crc(A ‖ B), crc(A) and B's length: the inverse of crc32Combine for a known
 * prefix. Since crc(A ‖ B) = M·crc(A) ⊕ crc(B), crc(B) = M·crc(A) ⊕ crc(A ‖ B): the same
 * combination, with crc(A ‖ B) in the place of crc(B).
 */
export function crc32WithoutPrefix(crcWhole: number, crcPrefix: number, lengthB: number): number {
  return crc32Combine(crcPrefix, crcWhole, lengthB);
}
