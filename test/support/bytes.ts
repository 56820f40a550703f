// Byte-level damage for recovery tests: each helper edits a file in place on the real disk.
import { readFileSync, writeFileSync, truncateSync, readdirSync } from 'node:fs';
import * as path from 'node:path';

export function flipByte(file: string, offset: number, mask = 0xff): void {
  const bytes = readFileSync(file);
  if (offset >= bytes.length) throw new RangeError(`offset ${offset} past ${bytes.length}`);
  bytes[offset] = bytes[offset]! ^ mask;
  writeFileSync(file, bytes);
}

export function truncateAt(file: string, length: number): void {
  truncateSync(file, length);
}

export function appendBytes(file: string, extra: Uint8Array): void {
  writeFileSync(file, Buffer.concat([readFileSync(file), extra]));
}

export function zeroRange(file: string, from: number, to: number): void {
  const bytes = readFileSync(file);
  bytes.fill(0, from, to);
  writeFileSync(file, bytes);
}

/** Segment files of a log directory, oldest first. */
export function segmentFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => /^seg-\d{20}-\d{6}\.log$/.test(name))
    .sort()
    .map((name) => path.join(dir, name));
}

export function fileSize(file: string): number {
  return readFileSync(file).length;
}
