// The in-memory index on its own (no log): dispatch order, delayed promotion, retention by count
// and age, idempotency keys, and the replay mode that builds heaps at the end. BLERO_VERIFY=1
// makes every finishReplay also run the whole-structure check.
import { describe, expect, it } from 'vitest';
import { JobIndex } from '../../src/queue/job-index.ts';
import { StateCode } from '../../src/queue/job-records.ts';

const keepAll = { completed: { count: Infinity, ageMs: Infinity }, failed: { count: Infinity, ageMs: Infinity } };

function liveIndex(retention = keepAll): JobIndex {
  const index = new JobIndex(retention);
  index.finishReplay(0);
  return index;
}

function drain(index: JobIndex): number[] {
  const ids: number[] = [];
  for (let slot = index.startNext(); slot !== -1; slot = index.startNext()) ids.push(index.id(slot));
  return ids;
}

describe('job index', () => {
  it('hands out higher priorities first and equal priorities in id order', () => {
    const index = liveIndex();
    const priorities = [0, 5, 0, -1, 5, 10, 0];
    priorities.forEach((priority, at) => index.add(at + 1, priority, 0, at, '', 0));
    expect(drain(index)).toEqual([6, 2, 5, 1, 3, 7, 4]);
    expect(index.counts()).toMatchObject({ pending: 0, active: 7 });
  });

  it('keeps delayed jobs out of dispatch until promoteDue reaches their run-at, earliest first', () => {
    const index = liveIndex();
    index.add(1, 0, 300, 0, '', 100);
    index.add(2, 0, 200, 0, '', 100);
    index.add(3, 9, 200, 0, '', 100);
    expect(index.counts()).toMatchObject({ pending: 0, delayed: 3 });
    expect(index.nextDueAt()).toBe(200);
    expect(index.promoteDue(250)).toBe(2);
    expect(drain(index)).toEqual([3, 2]);
    expect(index.nextDueAt()).toBe(300);
  });

  it('evicts the oldest finished jobs past the count limit, in finish order', () => {
    const index = liveIndex({ completed: { count: 2, ageMs: Infinity }, failed: { count: 1, ageMs: Infinity } });
    for (let id = 1; id <= 5; id++) index.add(id, 0, 0, id, '', 0);
    const slots = [1, 2, 3, 4, 5].map(() => index.startNext());
    index.completed(slots[2]!, 10, 0);
    index.completed(slots[0]!, 11, 0);
    index.failed(slots[1]!, 12, 0, false);
    index.completed(slots[4]!, 13, 0);
    index.failed(slots[3]!, 14, 0, false);
    expect(index.slotOf(3)).toBe(-1);
    expect(index.slotOf(2)).toBe(-1);
    expect([1, 5, 4].map((id) => index.state(index.slotOf(id)))).toEqual([StateCode.completed, StateCode.completed, StateCode.failed]);
    expect(index.counts()).toMatchObject({ completed: 2, failed: 1, active: 0 });
    index.check();
  });

  it('evicts finished jobs once they are older than the age limit', () => {
    const index = liveIndex({ completed: { count: Infinity, ageMs: 100 }, failed: { count: Infinity, ageMs: Infinity } });
    index.add(1, 0, 0, 0, '', 0);
    index.add(2, 0, 0, 0, '', 0);
    index.completed(index.startNext(), 1000, 0);
    index.completed(index.startNext(), 1050, 0);
    expect(index.nextExpiryAt()).toBe(1100);
    index.evictExpired(1099);
    expect(index.counts().completed).toBe(2);
    index.evictExpired(1100);
    expect(index.slotOf(1)).toBe(-1);
    expect(index.nextExpiryAt()).toBe(1150);
  });

  it('holds a key while the job waits or runs and frees it when the job finishes', () => {
    const index = liveIndex();
    index.add(1, 0, 0, 0, 'k', 0);
    expect(index.idForKey('k')).toBe(1);
    const slot = index.startNext();
    expect(index.idForKey('k')).toBe(1);
    index.completed(slot, 1, 0);
    expect(index.idForKey('k')).toBeUndefined();
  });

  it('counts attempts on completion and failure but not on a requeue', () => {
    const index = liveIndex();
    index.add(1, 0, 0, 0, '', 0);
    let slot = index.startNext();
    index.retrying(slot, 0, 7, 0);
    expect(index.attemptsMade(slot)).toBe(1);
    expect(index.outcomeLocation(slot)).toBe(7);
    slot = index.startNext();
    index.requeued(slot, 1, 0);
    expect([index.attemptsMade(slot), index.stalls(slot), index.state(slot)]).toEqual([1, 1, StateCode.pending]);
    slot = index.startNext();
    index.completed(slot, 5, 9);
    expect(index.attemptsMade(slot)).toBe(2);
  });

  it('in replay mode tracks states only, then builds both heaps from them', () => {
    const index = new JobIndex(keepAll);
    for (let id = 1; id <= 6; id++) index.add(id, id % 2, id === 6 ? 5000 : 0, id, '', 0);
    index.markStarted(index.slotOf(3));
    index.markStarted(index.slotOf(4));
    index.completed(index.slotOf(4), 10, 0);
    expect(index.activeSlots().map((slot) => index.id(slot))).toEqual([3]);
    index.requeued(index.slotOf(3), 1, 0);
    index.finishReplay(1000);
    expect(index.counts()).toEqual({ pending: 4, delayed: 1, active: 0, completed: 1, failed: 0 });
    expect(drain(index)).toEqual([1, 3, 5, 2]);
    expect(index.nextId).toBe(7);
  });

  it('reuses freed slots and grows past its initial capacity', () => {
    const index = liveIndex({ completed: { count: 0, ageMs: Infinity }, failed: { count: 0, ageMs: Infinity } });
    for (let id = 1; id <= 3000; id++) index.add(id, 0, 0, id, '', 0);
    for (let round = 0; round < 3000; round++) index.completed(index.startNext(), round, 0);
    expect(index.size).toBe(0);
    for (let id = 3001; id <= 6000; id++) index.add(id, 0, 0, id, '', 0);
    expect(index.counts().pending).toBe(3000);
    index.check();
  });
});
