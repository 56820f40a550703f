// The pacer holds a rewrite to its byte rate only while appends are being synced.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { BUSY_WINDOW_MS, RewritePacer } from '../../src/engine/rewrite-pacer.ts';

const MiB = 1024 * 1024;

describe('RewritePacer', () => {
  it('never waits while no append has been synced, nor with no rate', () => {
    const idle = new RewritePacer(1 * MiB, 7, 0);
    for (let t = 0; t < 1000; t += 10) expect(idle.delay(64 * MiB, 7, t)).toBe(0);
    const unlimited = new RewritePacer(Infinity, 0, 0);
    for (let t = 0; t < 1000; t += 10) expect(unlimited.delay(64 * MiB, t, t)).toBe(0);
  });

  it('while appends sync, lets through no more than its rate over any span, plus one burst', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 200 }).map((mb) => mb * 1e6),
        fc.array(fc.record({ bytes: fc.integer({ min: 1, max: 4 * MiB }), gapMs: fc.double({ min: 0, max: 20, noNaN: true }) }), { minLength: 1, maxLength: 200 }),
        (rate, flushes) => {
          const pacer = new RewritePacer(rate, 0, 0);
          let now = 0;
          let syncs = 0;
          const written: { at: number; bytes: number }[] = [];
          for (const flush of flushes) {
            now += flush.gapMs;
            syncs++; // an append was synced before every flush: always busy
            now += pacer.delay(flush.bytes, syncs, now); // the caller waits, then writes
            written.push({ at: now, bytes: flush.bytes });
          }
          // Over every span [first write, a later write], the bytes written after the first
          // stay within the rate (the first write of a span is the burst it may start with).
          for (let i = 0; i < written.length; i++) {
            let bytes = 0;
            for (let j = i + 1; j < written.length; j++) {
              bytes += written[j]!.bytes;
              expect(bytes).toBeLessThanOrEqual(((written[j]!.at - written[i]!.at) / 1000) * rate + rate * 0.02 + 1);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps pacing while an append waits for a sync longer than the window', () => {
    const pacer = new RewritePacer(1e6, 0, 0);
    expect(pacer.delay(1e6, 1, 0)).toBeGreaterThan(900);
    // No sync completed for 500 ms, but one is awaited all along (a slow fdatasync).
    expect(pacer.delay(1e6, 1, 1000 + 5 * BUSY_WINDOW_MS, true)).toBeGreaterThan(400);
    // Once nothing is awaited and the window has passed: full speed.
    expect(pacer.delay(1e6, 1, 3000 + 5 * BUSY_WINDOW_MS)).toBe(0);
  });

  it('goes back to full speed once no append has been synced for a while', () => {
    const pacer = new RewritePacer(1e6, 0, 0);
    expect(pacer.delay(1e6, 1, 0)).toBeGreaterThan(900); // a sync was seen: 1 MB at 1 MB/s
    expect(pacer.delay(1e6, 1, 1000 + BUSY_WINDOW_MS)).toBe(0);
    expect(pacer.delay(1e6, 2, 2000)).toBeGreaterThan(900); // appends sync again
  });
});
