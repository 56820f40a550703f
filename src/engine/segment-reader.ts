// Streams the records of one segment file in order, checking every checksum, in large chunks
// (replay runs on every start-up, so it must not pay a syscall per record). The scanner only
// reports where the valid prefix ends and what the first bad bytes look like; whether that is
// a torn tail or corruption is decided by recovery.ts, which knows where the segment sits.
import type { FileHandle } from './file-system.ts';
import { crc32Range } from './crc.ts';
import { decodeRecordHeader, decodeRecordHeaderInto, emptyRecordHeader, RECORD_HEADER_SIZE } from './record-format.ts';
import type { RecordHeader } from './record-format.ts';

export const DEFAULT_SCAN_CHUNK_BYTES = 4 * 1024 * 1024;

/** What the first bytes that do not form a valid record look like. */
export type ScanDamage =
  /** Fewer than a header's bytes remain before EOF. */
  | 'short-header'
  /** The header checksum fails, or its fields are impossible. The length cannot be trusted. */
  | 'header-crc'
  /** A valid header whose payload runs past EOF. */
  | 'payload-past-eof'
  /** A valid header, but the payload does not match its checksum. */
  | 'payload-crc';

/**
 * Called per valid record; `header` is reused for the next record and `payload` is a view valid only during the call (or until the
 * returned promise settles: the scan waits for it). Return false to stop.
 */
export type RecordVisitor = (header: RecordHeader, payload: Buffer, offset: number) => boolean | void | Promise<boolean | void>;

export interface ScanResult {
  /** Offset just past the last valid record visited (where an append would go). */
  readonly endOffset: number;
  /** Why the scan stopped before EOF; undefined when it reached EOF cleanly or the visitor stopped it. */
  readonly damage: ScanDamage | undefined;
  /** True when the visitor returned false. */
  readonly stopped: boolean;
}

