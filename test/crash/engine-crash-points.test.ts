// A crash at every single disk operation of a short scripted workload, in 'sync' and 'none'
// modes. The script covers open (creating the first segment), appends, an atomic group,
// segment rolls (4 KiB segments), two full rewrites (the second also rewrites the first's
// output, and keeps nothing), and close. It runs sequentially, so after d completed steps the
// only legal states are "after step d" and "after step d + 1" (the step in flight).
//
// Method: count the script's operations once; then for every k from 0 to that count, run it
// on a disk that crashes after k operations, crash that disk as three seeded power cuts and as
// a process crash, reopen each, and assert:
// - reopen succeeds (a torn tail is cut, never reported as corruption);
// - the replay equals the state after step d or after step d + 1 (for a power cut in 'none'
//   mode: any prefix on a group boundary that keeps everything fdatasync'ed);
// - every acknowledged 'sync' append is present with its bytes (the oracle's floor);
// - the reopened log takes a new append at the next LSN.
import { describe, expect, it } from 'vitest';
import { Log } from '../../src/engine/log.ts';
import type { Durability } from '../../src/engine/log.ts';
import { PoisonedError } from '../../src/errors.ts';
import { isSimulatedCrash, SimFileSystem } from '../support/sim-fs.ts';
import type { CrashOptions } from '../support/sim-fs.ts';
import { LOG_DIR, LogModel, openAndReplay, taggedPayload } from '../support/crash-oracle.ts';
import type { ModelRewrite } from '../support/crash-oracle.ts';

const SEGMENT_SIZE = 4096;

/** One step of the script: starts its call (registering it with the model) and returns the promise to await. */
interface Step {
  readonly name: string;
  readonly start: (log: Log, model: LogModel) => Promise<unknown>;
  /** LSN this step makes durable once it resolves (in 'sync' mode for appends; always for a rewrite's cut). */
  durableAfter?: number;
}

function appendStep(tag: number, size: number): Step {
  const step: Step = {
    name: `append #${tag}`,
    start: (log, model) => {
      const payload = taggedPayload(tag, size);
      const promise = log.append(payload);
      model.addAppend(log.lastLsn, [payload], false);
      step.durableAfter = log.lastLsn;
      return promise;
    },
  };
  return step;
}

function groupStep(tag: number, sizes: readonly number[]): Step {
  const step: Step = {
    name: `group #${tag}`,
    start: (log, model) => {
      const payloads = sizes.map((size, i) => taggedPayload(tag + i, size));
      const promise = log.appendGroup(payloads);
      model.addAppend(log.lastLsn - payloads.length + 1, payloads, true);
      step.durableAfter = log.lastLsn;
      return promise;
    },
  };
  return step;
}

/** cut() + rewrite() of everything sealed, keeping the records `keep` selects (with new bytes). */
function rewriteStep(name: string, keep: (index: number) => boolean): Step {
  const step: Step = {
    name,
    start: (log, model) => {
      const coverEndLsn = log.cut();
      const outputs = model
        .liveUpTo(coverEndLsn)
        .filter((_, i) => keep(i))
        .map((r) => Buffer.concat([r.payload, Buffer.from('rewritten')]));
      const entry: ModelRewrite = { coverEndLsn, outputs, state: 'running' };
      model.rewrites.push(entry);
      step.durableAfter = coverEndLsn;
      return log
        .rewrite(coverEndLsn, async (out) => {
          for (const payload of outputs) await out.write(payload);
        })
        .then(
          () => {
            entry.state = 'resolved';
          },
          (error: unknown) => {
            entry.state = 'rejected';
            throw error;
          },
        );
    },
  };
  return step;
}

function script(): Step[] {
  return [
    ...[1, 2, 3, 4, 5, 6].map((tag) => appendStep(tag, 600)),
    groupStep(10, [300, 300, 300]),
    ...[20, 21, 22].map((tag) => appendStep(tag, 600)),
    rewriteStep('full rewrite keeping every other record', (i) => i % 2 === 0),
    appendStep(30, 50),
    groupStep(40, [100, 0, 100]),
    appendStep(50, 1500),
    rewriteStep('full rewrite keeping nothing', () => false),
    appendStep(60, 70),
    { name: 'close', start: (log) => log.close() },
  ];
}

/** The logical state a replay is compared with: how many rewrites are applied and how many records exist. */
interface State {
  readonly rewrites: number;
  readonly length: number;
}

