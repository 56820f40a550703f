// The queue's record encoding: every kind round-trips through encode/decode, replay reads the
// fixed fields without decoding, and assertTransition refuses what the state machine forbids.
import { describe, expect, it } from 'vitest';
import { AssertionError } from '../../src/engine/assert.ts';
import { DataEncoding, encodeData } from '../../src/queue/job-data.ts';
import {
  ADDED_HEADER_SIZE,
  RecordKind,
  StateCode,
  addedKey,
  addedPart,
  addedPriority,
  addedRunAt,
  assertTransition,
  decodeAdded,
  decodeCompleted,
  decodeFailed,
  decodeSnapshot,
  encodeAdded,
  encodeCompleted,
  encodeFailed,
  encodeMeta,
  encodeReleased,
  encodeRemoved,
  encodeSnapshot,
  encodeStalled,
  encodeStarted,
  outcomePart,
  recordAttempt,
  recordId,
  recordKind,
  stalledCount,
} from '../../src/queue/job-records.ts';
import { BackoffType } from '../../src/queue/retry-policy.ts';

const added = {
  id: 2 ** 40 + 7,
  priority: -5,
  maxAttempts: 4,
  timeoutMs: 30_000,
  maxStalls: 2,
  backoff: { type: BackoffType.exponential, delayMs: 250, jitter: 0.5, maxDelayMs: Infinity },
  name: 'resize-ünïcode',
  key: 'user:42',
};
const runAt = 1_700_000_000_123.5;
const createdAt = 1_700_000_000_000;
const data = encodeData({ width: 100, tags: ['a', 'b'] });

function encode(options: typeof added, payload = data) {
  return encodeAdded(options.id, options.name, createdAt, runAt, options, payload);
}

