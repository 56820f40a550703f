// Model-based test of the job index: fast-check runs random sequences of adds, clock advances,
// dispatches, completions, failures, retries and requeues against a plain-array model of the
// queue's rules (priority then id; delayed until runAt; FIFO retention by count), and checks
// after every step that the next job, the counts and the index's own invariants agree.
// Failures print the seed and the shrunk command sequence.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { JobIndex } from '../../src/queue/job-index.ts';
import { StateCode } from '../../src/queue/job-records.ts';

const KEEP_COMPLETED = 3;
const KEEP_FAILED = 2;

interface ModelJob {
  id: number;
  priority: number;
  runAt: number;
  state: 'pending' | 'delayed' | 'active' | 'completed' | 'failed';
  attemptsMade: number;
  stalls: number;
}

interface Model {
  now: number;
  nextId: number;
  jobs: ModelJob[];
  finished: { completed: number[]; failed: number[] };
}

interface Real {
  index: JobIndex;
}

function evict(model: Model, kind: 'completed' | 'failed', keep: number): void {
  const order = model.finished[kind];
  while (order.length > keep) {
    const id = order.shift()!;
    model.jobs = model.jobs.filter((job) => job.id !== id);
  }
}

function activeJob(model: Model, pick: number): ModelJob | undefined {
  const active = model.jobs.filter((job) => job.state === 'active');
  return active.length === 0 ? undefined : active[pick % active.length];
}

function compare(model: Model, real: Real): void {
  const count = (state: ModelJob['state']) => model.jobs.filter((job) => job.state === state).length;
  expect(real.index.counts()).toEqual({
    pending: count('pending'),
    delayed: count('delayed'),
    active: count('active'),
    completed: count('completed'),
    failed: count('failed'),
  });
  for (const job of model.jobs) {
    const slot = real.index.slotOf(job.id);
    expect(slot).not.toBe(-1);
    expect(real.index.attemptsMade(slot)).toBe(job.attemptsMade);
    expect(real.index.stalls(slot)).toBe(job.stalls);
  }
  expect(real.index.size).toBe(model.jobs.length);
  real.index.check();
}

class Add implements fc.Command<Model, Real> {
  readonly priority: number;
  readonly delayMs: number;
  constructor(priority: number, delayMs: number) {
    this.priority = priority;
    this.delayMs = delayMs;
  }
  check = () => true;
  run(model: Model, real: Real): void {
    const id = model.nextId++;
    const runAt = model.now + this.delayMs;
    real.index.add(id, this.priority, runAt, id, '', model.now);
    model.jobs.push({ id, priority: this.priority, runAt, state: this.delayMs > 0 ? 'delayed' : 'pending', attemptsMade: 0, stalls: 0 });
    compare(model, real);
  }
  toString = () => `add(p=${this.priority}, delay=${this.delayMs})`;
}

class Advance implements fc.Command<Model, Real> {
  readonly ms: number;
  constructor(ms: number) {
    this.ms = ms;
  }
  check = () => true;
  run(model: Model, real: Real): void {
    model.now += this.ms;
    real.index.promoteDue(model.now);
    for (const job of model.jobs) if (job.state === 'delayed' && job.runAt <= model.now) job.state = 'pending';
    compare(model, real);
  }
  toString = () => `advance(${this.ms})`;
}

class StartNext implements fc.Command<Model, Real> {
  check = () => true;
  run(model: Model, real: Real): void {
    const pending = model.jobs.filter((job) => job.state === 'pending');
    pending.sort((a, b) => b.priority - a.priority || a.id - b.id);
    const expected = pending[0];
    const slot = real.index.startNext();
    expect(slot === -1 ? undefined : real.index.id(slot)).toBe(expected?.id);
    if (expected !== undefined) expected.state = 'active';
    compare(model, real);
  }
  toString = () => 'startNext()';
}

class Finish implements fc.Command<Model, Real> {
  readonly pick: number;
  readonly outcome: 'completed' | 'failed' | 'retry' | 'requeue';
  readonly delayMs: number;
  constructor(pick: number, outcome: 'completed' | 'failed' | 'retry' | 'requeue', delayMs: number) {
    this.pick = pick;
    this.outcome = outcome;
    this.delayMs = delayMs;
  }
  check = (model: Readonly<Model>) => activeJob(model as Model, this.pick) !== undefined;
  run(model: Model, real: Real): void {
    const job = activeJob(model, this.pick)!;
    const slot = real.index.slotOf(job.id);
    expect(real.index.state(slot)).toBe(StateCode.active);
    if (this.outcome === 'completed' || this.outcome === 'failed') {
      if (this.outcome === 'completed') real.index.completed(slot, model.now, 1);
      else real.index.failed(slot, model.now, 1, false);
      job.state = this.outcome;
      job.attemptsMade++;
      model.finished[this.outcome].push(job.id);
      evict(model, 'completed', KEEP_COMPLETED);
      evict(model, 'failed', KEEP_FAILED);
    } else if (this.outcome === 'retry') {
      job.runAt = model.now + this.delayMs;
      real.index.retrying(slot, job.runAt, 1, model.now);
      job.attemptsMade++;
      job.state = this.delayMs > 0 ? 'delayed' : 'pending';
    } else {
      job.stalls++;
      real.index.requeued(slot, job.stalls, model.now);
      job.state = job.runAt <= model.now ? 'pending' : 'delayed';
    }
    compare(model, real);
  }
  toString = () => `finish(${this.pick}, ${this.outcome}, delay=${this.delayMs})`;
}

const commands = [
  fc.tuple(fc.integer({ min: -2, max: 2 }), fc.constantFrom(0, 0, 5, 10)).map(([priority, delay]) => new Add(priority, delay)),
  fc.integer({ min: 1, max: 8 }).map((ms) => new Advance(ms)),
  fc.constant(new StartNext()),
  fc
    .tuple(fc.nat(), fc.constantFrom('completed' as const, 'failed' as const, 'retry' as const, 'requeue' as const), fc.constantFrom(0, 4))
    .map(([pick, outcome, delay]) => new Finish(pick, outcome, delay)),
];

describe('job index model', () => {
  it('agrees with a plain model of the dispatch and retention rules over random command sequences', () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 200 }), (sequence) => {
        const retention = { completed: { count: KEEP_COMPLETED, ageMs: Infinity }, failed: { count: KEEP_FAILED, ageMs: Infinity } };
        const index = new JobIndex(retention);
        index.finishReplay(0);
        const model: Model = { now: 0, nextId: 1, jobs: [], finished: { completed: [], failed: [] } };
        fc.modelRun(() => ({ model, real: { index } }), sequence);
      }),
      { numRuns: 200, verbose: 1 },
    );
  });
});