interface ScriptRun {
  readonly model: LogModel;
  /** states[i]: the state after i completed steps (states[0]: empty log). */
  readonly states: State[];
  /** Steps whose promise resolved. */
  done: number;
  /** Highest LSN a resolved step proved durable. */
  durableAck: number;
  log: Log | undefined;
}

async function runScript(sim: SimFileSystem, durability: Durability): Promise<ScriptRun> {
  const run: ScriptRun = { model: new LogModel(), states: [{ rewrites: 0, length: 0 }], done: 0, durableAck: 0, log: undefined };
  try {
    run.log = await Log.open(LOG_DIR, { fileSystem: sim, durability, segmentSize: SEGMENT_SIZE });
  } catch (error) {
    if (!isSimulatedCrash(error)) throw error;
    return run;
  }
  for (const step of script()) {
    const promise = step.start(run.log, run.model);
    const rewrites = run.model.rewrites.length;
    run.states.push({ rewrites, length: run.model.logical(rewrites).length });
    try {
      await promise;
    } catch (error) {
      if (!isSimulatedCrash(error) && !(error instanceof PoisonedError)) throw error;
      break;
    }
    // A poisoned log's close() resolves without writing anything: it completes no step.
    if (run.log.poisonedBy !== undefined) break;
    run.done++;
    const isRewrite = step.name.includes('rewrite');
    if (step.durableAfter !== undefined && (durability === 'sync' || isRewrite)) run.durableAck = Math.max(run.durableAck, step.durableAfter);
  }
  return run;
}

const counts = { crashPoints: 0, reopens: 0 };

async function checkCrashPoint(durability: Durability, k: number): Promise<void> {
  const sim = new SimFileSystem();
  sim.crashAfterOperations(k);
  const run = await runScript(sim, durability);
  if (!sim.crashed) sim.crashAfterOperations(0);
  const stats = run.log?.stats();
  await run.log?.close().catch(() => undefined);
  const powerFloor = Math.max(run.durableAck, stats?.durableLsn ?? 0);
  const variants: { name: string; how: CrashOptions }[] = [
    ...[1, 2, 3].map((seed) => ({ name: `power seed ${seed}`, how: { seed } })),
    { name: 'process crash', how: { mode: 'process' } },
  ];
  const legal = run.states.slice(run.done, run.done + 2);
  for (const variant of variants) {
    const context = `${durability} mode, crash after ${k} ops (${run.done} steps done), ${variant.name}`;
    const disk = sim.crash(variant.how);
    const processCrash = variant.how.mode === 'process';
    const floor = processCrash ? Math.max(powerFloor, stats?.writtenLsn ?? 0) : powerFloor;
    let opened;
    try {
      opened = await openAndReplay(disk, { durability, segmentSize: SEGMENT_SIZE });
    } catch (error) {
      throw new Error(`${context}: reopen threw ${String(error)}`, { cause: error });
    }
    const { log, records } = opened;
    const match = run.model.check(records, floor, context);
    if (durability === 'sync' || processCrash) {
      const state = { rewrites: match.committedRewrites, length: match.length };
      expect(legal, `${context}: the state is neither before nor after the step in flight`).toContainEqual(state);
    }
    const next = Math.max(records[records.length - 1]?.lsn ?? 0, match.coveredLsn) + 1;
    const promise = log.append(Buffer.from('after the crash'));
    expect(log.lastLsn, `${context}: LSN of the first append after reopen`).toBe(next);
    await promise;
    await log.close();
    counts.reopens++;
  }
  counts.crashPoints++;
}

async function countOperations(durability: Durability): Promise<number> {
  const sim = new SimFileSystem();
  const run = await runScript(sim, durability);
  expect(run.done, 'the script completes without a crash').toBe(script().length);
  expect(run.log?.stats().segments, 'the script rolls over to new segments').toBeGreaterThan(1);
  return sim.counters.operations;
}

describe('Log crashed at every disk operation of a scripted workload', () => {
  for (const durability of ['sync', 'none'] as const) {
    it(`'${durability}' mode: every crash point reopens to the state before or after the step in flight`, async () => {
      const total = await countOperations(durability);
      expect(total).toBeGreaterThan(50);
      for (let k = 0; k <= total; k++) await checkCrashPoint(durability, k);
    });
  }

  it('reports what it checked', () => {
    console.log(`engine crash points: ${counts.crashPoints} crash points, ${counts.reopens} reopens checked`);
    expect(counts.crashPoints).toBeGreaterThan(100);
  });
});
