// A capture of the job index reads what every slot held when it was taken, whatever the index
// does afterwards: jobs added (into freed slots and past the columns' capacity, which makes the
// index outgrow the arrays the capture shares), started, completed, failed, retried, requeued,
// promoted, evicted and relocated. Checked against values read slot by slot at the capture,
// over random runs.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JobIndex } from '../../src/queue/job-index.ts';
import type { IndexCapture } from '../../src/queue/index-capture.ts';

interface SlotValues {
  id: number;
  state: number;
  runAt: number;
  location: number;
  outcomeLocation: number;
  stalls: number;
  attemptsMade: number;
  atSnapshot: number;
  needsSnapshot: number;
}

function read(capture: IndexCapture, slot: number): SlotValues {
  return {
    id: capture.id(slot),
    state: capture.state(slot),
    runAt: capture.runAt(slot),
    location: capture.location(slot),
    outcomeLocation: capture.outcomeLocation(slot),
    stalls: capture.stalls(slot),
    attemptsMade: capture.attemptsMade(slot),
    atSnapshot: capture.atSnapshot(slot),
    needsSnapshot: capture.needsSnapshot(slot),
  };
}

const OPERATIONS = ['add', 'add', 'start', 'complete', 'fail', 'retry', 'requeue', 'promote', 'evict', 'relocate'] as const;

describe('index capture', () => {
  it('reads every slot as it was at the capture while the index changes and grows', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1500 }),
        fc.array(fc.tuple(fc.constantFrom(...OPERATIONS), fc.nat()), { minLength: 1, maxLength: 3000 }),
        (before, operations) => {
          // Few retained jobs, so evictions free slots that later adds reuse.
          const index = new JobIndex({ completed: { count: 5, ageMs: 1000 }, failed: { count: 5, ageMs: 1000 } });
          index.finishReplay(0);
          let now = 0;
          let location = 1;
          const apply = (operation: (typeof OPERATIONS)[number], pick: number): void => {
            now += 10;
            const active = index.activeSlots();
            const someActive = active.length > 0 ? active[pick % active.length]! : -1;
            switch (operation) {
              case 'add':
                index.add(index.reserveId(), 0, pick % 3 === 0 ? now + 50 : 0, location++, '', now, 20);
                break;
              case 'start':
                index.startNext();
                break;
              case 'complete':
                if (someActive !== -1) index.completed(someActive, now, location++, 10);
                break;
              case 'fail':
                if (someActive !== -1) index.failed(someActive, now, location++, pick % 2 === 0, 10);
                break;
              case 'retry':
                if (someActive !== -1) index.retrying(someActive, now + 30, location++, now, 10);
                break;
              case 'requeue':
                if (someActive !== -1) index.requeued(someActive, pick % 3, now);
                break;
              case 'promote':
                index.promoteDue(now);
                break;
              case 'evict':
                index.evictExpired(now);
                break;
              case 'relocate':
                if (someActive !== -1) index.relocate(someActive, location++, index.outcomeLocation(someActive), pick % 2 === 0);
                break;
            }
          };
          for (let at = 0; at < before; at++) apply(operations[at % operations.length]![0], operations[at % operations.length]![1] + at);
          const capture = index.capture();
          const expected = Array.from({ length: capture.highWater }, (_, slot) => read(capture, slot));
          for (const [operation, pick] of operations) apply(operation, pick);
          for (let slot = 0; slot < capture.highWater; slot++) expect(read(capture, slot)).toEqual(expected[slot]);
          // The index's own check agrees (BLERO_VERIFY compares with a copy taken at the capture).
          index.checkCapture(capture);
          index.endCapture(capture);
          index.check();
        },
      ),
      { numRuns: 60 },
    );
  });

  it('reads the columns as they were after the index outgrew them, for slots changed before and after', () => {
    const index = new JobIndex({ completed: { count: Infinity, ageMs: Infinity }, failed: { count: Infinity, ageMs: Infinity } });
    index.finishReplay(0);
    for (let id = 1; id <= 1000; id++) index.add(index.reserveId(), 0, 0, id, '', 0);
    const capture = index.capture();
    const expected = Array.from({ length: capture.highWater }, (_, slot) => read(capture, slot));
    // Changed before the columns grow, then after (1024 slots at first; 6,000 more jobs grow them twice).
    const completed: number[] = [];
    for (let n = 0; n < 100; n++) {
      const slot = index.startNext();
      index.completed(slot, n, 5000 + n);
      completed.push(slot);
    }
    for (let id = 1; id <= 6000; id++) index.add(index.reserveId(), 0, 0, 10_000 + id, '', 0);
    for (let n = 0; n < 100; n++) index.failed(index.startNext(), n, 20_000 + n, true);
    // Changed again after the growth: still saved once, with the values of the cut.
    for (const slot of completed) index.relocate(slot, 30_000 + slot, index.outcomeLocation(slot), true);
    for (let slot = 0; slot < capture.highWater; slot++) expect(read(capture, slot)).toEqual(expected[slot]);
    expect(capture.savedSlots).toBe(200);
    index.endCapture(capture);
  });

  it('stops saving slots once the capture ends, and allows one capture at a time', () => {
    const index = new JobIndex({ completed: { count: Infinity, ageMs: Infinity }, failed: { count: Infinity, ageMs: Infinity } });
    index.finishReplay(0);
    for (let id = 1; id <= 10; id++) index.add(index.reserveId(), 0, 0, id, '', 0);
    const capture = index.capture();
    expect(() => index.capture()).toThrow(/already open/);
    index.completed(index.startNext(), 1, 100);
    expect(capture.savedSlots).toBe(1);
    index.endCapture(capture);
    index.completed(index.startNext(), 2, 101);
    expect(capture.savedSlots).toBe(1);
    const next = index.capture();
    expect(next.epoch).toBeGreaterThan(capture.epoch);
    index.endCapture(next);
  });
});
