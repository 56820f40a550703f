// The queue's log records: one record per job state change, binary-encoded (never JSON of the
// whole job), and the transition rules that hold both when a record is appended and when it is
// replayed (assertTransition is called from both sides). Layout documented in docs/queue.md.
//
//   every record := kind:u8 flags:u8 id:u48 body                         (little-endian)
//   added     body := priority:i32 runAt:f64 createdAt:f64 maxAttempts:u32 timeoutMs:u32
//                     maxStalls:u16 nameLength:u8 reserved:u8 keyLength:u16 backoffDelayMs:f64
//                     backoffJitter:f64 backoffMaxDelayMs:f64 name key data
//                     flags: bits 0-1 data encoding, bit 2 exponential backoff
//   started   body := attempt:u32
//   completed body := attempt:u32 finishedAt:f64 result             flags: bits 0-1 result encoding, bit 2 has result
//   failed    body := attempt:u32 finishedAt:f64 retryAt:f64 nameLength:u8 codeLength:u8
//                     messageLength:u32 stackLength:u32 name code message stack
//                     flags: bit 0 will retry, bit 1 stalled, bit 2 has stack
//   released  body := attempt:u32
//   stalled   body := attempt:u32 stalls:u16
//   removed   body := (empty)
//   snapshot  body := attemptsMade:u32 stalls:u16 reserved:u16 runAt:f64 addedLength:u32
//                     outcomeLength:u32 added outcome              flags: the job's state code
//   meta      body := (empty; id is the lease bound: every id below it may have been handed out)
//
// Evolution: kinds 10-255 are reserved. A new layout gets a new kind (e.g. added2), so an old
// reader fails loudly on an unknown kind instead of misreading fields, and a new reader keeps
// reading the old kinds.
import { assert, fail } from '../engine/assert.ts';
import { BackoffType, type BackoffPolicy } from './retry-policy.ts';
import { writeData, type DataEncoding, type EncodedData, type StoredData } from './job-data.ts';

export const RecordKind = {
  added: 1,
  started: 2,
  completed: 3,
  failed: 4,
  /** Put back to pending by close()'s timeout: neither a stall nor an attempt. */
  released: 5,
  /** Was active when the process died; back to pending with the stall count it carries. */
  stalled: 6,
  removed: 7,
  /** The whole state of one live job (compaction writes these). */
  snapshot: 8,
  /** Id lease: every id below it may have been handed out (also written by compaction). */
  meta: 9,
} as const;
export type RecordKind = (typeof RecordKind)[keyof typeof RecordKind];
const LAST_KIND = RecordKind.meta;

/** A job's state as the index and snapshot records encode it. 0 means "no such job". */
export const StateCode = { none: 0, pending: 1, delayed: 2, active: 3, completed: 4, failed: 5 } as const;
export type StateCode = (typeof StateCode)[keyof typeof StateCode];

export const COMMON_HEADER_SIZE = 8;
export const ADDED_HEADER_SIZE = 66;
const ATTEMPT_RECORD_SIZE = 12;
const STALLED_RECORD_SIZE = 14;
const COMPLETED_HEADER_SIZE = 20;
const FAILED_HEADER_SIZE = 38;
export const SNAPSHOT_HEADER_SIZE = 32;
/** Where an added record keeps its run-at time (f64). */
export const ADDED_RUN_AT_OFFSET = 12;
/** Where a snapshot record keeps the lengths of its added and outcome parts (u32 each). */
export const SNAPSHOT_ADDED_LENGTH_OFFSET = 24;
export const SNAPSHOT_OUTCOME_LENGTH_OFFSET = 28;
/** Largest id a record can carry (u48); far beyond what a queue assigns in its life. */
export const MAX_JOB_ID = 2 ** 48 - 1;
/** Longest job name, in UTF-8 bytes (its length is a u8). */
export const MAX_NAME_BYTES = 255;
/** Longest idempotency key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 1024;
/** Error messages and stacks are cut to this many bytes so one failure cannot bloat the log. */
export const MAX_ERROR_TEXT_BYTES = 16 * 1024;
const MAX_ERROR_NAME_BYTES = 255;

const FLAG_EXPONENTIAL = 0x04;
const FLAG_HAS_RESULT = 0x04;
const FLAG_WILL_RETRY = 0x01;
const FLAG_STALLED = 0x02;
const FLAG_HAS_STACK = 0x04;

