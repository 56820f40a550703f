// Turns: long work gives the event loop a turn once a slice has run its time, and not before.
import { describe, expect, it } from 'vitest';
import { Turns } from '../../src/engine/turns.ts';

describe('Turns', () => {
  it('gives the event loop a turn once the slice is due, and starts a new slice', async () => {
    const turns = new Turns(0);
    expect(turns.due).toBe(true);
    let ran = false;
    setImmediate(() => (ran = true));
    await turns.give();
    expect(ran).toBe(true);
  });

  it('gives no turn before the slice is due; yield() gives one at once and starts a new slice', async () => {
    const turns = new Turns(60_000);
    expect(turns.due).toBe(false);
    let ran = false;
    setImmediate(() => (ran = true));
    await turns.give();
    expect(ran).toBe(false);
    await turns.yield();
    expect(ran).toBe(true);
    turns.restart();
    expect(turns.due).toBe(false);
  });
});