describe('job records', () => {
  it('round-trips an added record and lets replay read its fixed fields without decoding', () => {
    const record = encode(added);
    expect(recordKind(record)).toBe(RecordKind.added);
    expect(recordId(record)).toBe(added.id);
    expect(addedPriority(record)).toBe(-5);
    expect(addedRunAt(record)).toBe(runAt);
    expect(addedKey(record)).toBe('user:42');
    const decoded = decodeAdded(record);
    expect(decoded).toMatchObject({
      id: added.id,
      priority: -5,
      runAt,
      createdAt,
      maxAttempts: 4,
      timeoutMs: 30_000,
      maxStalls: 2,
      backoff: added.backoff,
      name: 'resize-ünïcode',
      key: 'user:42',
      dataEncoding: DataEncoding.json,
    });
    expect(JSON.parse(Buffer.from(decoded.data).toString())).toEqual({ width: 100, tags: ['a', 'b'] });
    expect(record.length).toBe(ADDED_HEADER_SIZE + Buffer.byteLength(added.name) + 7 + decoded.data.length);
  });

  it('stores raw bytes as they are and an absent key as an empty string', () => {
    const record = encode({ ...added, key: '' }, encodeData(Buffer.from([0, 255, 1])));
    const decoded = decodeAdded(record);
    expect(decoded.key).toBe('');
    expect(addedKey(record)).toBe('');
    expect(decoded.dataEncoding).toBe(DataEncoding.bytes);
    expect([...decoded.data]).toEqual([0, 255, 1]);
  });

  it('round-trips the attempt records', () => {
    expect(recordAttempt(encodeStarted(9, 3))).toBe(3);
    expect(recordKind(encodeReleased(9, 3))).toBe(RecordKind.released);
    const stalled = encodeStalled(9, 3, 2);
    expect([recordId(stalled), recordAttempt(stalled), stalledCount(stalled)]).toEqual([9, 3, 2]);
    expect(recordId(encodeRemoved(77))).toBe(77);
    expect(recordId(encodeMeta(1234))).toBe(1234);
  });

  it('round-trips completed records with and without a result', () => {
    const withResult = decodeCompleted(encodeCompleted(5, 1, 123, encodeData({ ok: true })));
    expect(withResult).toMatchObject({ id: 5, attempt: 1, finishedAt: 123 });
    expect(JSON.parse(Buffer.from(withResult.result!.bytes).toString())).toEqual({ ok: true });
    expect(decodeCompleted(encodeCompleted(5, 1, 123, undefined)).result).toBeUndefined();
  });

  it('round-trips failed records and cuts huge messages without splitting characters', () => {
    const error = Object.assign(new TypeError('é'.repeat(20_000)), { code: 'E_X' });
    const failed = decodeFailed(encodeFailed({ id: 5, attempt: 2, finishedAt: 10, willRetry: true, retryAt: 99, stalled: false, error }));
    expect(failed).toMatchObject({ id: 5, attempt: 2, finishedAt: 10, willRetry: true, retryAt: 99, stalled: false, errorName: 'TypeError', errorCode: 'E_X' });
    expect(Buffer.byteLength(failed.message)).toBeLessThanOrEqual(16 * 1024);
    expect(failed.message).toMatch(/^é+$/);
    expect(failed.stack).toContain('TypeError');
    const thrownString = decodeFailed(encodeFailed({ id: 5, attempt: 1, finishedAt: 1, willRetry: false, retryAt: 0, stalled: true, error: 'plain' }));
    expect(thrownString).toMatchObject({ errorName: 'Error', message: 'plain', stack: undefined, stalled: true, retryAt: 0 });
  });

  it('wraps a job and its last outcome in a snapshot record that replay and reads can unwrap', () => {
    const addedRecord = encode(added);
    const outcome = encodeCompleted(added.id, 2, 500, encodeData('done'));
    const snapshot = encodeSnapshot({ state: StateCode.completed, attemptsMade: 2, stalls: 1, runAt: 400, added: addedRecord, outcome });
    const decoded = decodeSnapshot(snapshot);
    expect(decoded).toMatchObject({ id: added.id, state: StateCode.completed, attemptsMade: 2, stalls: 1, runAt: 400 });
    expect(Buffer.from(addedPart(snapshot)).equals(addedRecord)).toBe(true);
    expect(Buffer.from(outcomePart(snapshot)).equals(outcome)).toBe(true);
  });

  it('allows only the transitions of the job state machine, with attempt fencing', () => {
    expect(() => assertTransition(RecordKind.added, StateCode.none, 0, 0)).not.toThrow();
    expect(() => assertTransition(RecordKind.added, StateCode.pending, 0, 0)).toThrow(AssertionError);
    expect(() => assertTransition(RecordKind.started, StateCode.pending, 0, 1)).not.toThrow();
    expect(() => assertTransition(RecordKind.started, StateCode.delayed, 2, 3)).not.toThrow();
    expect(() => assertTransition(RecordKind.started, StateCode.pending, 0, 2)).toThrow(AssertionError);
    expect(() => assertTransition(RecordKind.started, StateCode.active, 0, 1)).toThrow(AssertionError);
    expect(() => assertTransition(RecordKind.completed, StateCode.active, 1, 2)).not.toThrow();
    expect(() => assertTransition(RecordKind.completed, StateCode.active, 1, 1)).toThrow(AssertionError);
    expect(() => assertTransition(RecordKind.completed, StateCode.pending, 1, 2)).toThrow(AssertionError);
    expect(() => assertTransition(RecordKind.failed, StateCode.completed, 0, 1)).toThrow(AssertionError);
    expect(() => assertTransition(RecordKind.released, StateCode.active, 0, 1)).not.toThrow();
    expect(() => assertTransition(RecordKind.stalled, StateCode.delayed, 0, 1)).toThrow(AssertionError);
    expect(() => assertTransition(RecordKind.removed, StateCode.completed, 3, 0)).not.toThrow();
    expect(() => assertTransition(RecordKind.removed, StateCode.active, 0, 0)).toThrow(AssertionError);
  });
});