assert(ADDED_HEADER_SIZE === COMMON_HEADER_SIZE + 4 + 8 + 8 + 4 + 4 + 2 + 1 + 1 + 2 + 8 + 8 + 8, 'added header layout');
assert(FAILED_HEADER_SIZE === COMMON_HEADER_SIZE + 4 + 8 + 8 + 1 + 1 + 4 + 4, 'failed header layout');
assert(SNAPSHOT_HEADER_SIZE === COMMON_HEADER_SIZE + 4 + 2 + 2 + 8 + 4 + 4, 'snapshot header layout');
assert(MAX_KEY_BYTES < 2 ** 16, 'key length fits in u16');
assert(MAX_JOB_ID <= Number.MAX_SAFE_INTEGER, 'ids are exact JS numbers');

// ---------------------------------------------------------------------------------------------
// Shapes

export interface AddedRecord {
  readonly id: number;
  readonly priority: number;
  readonly runAt: number;
  readonly createdAt: number;
  readonly maxAttempts: number;
  /** 0 means no timeout. */
  readonly timeoutMs: number;
  readonly maxStalls: number;
  readonly backoff: BackoffPolicy;
  readonly name: string;
  /** Empty string means no key. */
  readonly key: string;
  readonly dataEncoding: DataEncoding;
  /** A view into the record's bytes. */
  readonly data: Uint8Array;
}

export interface CompletedRecord {
  readonly id: number;
  readonly attempt: number;
  readonly finishedAt: number;
  /** undefined when the result could not be stored. */
  readonly result: StoredData | undefined;
}

export interface FailedRecord {
  readonly id: number;
  readonly attempt: number;
  readonly finishedAt: number;
  readonly willRetry: boolean;
  /** The job's run-at for its next attempt; 0 when it does not retry. */
  readonly retryAt: number;
  /** Set when the failure is a stall past maxStalls. */
  readonly stalled: boolean;
  readonly errorName: string;
  readonly errorCode: string;
  readonly message: string;
  readonly stack: string | undefined;
}

