// CRC-32 (IEEE 802.3, the zlib/PNG polynomial) for record checksums. The `crc-32` package is
// fastest for small buffers; Node's zlib.crc32 (native, same polynomial) wins from about 1 KiB
// up, so large payloads use it when this Node has it. Both give identical values (tested), so
// the on-disk format never depends on which one ran.
import CRC32 from 'crc-32';
import * as zlib from 'node:zlib';

const nativeCrc32: ((data: Uint8Array, value?: number) => number) | undefined = (
  zlib as unknown as { crc32?: (data: Uint8Array, value?: number) => number }
).crc32;

const NATIVE_THRESHOLD_BYTES = 1024;

/** Unsigned CRC-32 of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  if (nativeCrc32 !== undefined && bytes.length >= NATIVE_THRESHOLD_BYTES) return nativeCrc32(bytes) >>> 0;
  return CRC32.buf(bytes) >>> 0;
}

/** CRC-32 computed by the pure-JS package only; tests compare it with crc32(). */
export function crc32Portable(bytes: Uint8Array): number {
  return CRC32.buf(bytes) >>> 0;
}