/** Reads exactly `length` bytes at `position` (into `target` from `targetOffset`) unless EOF comes first; returns the count read. */
export async function readFully(handle: FileHandle, target: Buffer, length: number, position: number, targetOffset = 0): Promise<number> {
  let done = 0;
  while (done < length) {
    const n = await handle.read(target, targetOffset + done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * Records up to this size that straddle two chunks are carried into the next chunk by a copy;
 * the next chunk is then already being read while the visitor works through this one.
 */
const CARRY_BYTES = 64 * 1024;

/**
 * Visits valid records from `startOffset` until EOF (`fileSize`), the first damage, or the
 * visitor stopping. Memory stays bounded by the chunk size, or by the largest record, which
 * is bounded by the file size: a length field is trusted only after its header checksum holds
 * and only if the payload fits before EOF.
 */
export async function scanSegment(
  handle: FileHandle,
  fileSize: number,
  startOffset: number,
  visit: RecordVisitor,
  chunkBytes = DEFAULT_SCAN_CHUNK_BYTES,
): Promise<ScanResult> {
  // Two buffers when the file spans several chunks: one being visited, one being read ahead.
  // Each holds CARRY_BYTES of room in front of the chunk for the tail of a straddling record.
  const twoBuffers = fileSize - startOffset > chunkBytes;
  const bufferBytes = twoBuffers ? CARRY_BYTES + chunkBytes : Math.min(chunkBytes, Math.max(fileSize - startOffset, RECORD_HEADER_SIZE));
  let buffer = Buffer.allocUnsafe(bufferBytes);
  let spare = twoBuffers ? Buffer.allocUnsafe(bufferBytes) : undefined;
  let bufferStart = startOffset; // file offset of buffer[0] (may lie before startOffset: the carry room)
  let bufferEnd = startOffset; // file offset just past the valid bytes in buffer
  let position = startOffset;
  const header = emptyRecordHeader();
  /** The read of the chunk that starts at bufferEnd into `spare`, from CARRY_BYTES on. */
  let ahead: Promise<number> | undefined;

  const readAhead = (): void => {
    if (spare === undefined || bufferEnd >= fileSize) return;
    ahead = readFully(handle, spare, Math.min(chunkBytes, fileSize - bufferEnd), bufferEnd, CARRY_BYTES);
  };

  const ensure = async (needed: number): Promise<void> => {
    if (position + needed <= bufferEnd) return;
    const carried = bufferEnd - position;
    if (ahead !== undefined) {
      const read = ahead;
      ahead = undefined;
      const got = await read;
      if (carried <= CARRY_BYTES && carried + got >= Math.min(needed, fileSize - position)) {
        const next = spare!;
        buffer.copy(next, CARRY_BYTES - carried, position - bufferStart, bufferEnd - bufferStart);
        spare = buffer;
        buffer = next;
        bufferStart = position - (CARRY_BYTES - carried);
        bufferEnd += got;
        readAhead();
        return;
      }
    }
    // A record larger than what the chunks hold, or no read ahead: read from the record's start
    // (no read is in flight now: ahead was awaited above).
    if (needed > buffer.length) {
      buffer = Buffer.allocUnsafe(Math.max(needed, bufferBytes));
      if (spare !== undefined) spare = Buffer.allocUnsafe(buffer.length);
    }
    const got = await readFully(handle, buffer, Math.min(buffer.length, fileSize - position), position);
    bufferStart = position;
    bufferEnd = position + got;
    readAhead();
  };

  try {
    while (position < fileSize) {
      if (fileSize - position < RECORD_HEADER_SIZE) return { endOffset: position, damage: 'short-header', stopped: false };
      // ensure() only when the chunk is used up: an await per record would cost a microtask turn each.
      if (position + RECORD_HEADER_SIZE > bufferEnd) await ensure(RECORD_HEADER_SIZE);
      if (bufferEnd - position < RECORD_HEADER_SIZE) return { endOffset: position, damage: 'short-header', stopped: false };
      const at = position - bufferStart;
      if (!decodeRecordHeaderInto(buffer, at, header)) return { endOffset: position, damage: 'header-crc', stopped: false };
      const total = RECORD_HEADER_SIZE + header.payloadLength;
      if (position + total > fileSize) return { endOffset: position, damage: 'payload-past-eof', stopped: false };
      if (position + total > bufferEnd) await ensure(total);
      if (bufferEnd - position < total) return { endOffset: position, damage: 'payload-past-eof', stopped: false };
      const payloadStart = position - bufferStart + RECORD_HEADER_SIZE;
      const payloadEnd = payloadStart + header.payloadLength;
      if (crc32Range(buffer, payloadStart, payloadEnd) !== header.payloadCrc) return { endOffset: position, damage: 'payload-crc', stopped: false };
      let keepGoing = visit(header, buffer.subarray(payloadStart, payloadEnd), position);
      if (typeof keepGoing === 'object') keepGoing = await keepGoing;
      position += total;
      if (keepGoing === false) return { endOffset: position, damage: undefined, stopped: true };
    }
    return { endOffset: position, damage: undefined, stopped: false };
  } finally {
    // The caller may close the handle once we return: let no read of it outlive the scan.
    if (ahead !== undefined) await ahead.catch(() => undefined);
  }
}

/**
 * Looks for the first fully valid record that starts after `fromOffset` (byte by byte), the way
 * recovery tells a torn tail from damage that later synced records vouch for. Bounded by the
 * file size; only used on the damaged tail of the last segment.
 */
export async function findNextValidRecord(
  handle: FileHandle,
  fileSize: number,
  fromOffset: number,
  accept: (header: RecordHeader) => boolean,
): Promise<{ header: RecordHeader; offset: number } | undefined> {
  const length = fileSize - fromOffset;
  if (length < RECORD_HEADER_SIZE) return undefined;
  const bytes = Buffer.allocUnsafe(length);
  const got = await readFully(handle, bytes, length, fromOffset);
  for (let at = 1; at + RECORD_HEADER_SIZE <= got; at++) {
    const header = decodeRecordHeader(bytes, at);
    if (header === undefined || !accept(header)) continue;
    const end = at + RECORD_HEADER_SIZE + header.payloadLength;
    if (end > got) continue;
    if (crc32Range(bytes, at + RECORD_HEADER_SIZE, end) !== header.payloadCrc) continue;
    return { header, offset: fromOffset + at };
  }
  return undefined;
}