export interface SnapshotRecord {
  readonly id: number;
  readonly state: StateCode;
  readonly attemptsMade: number;
  readonly stalls: number;
  readonly runAt: number;
  /** The job's added record, whole. */
  readonly added: Uint8Array;
  /** Its last completed or failed record, whole, or empty. */
  readonly outcome: Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Field access shared by every kind

export function recordKind(payload: Uint8Array): number {
  if (!(payload.length >= COMMON_HEADER_SIZE)) fail(`queue record of ${payload.length} bytes is too short`);
  return payload[0]!;
}

export function isKnownKind(kind: number): kind is RecordKind {
  return kind >= RecordKind.added && kind <= LAST_KIND;
}

function asBuffer(payload: Uint8Array): Buffer {
  return Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

export function recordId(payload: Uint8Array): number {
  return asBuffer(payload).readUIntLE(2, 6);
}

/** The attempt field of started/completed/failed/released/stalled records. */
export function recordAttempt(payload: Uint8Array): number {
  return asBuffer(payload).readUInt32LE(COMMON_HEADER_SIZE);
}

function allocRecord(kind: RecordKind, flags: number, id: number, size: number): Buffer {
  if (!(Number.isSafeInteger(id) && id >= 0 && id <= MAX_JOB_ID)) fail(`job id ${id}`);
  const buffer = Buffer.allocUnsafe(size);
  buffer[0] = kind;
  buffer[1] = flags;
  buffer.writeUIntLE(id, 2, 6);
  return buffer;
}

// ---------------------------------------------------------------------------------------------
// added

/** A job's options as an added record stores them. */
export interface AddedOptions {
  readonly priority: number;
  readonly maxAttempts: number;
  /** 0 means no timeout. */
  readonly timeoutMs: number;
  readonly maxStalls: number;
  readonly backoff: BackoffPolicy;
  /** '' means no key. */
  readonly key: string;
}

export function encodeAdded(
  id: number,
  name: string,
  createdAt: number,
  runAt: number,
  options: AddedOptions,
  data: EncodedData,
): Buffer {
  const nameBytes = Buffer.byteLength(name, 'utf8');
  const keyBytes = options.key === '' ? 0 : Buffer.byteLength(options.key, 'utf8');
  if (!(nameBytes >= 1 && nameBytes <= MAX_NAME_BYTES)) fail(`name of ${nameBytes} bytes`);
  if (!(keyBytes <= MAX_KEY_BYTES)) fail(`key of ${keyBytes} bytes`);
  const backoff = options.backoff;
  const flags = data.encoding | (backoff.type === BackoffType.exponential ? FLAG_EXPONENTIAL : 0);
  const size = ADDED_HEADER_SIZE + nameBytes + keyBytes + data.byteLength;
  const buffer = allocRecord(RecordKind.added, flags, id, size);
  buffer.writeInt32LE(options.priority, 8);
  buffer.writeDoubleLE(runAt, 12);
  buffer.writeDoubleLE(createdAt, 20);
  buffer.writeUInt32LE(options.maxAttempts, 28);
  buffer.writeUInt32LE(options.timeoutMs, 32);
  buffer.writeUInt16LE(options.maxStalls, 36);
  buffer[38] = nameBytes;
  buffer[39] = 0;
  buffer.writeUInt16LE(keyBytes, 40);
  buffer.writeDoubleLE(backoff.delayMs, 42);
  buffer.writeDoubleLE(backoff.jitter, 50);
  buffer.writeDoubleLE(backoff.maxDelayMs, 58);
  let offset = ADDED_HEADER_SIZE;
  offset += buffer.write(name, offset, nameBytes, 'utf8');
  if (keyBytes > 0) offset += buffer.write(options.key, offset, keyBytes, 'utf8');
  writeData(buffer, offset, data);
  return buffer;
}

/** The fields replay needs from an added record, read without decoding strings or data. */
export function addedPriority(payload: Buffer): number {
  return payload.readInt32LE(8);
}
export function addedRunAt(payload: Buffer): number {
  return payload.readDoubleLE(ADDED_RUN_AT_OFFSET);
}
/** The key, or '' when the job has none. */
export function addedKey(payload: Buffer): string {
  const keyBytes = payload.readUInt16LE(40);
  if (keyBytes === 0) return '';
  const start = ADDED_HEADER_SIZE + payload[38]!;
  return payload.toString('utf8', start, start + keyBytes);
}

export function decodeAdded(payload: Uint8Array): AddedRecord {
  const buffer = asBuffer(payload);
  if (buffer[0] !== RecordKind.added) fail(`expected an added record, got kind ${buffer[0]}`);
  if (!(buffer.length >= ADDED_HEADER_SIZE)) fail(`added record of ${buffer.length} bytes`);
  const flags = buffer[1]!;
  const nameBytes = buffer[38]!;
  const keyBytes = buffer.readUInt16LE(40);
  const nameStart = ADDED_HEADER_SIZE;
  const keyStart = nameStart + nameBytes;
  const dataStart = keyStart + keyBytes;
  assert(dataStart <= buffer.length, 'added record strings overrun the record');
  return {
    id: buffer.readUIntLE(2, 6),
    priority: buffer.readInt32LE(8),
    runAt: buffer.readDoubleLE(ADDED_RUN_AT_OFFSET),
    createdAt: buffer.readDoubleLE(20),
    maxAttempts: buffer.readUInt32LE(28),
    timeoutMs: buffer.readUInt32LE(32),
    maxStalls: buffer.readUInt16LE(36),
    backoff: {
      type: flags & FLAG_EXPONENTIAL ? BackoffType.exponential : BackoffType.fixed,
      delayMs: buffer.readDoubleLE(42),
      jitter: buffer.readDoubleLE(50),
      maxDelayMs: buffer.readDoubleLE(58),
    },
    name: buffer.toString('utf8', nameStart, keyStart),
    key: keyBytes === 0 ? '' : buffer.toString('utf8', keyStart, dataStart),
    dataEncoding: (flags & 0x03) as DataEncoding,
    data: buffer.subarray(dataStart),
  };
}

// ---------------------------------------------------------------------------------------------
// started, released, stalled, removed, meta

export function encodeStarted(id: number, attempt: number): Buffer {
  const buffer = allocRecord(RecordKind.started, 0, id, ATTEMPT_RECORD_SIZE);
  buffer.writeUInt32LE(attempt, 8);
  return buffer;
}

export function encodeReleased(id: number, attempt: number): Buffer {
  const buffer = allocRecord(RecordKind.released, 0, id, ATTEMPT_RECORD_SIZE);
  buffer.writeUInt32LE(attempt, 8);
  return buffer;
}

export function encodeStalled(id: number, attempt: number, stalls: number): Buffer {
  const buffer = allocRecord(RecordKind.stalled, 0, id, STALLED_RECORD_SIZE);
  buffer.writeUInt32LE(attempt, 8);
  buffer.writeUInt16LE(stalls, 12);
  return buffer;
}

export function stalledCount(payload: Buffer): number {
  return payload.readUInt16LE(12);
}

export function encodeRemoved(id: number): Buffer {
  return allocRecord(RecordKind.removed, 0, id, COMMON_HEADER_SIZE);
}

export function encodeMeta(leaseBound: number): Buffer {
  return allocRecord(RecordKind.meta, 0, leaseBound, COMMON_HEADER_SIZE);
}

// ---------------------------------------------------------------------------------------------
// completed

export function encodeCompleted(id: number, attempt: number, finishedAt: number, result: EncodedData | undefined): Buffer {
  const flags = result === undefined ? 0 : result.encoding | FLAG_HAS_RESULT;
  const resultBytes = result === undefined ? 0 : result.byteLength;
  const buffer = allocRecord(RecordKind.completed, flags, id, COMPLETED_HEADER_SIZE + resultBytes);
  buffer.writeUInt32LE(attempt, 8);
  buffer.writeDoubleLE(finishedAt, 12);
  if (result !== undefined) writeData(buffer, COMPLETED_HEADER_SIZE, result);
  return buffer;
}

export function completedFinishedAt(payload: Buffer): number {
  return payload.readDoubleLE(12);
}

export function decodeCompleted(payload: Uint8Array): CompletedRecord {
  const buffer = asBuffer(payload);
  if (buffer[0] !== RecordKind.completed) fail(`expected a completed record, got kind ${buffer[0]}`);
  const flags = buffer[1]!;
  return {
    id: buffer.readUIntLE(2, 6),
    attempt: buffer.readUInt32LE(8),
    finishedAt: buffer.readDoubleLE(12),
    result:
      flags & FLAG_HAS_RESULT
        ? { encoding: (flags & 0x03) as DataEncoding, bytes: buffer.subarray(COMPLETED_HEADER_SIZE) }
        : undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// failed

/** What encodeFailed takes: the record's fixed fields, and the thrown value its error fields come from. */
export type FailedFields = Pick<FailedRecord, 'id' | 'attempt' | 'finishedAt' | 'willRetry' | 'retryAt' | 'stalled'> & {
  readonly error: unknown;
};

/** Cuts `text` to at most `maxBytes` of UTF-8 without splitting a character. */
function truncateUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text, 'utf8') <= maxBytes) return text;
  const bytes = Buffer.from(text, 'utf8');
  let end = maxBytes;
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return bytes.toString('utf8', 0, end);
}

/** Whatever was thrown, as the strings a failed record stores. */
export function describeError(error: unknown): { name: string; code: string; message: string; stack: string | undefined } {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return {
      name: truncateUtf8(error.name, MAX_ERROR_NAME_BYTES),
      code: typeof code === 'string' ? truncateUtf8(code, MAX_ERROR_NAME_BYTES) : '',
      message: truncateUtf8(error.message, MAX_ERROR_TEXT_BYTES),
      stack: typeof error.stack === 'string' ? truncateUtf8(error.stack, MAX_ERROR_TEXT_BYTES) : undefined,
    };
  }
  let message: string;
  try {
    message = String(error);
  } catch {
    message = Object.prototype.toString.call(error);
  }
  return { name: 'Error', code: '', message: truncateUtf8(message, MAX_ERROR_TEXT_BYTES), stack: undefined };
}

