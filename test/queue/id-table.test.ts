// The id→slot table against a plain Map, over random adds (increasing ids, as enqueue hands
// them out, and some out of order, as snapshot records may) and deletes in any order, including
// the pages that go sparse and move their last ids into the overflow map.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { IdTable } from '../../src/queue/id-table.ts';

describe('id table', () => {
  it('finds, adds and removes like a Map', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom('add', 'add', 'addOld', 'delete', 'deleteOldest'), fc.nat(), fc.integer({ min: 1, max: 3000 })), {
          maxLength: 3000,
        }),
        (operations) => {
          const table = new IdTable();
          const model = new Map<number, number>();
          let nextId = 1;
          for (const [operation, pick, step] of operations) {
            if (operation === 'add') {
              nextId += step % 7 === 0 ? step : 1;
              table.set(nextId, pick % 1000);
              model.set(nextId, pick % 1000);
            } else if (operation === 'addOld') {
              const id = (pick % nextId) + 1;
              if (model.has(id)) continue;
              table.set(id, 7);
              model.set(id, 7);
            } else {
              const ids = [...model.keys()];
              if (ids.length === 0) continue;
              const id = operation === 'deleteOldest' ? Math.min(...ids) : ids[pick % ids.length]!;
              expect(table.delete(id)).toBe(true);
              model.delete(id);
            }
            expect(table.size).toBe(model.size);
          }
          for (let id = 1; id <= nextId + 1; id++) expect(table.get(id)).toBe(model.get(id) ?? -1);
          // Compaction lists live jobs in id order from here: pages and sparse ids interleaved.
          const inIdOrder = [...model.keys()].sort((a, b) => a - b).map((id) => model.get(id)!);
          expect([...table.slotsInIdOrder()]).toEqual(inIdOrder);
          expect(table.delete(nextId + 5)).toBe(false);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('keeps a scattered survivor after most of its page is gone, and huge ids', () => {
    const table = new IdTable();
    for (let id = 1; id <= 5000; id++) table.set(id, id);
    for (let id = 1; id <= 5000; id++) if (id !== 1500) table.delete(id);
    expect(table.size).toBe(1);
    expect(table.get(1500)).toBe(1500);
    table.set(2 ** 47 + 3, 9);
    expect(table.get(2 ** 47 + 3)).toBe(9);
    expect(table.get(2 ** 47 + 4)).toBe(-1);
  });

  it('lists slots in id order when a dropped page is made again by an older id', () => {
    const table = new IdTable();
    for (let id = 1; id <= 20; id++) table.set(id, 100 + id);
    table.set(3000, 5);
    // The first page goes sparse (its ids move to the overflow map), then an older id makes it again.
    for (let id = 1; id <= 18; id++) table.delete(id);
    table.set(10, 7);
    table.set(30, 8);
    expect([...table.slotsInIdOrder()]).toEqual([7, 119, 120, 8, 5]);
  });
});
