// Creating segment files durably, and the small marker records (SEAL, CLOSE). A new segment
// becomes visible only after its header is on disk: create aside as *.tmp, write the header,
// fdatasync, rename into place, fsync the directory. A crash at any step leaves either no
// segment or a complete empty one, never a name pointing at a half-written header.
import * as path from 'node:path';
import type { FileHandle, FileSystem } from './file-system.ts';
import { segmentFileName, tempFileName } from './file-names.ts';
import { crc32 } from './crc.ts';
import { encodeRecordHeader, encodeSealPayload, RECORD_HEADER_SIZE, RecordType } from './record-format.ts';
import { encodeSegmentHeader, SEGMENT_HEADER_SIZE, SegmentFlag } from './segment-header.ts';

/** Writes `buffers` at `position` and fails on a short write (libuv reports one without an error). */
export async function writeAll(handle: FileHandle, buffers: readonly Uint8Array[], position: number): Promise<number> {
  let expected = 0;
  for (const buffer of buffers) expected += buffer.length;
  const written = await handle.writev(buffers, position);
  if (written !== expected) {
    const error = new Error(`short write: ${written} of ${expected} bytes at offset ${position}`) as NodeJS.ErrnoException;
    error.code = 'ESHORTWRITE';
    throw error;
  }
  return written;
}

/**
 * Synchronous twin of writeAll, for handles that offer writevSync; returns false when the
 * handle has none (the caller then writes asynchronously).
 */
export function writeAllSync(handle: FileHandle, buffers: readonly Uint8Array[], position: number): boolean {
  if (handle.writevSync === undefined) return false;
  let expected = 0;
  for (const buffer of buffers) expected += buffer.length;
  const written = handle.writevSync(buffers, position);
  if (written !== expected) {
    const error = new Error(`short write: ${written} of ${expected} bytes at offset ${position}`) as NodeJS.ErrnoException;
    error.code = 'ESHORTWRITE';
    throw error;
  }
  return true;
}

/** Creates the temp file of a segment and writes its header; the caller fills it, then publishes it. */
export async function createSegmentAside(
  fs: FileSystem,
  directory: string,
  baseLsn: number,
  generation: number,
  coverEndLsn: number,
): Promise<{ handle: FileHandle; tempPath: string; finalPath: string; name: string }> {
  const name = segmentFileName(baseLsn, generation);
  const tempPath = path.join(directory, tempFileName(baseLsn, generation));
  const finalPath = path.join(directory, name);
  // A temp file is never part of the log: one left by an earlier failed attempt is debris.
  await fs.unlink(tempPath).catch(() => undefined);
  const handle = await fs.open(tempPath, 'create');
  try {
    const header = encodeSegmentHeader({ baseLsn, coverEndLsn, flags: coverEndLsn > 0 ? SegmentFlag.compacted : 0 });
    await writeAll(handle, [header], 0);
  } catch (error) {
    await handle.close().catch(() => undefined);
    await fs.unlink(tempPath).catch(() => undefined);
    throw error;
  }
  return { handle, tempPath, finalPath, name };
}

/** fdatasync, rename into place, fsync the directory: the segment now exists after any crash. */
export async function publishSegment(fs: FileSystem, directory: string, handle: FileHandle, tempPath: string, finalPath: string): Promise<void> {
  await handle.datasync();
  await fs.rename(tempPath, finalPath);
  await fs.syncDirectory(directory);
}

/** A new, empty appender segment that is durably in place when this resolves. */
export async function createSegment(fs: FileSystem, directory: string, baseLsn: number): Promise<{ handle: FileHandle; name: string }> {
  const created = await createSegmentAside(fs, directory, baseLsn, 0, 0);
  try {
    await publishSegment(fs, directory, created.handle, created.tempPath, created.finalPath);
  } catch (error) {
    await created.handle.close().catch(() => undefined);
    throw error;
  }
  return { handle: created.handle, name: created.name };
}

/** Encodes a SEAL or CLOSE record. Markers carry the segment's last data LSN and consume none. */
export function encodeMarker(type: typeof RecordType.seal | typeof RecordType.close, lsn: number, durableLsn: number, payload: Buffer): Buffer {
  const bytes = Buffer.allocUnsafe(RECORD_HEADER_SIZE + payload.length);
  encodeRecordHeader(bytes, 0, type, 0, lsn, Math.min(durableLsn, lsn), payload.length, crc32(payload));
  payload.copy(bytes, RECORD_HEADER_SIZE);
  return bytes;
}

export function encodeSeal(dataRecordCount: number, lastLsn: number, durableLsn: number): Buffer {
  return encodeMarker(RecordType.seal, lastLsn, durableLsn, encodeSealPayload(dataRecordCount, lastLsn));
}

export { SEGMENT_HEADER_SIZE };