export function encodeFailed(fields: FailedFields): Buffer {
  const error = describeError(fields.error);
  const nameBytes = Buffer.byteLength(error.name, 'utf8');
  const codeBytes = Buffer.byteLength(error.code, 'utf8');
  const messageBytes = Buffer.byteLength(error.message, 'utf8');
  const stackBytes = error.stack === undefined ? 0 : Buffer.byteLength(error.stack, 'utf8');
  const flags =
    (fields.willRetry ? FLAG_WILL_RETRY : 0) |
    (fields.stalled ? FLAG_STALLED : 0) |
    (error.stack === undefined ? 0 : FLAG_HAS_STACK);
  const size = FAILED_HEADER_SIZE + nameBytes + codeBytes + messageBytes + stackBytes;
  const buffer = allocRecord(RecordKind.failed, flags, fields.id, size);
  buffer.writeUInt32LE(fields.attempt, 8);
  buffer.writeDoubleLE(fields.finishedAt, 12);
  buffer.writeDoubleLE(fields.willRetry ? fields.retryAt : 0, 20);
  buffer[28] = nameBytes;
  buffer[29] = codeBytes;
  buffer.writeUInt32LE(messageBytes, 30);
  buffer.writeUInt32LE(stackBytes, 34);
  let offset = FAILED_HEADER_SIZE;
  offset += buffer.write(error.name, offset, nameBytes, 'utf8');
  offset += buffer.write(error.code, offset, codeBytes, 'utf8');
  offset += buffer.write(error.message, offset, messageBytes, 'utf8');
  if (error.stack !== undefined) buffer.write(error.stack, offset, stackBytes, 'utf8');
  return buffer;
}

