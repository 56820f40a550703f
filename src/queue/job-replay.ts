// Rebuilds the job index from the log, one record at a time, as Log.open hands them over. Every
// record passes the same assertTransition the writer ran before appending it. Only the fixed
// fields replay needs are read (no name, no data, no JSON), and only the location of each job's
// records is kept, so replay of a large backlog is fast and holds no payloads.
import { CorruptionError } from '../errors.ts';
import { JobIndex } from './job-index.ts';
import {
  RecordKind,
  StateCode,
  addedKey,
  addedPriority,
  addedRunAt,
  assertTransition,
  completedFinishedAt,
  decodeCompleted,
  decodeFailed,
  decodeSnapshot,
  failedFinishedAt,
  failedRetryAt,
  failedStalled,
  failedWillRetry,
  isKnownKind,
  recordAttempt,
  recordId,
  recordKind,
  stalledCount,
} from './job-records.ts';

/**
 * Applies one replayed record to `index`. `now` decides pending versus delayed (finishReplay
 * decides again at the end). Throws CorruptionError for a record kind this version does not
 * know (a newer blero wrote it), and AssertionError for a record that breaks the transition
 * rules.
 */
export function replayRecord(index: JobIndex, payload: Buffer, location: number, now: number, directory: string): void {
  const kind = recordKind(payload);
  if (!isKnownKind(kind)) {
    throw new CorruptionError(directory, location, 'unknown-queue-record', `queue record kind ${kind} is unknown to this version`);
  }
  const id = recordId(payload);
  if (kind === RecordKind.meta) {
    index.noteLease(id);
    return;
  }
  if (kind === RecordKind.added) {
    // Invariant: enqueue assigns ids in the order it appends, so added records replay in id order.
    assertAddedOrder(index, id, location, directory);
    assertTransition(kind, StateCode.none, 0, 0);
    index.add(id, addedPriority(payload), addedRunAt(payload), location, addedKey(payload), now, payload.length);
    return;
  }
  if (kind === RecordKind.snapshot) {
    replaySnapshot(index, payload, location, now);
    return;
  }
  const slot = index.slotOf(id);
  const from = slot === -1 ? StateCode.none : index.state(slot);
  const attemptsMade = slot === -1 ? 0 : index.attemptsMade(slot);
  const attempt = kind === RecordKind.removed ? 0 : recordAttempt(payload);
  assertTransition(kind, from, attemptsMade, attempt);
  switch (kind) {
    case RecordKind.started:
      index.markStarted(slot);
      return;
    case RecordKind.completed:
      index.completed(slot, completedFinishedAt(payload), location, payload.length);
      return;
    case RecordKind.failed:
      if (failedWillRetry(payload)) index.retrying(slot, failedRetryAt(payload), location, now, payload.length);
      else index.failed(slot, failedFinishedAt(payload), location, failedStalled(payload), payload.length);
      return;
    case RecordKind.released:
      index.requeued(slot, index.stalls(slot), now);
      return;
    case RecordKind.stalled:
      index.requeued(slot, stalledCount(payload), now);
      return;
    case RecordKind.removed:
      index.removed(slot);
      return;
  }
}

function assertAddedOrder(index: JobIndex, id: number, location: number, directory: string): void {
  if (id < index.nextId) {
    throw new CorruptionError(directory, location, 'queue-id-order', `added record for job ${id} below next id ${index.nextId}`);
  }
}

function replaySnapshot(index: JobIndex, payload: Buffer, location: number, now: number): void {
  const snapshot = decodeSnapshot(payload);
  assertTransition(RecordKind.snapshot, index.slotOf(snapshot.id) === -1 ? StateCode.none : StateCode.pending, 0, 0);
  const added = Buffer.from(snapshot.added.buffer, snapshot.added.byteOffset, snapshot.added.byteLength);
  let finishedAt = 0;
  if (snapshot.outcome.length > 0) {
    finishedAt =
      snapshot.outcome[0] === RecordKind.completed
        ? decodeCompleted(snapshot.outcome).finishedAt
        : decodeFailed(snapshot.outcome).finishedAt;
  }
  index.restore(
    snapshot.id,
    snapshot.state,
    {
      priority: addedPriority(added),
      runAt: snapshot.runAt,
      attemptsMade: snapshot.attemptsMade,
      stalls: snapshot.stalls,
      key: addedKey(added),
      finishedAt,
    },
    location,
    snapshot.outcome.length > 0,
    now,
    { addedBytes: snapshot.added.length, outcomeBytes: snapshot.outcome.length },
  );
}