export function failedWillRetry(payload: Buffer): boolean {
  return (payload[1]! & FLAG_WILL_RETRY) !== 0;
}
export function failedStalled(payload: Buffer): boolean {
  return (payload[1]! & FLAG_STALLED) !== 0;
}
export function failedFinishedAt(payload: Buffer): number {
  return payload.readDoubleLE(12);
}
export function failedRetryAt(payload: Buffer): number {
  return payload.readDoubleLE(20);
}

export function decodeFailed(payload: Uint8Array): FailedRecord {
  const buffer = asBuffer(payload);
  if (buffer[0] !== RecordKind.failed) fail(`expected a failed record, got kind ${buffer[0]}`);
  const flags = buffer[1]!;
  const nameStart = FAILED_HEADER_SIZE;
  const codeStart = nameStart + buffer[28]!;
  const messageStart = codeStart + buffer[29]!;
  const stackStart = messageStart + buffer.readUInt32LE(30);
  const end = stackStart + buffer.readUInt32LE(34);
  assert(end <= buffer.length, 'failed record strings overrun the record');
  return {
    id: buffer.readUIntLE(2, 6),
    attempt: buffer.readUInt32LE(8),
    finishedAt: buffer.readDoubleLE(12),
    willRetry: (flags & FLAG_WILL_RETRY) !== 0,
    retryAt: buffer.readDoubleLE(20),
    stalled: (flags & FLAG_STALLED) !== 0,
    errorName: buffer.toString('utf8', nameStart, codeStart),
    errorCode: buffer.toString('utf8', codeStart, messageStart),
    message: buffer.toString('utf8', messageStart, stackStart),
    stack: flags & FLAG_HAS_STACK ? buffer.toString('utf8', stackStart, end) : undefined,
  };
}

// ---------------------------------------------------------------------------------------------
// snapshot

/** What encodeSnapshot takes: a snapshot record without its id (it comes from the added record). */
export type SnapshotFields = Omit<SnapshotRecord, 'id'>;

/** The snapshot's state, without its parts: what a compaction writes in front of the copied records. */
export type SnapshotState = Omit<SnapshotFields, 'added' | 'outcome'>;

/**
 * Writes the SNAPSHOT_HEADER_SIZE bytes that precede a snapshot's parts into `target` at
 * `offset`. Compaction writes them in front of the added and outcome records it copies.
 */
export function encodeSnapshotHeader(target: Buffer, offset: number, id: number, state: SnapshotState, addedLength: number, outcomeLength: number): void {
  if (state.state === StateCode.none) fail('a snapshot is of a live job');
  if (!(Number.isSafeInteger(id) && id >= 0 && id <= MAX_JOB_ID)) fail(`job id ${id}`);
  // DataView stores: compaction writes one header per job that needs a snapshot, and Buffer's
  // write methods (with their range checks) cost several times the stores.
  const view = new DataView(target.buffer, target.byteOffset + offset, SNAPSHOT_HEADER_SIZE);
  view.setUint8(0, RecordKind.snapshot);
  view.setUint8(1, state.state);
  view.setUint32(2, id % 0x1_0000_0000, true);
  view.setUint16(6, Math.floor(id / 0x1_0000_0000), true);
  view.setUint32(8, state.attemptsMade, true);
  view.setUint16(12, state.stalls, true);
  view.setUint16(14, 0, true);
  view.setFloat64(16, state.runAt, true);
  view.setUint32(SNAPSHOT_ADDED_LENGTH_OFFSET, addedLength, true);
  view.setUint32(SNAPSHOT_OUTCOME_LENGTH_OFFSET, outcomeLength, true);
}

/** Encodes a snapshot record. */
export function encodeSnapshot(fields: SnapshotFields): Buffer {
  const buffer = Buffer.allocUnsafe(SNAPSHOT_HEADER_SIZE + fields.added.length + fields.outcome.length);
  encodeSnapshotHeader(buffer, 0, recordId(fields.added), fields, fields.added.length, fields.outcome.length);
  buffer.set(fields.added, SNAPSHOT_HEADER_SIZE);
  buffer.set(fields.outcome, SNAPSHOT_HEADER_SIZE + fields.added.length);
  return buffer;
}

export function decodeSnapshot(payload: Uint8Array): SnapshotRecord {
  const buffer = asBuffer(payload);
  if (buffer[0] !== RecordKind.snapshot) fail(`expected a snapshot record, got kind ${buffer[0]}`);
  const addedLength = buffer.readUInt32LE(SNAPSHOT_ADDED_LENGTH_OFFSET);
  const outcomeLength = buffer.readUInt32LE(SNAPSHOT_OUTCOME_LENGTH_OFFSET);
  const addedEnd = SNAPSHOT_HEADER_SIZE + addedLength;
  assert(addedEnd + outcomeLength <= buffer.length, 'snapshot parts overrun the record');
  return {
    id: buffer.readUIntLE(2, 6),
    state: buffer[1]! as StateCode,
    attemptsMade: buffer.readUInt32LE(8),
    stalls: buffer.readUInt16LE(12),
    runAt: buffer.readDoubleLE(16),
    added: buffer.subarray(SNAPSHOT_HEADER_SIZE, addedEnd),
    outcome: buffer.subarray(addedEnd, addedEnd + outcomeLength),
  };
}

/** The added record inside an added or snapshot record: where a job's name and data live. */
export function addedPart(payload: Uint8Array): Uint8Array {
  return payload[0] === RecordKind.snapshot ? decodeSnapshot(payload).added : payload;
}

/** The completed/failed record inside a completed, failed or snapshot record (empty if none). */
export function outcomePart(payload: Uint8Array): Uint8Array {
  return payload[0] === RecordKind.snapshot ? decodeSnapshot(payload).outcome : payload;
}

// ---------------------------------------------------------------------------------------------
// Transitions

const ALLOWED_FROM: Record<RecordKind, readonly StateCode[]> = {
  [RecordKind.added]: [StateCode.none],
  [RecordKind.snapshot]: [StateCode.none],
  // A delayed job that became due is promoted to pending in memory only, so replay may see a
  // started record for a job it still holds as delayed.
  [RecordKind.started]: [StateCode.pending, StateCode.delayed],
  [RecordKind.completed]: [StateCode.active],
  [RecordKind.failed]: [StateCode.active],
  [RecordKind.released]: [StateCode.active],
  [RecordKind.stalled]: [StateCode.active],
  [RecordKind.removed]: [StateCode.pending, StateCode.delayed, StateCode.completed, StateCode.failed],
  [RecordKind.meta]: [StateCode.none],
};

const KINDS_WITH_ATTEMPT: ReadonlySet<number> = new Set([
  RecordKind.started,
  RecordKind.completed,
  RecordKind.failed,
  RecordKind.released,
  RecordKind.stalled,
]);

/**
 * Checks that a record of `kind` may apply to a job in state `from` that has used
 * `attemptsMade` attempts. Called before a record is appended and again when it is replayed,
 * so a writer bug and a log that does not match the rules both stop at the same check.
 * `attempt` is the record's attempt field (ignored for kinds without one).
 */
export function assertTransition(kind: RecordKind, from: StateCode, attemptsMade: number, attempt: number): void {
  if (!ALLOWED_FROM[kind].includes(from)) fail(`record kind ${kind} cannot apply to a job in state ${from}`);
  // Invariant: every run of a job is attempt attemptsMade + 1; stalls and releases do not use one up.
  if (KINDS_WITH_ATTEMPT.has(kind)) {
    if (attempt !== attemptsMade + 1) fail(`record kind ${kind} for attempt ${attempt}, expected ${attemptsMade + 1}`);
  }
}
