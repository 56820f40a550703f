// What every bench module shares: the run's configuration (quick or full), the row a scenario
// reports, the scratch directories it works in, and the timed loops. Scenarios run one after
// another, never in parallel, so they do not compete for the two cores or the disk.
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SampleRecorder, type Summary } from './stats.ts';

/** Sizes and durations of one run. Quick mode keeps the whole bench near a minute on 2 cores. */
export interface BenchConfig {
  readonly full: boolean;
  /** Measured time of each throughput scenario. */
  readonly scenarioMs: number;
  /** Unmeasured run before each throughput scenario, on the same file or log. */
  readonly warmupMs: number;
  /** Bytes of the sequential-bandwidth baseline. */
  readonly sequentialBytes: number;
  /** Records in the engine's replay scenario (the issue asks for 1,000,000). */
  readonly replayRecords: number;
  /** Backlog of each drain scenario; the drain also stops at `drainMaxMs`. */
  readonly drainJobs: number;
  readonly drainMaxMs: number;
  /** Backlog of the SQLite drain scenarios (SQLite drains ~20× slower than the target). */
  readonly sqliteDrainJobs: number;
  /** Pending jobs in the queue's open (replay) and heap scenario (the issue asks for 1,000,000). */
  readonly openJobs: number;
  /** Length of the start-latency scenario at 1,000 jobs/s. */
  readonly latencyMs: number;
}

export const QUICK: BenchConfig = {
  full: false,
  scenarioMs: 1500,
  warmupMs: 300,
  sequentialBytes: 256 * 1024 * 1024,
  replayRecords: 250_000,
  drainJobs: 50_000,
  drainMaxMs: 3000,
  sqliteDrainJobs: 10_000,
  openJobs: 100_000,
  latencyMs: 2000,
};

export const FULL: BenchConfig = {
  full: true,
  scenarioMs: 5000,
  warmupMs: 1000,
  sequentialBytes: 1024 * 1024 * 1024,
  replayRecords: 1_000_000,
  drainJobs: 300_000,
  drainMaxMs: 15_000,
  sqliteDrainJobs: 40_000,
  openJobs: 1_000_000,
  latencyMs: 10_000,
};

export type Section = 'disk' | 'engine' | 'queue' | 'sqlite' | 'compaction' | 'published';

/** A goal from the issues, checked when the table is printed (never asserted). */
export interface Target {
  /** `'value'` compares the row's figure, `'ratio'` its ratio to the reference row. */
  readonly of: 'value' | 'ratio';
  readonly atLeast?: number;
  readonly atMost?: number;
}

/** One line of the report and of the JSON output. */
export interface Row {
  readonly section: Section;
  /** Stable identifier, used by other rows' `ratio.to` and in the JSON output. */
  readonly key: string;
  readonly label: string;
  /** The figure; NaN for a skipped or failed scenario. */
  readonly value: number;
  /** Unit of `value`, e.g. `'appends/s'`, `'MB/s'`, `'ms'`. */
  readonly unit: string;
  /** Secondary figures, already formatted (MB/s, latency percentiles, fsync counts). */
  readonly detail?: string;
  /**
   * Shown as `value / reference.value`. `value` overrides which of this row's figures is
   * compared, for example MB/s of an engine row against the disk's sequential bandwidth.
   */
  readonly ratio?: { readonly to: string; readonly value?: number };
  readonly target?: Target;
  readonly note?: string;
  /** `'published'` rows are quoted from elsewhere, not measured in this run. */
  readonly status: 'measured' | 'skipped' | 'failed' | 'published';
  /** Raw numbers for the JSON output. */
  readonly data?: Readonly<Record<string, number | string | boolean>>;
}

export interface BenchContext {
  readonly config: BenchConfig;
  /** Writes one progress line to stderr. */
  progress(message: string): void;
  /** A line printed under the section's heading (setup, reduced sizes, anything a reader needs). */
  note(section: Section, text: string): void;
  /** A fresh, empty directory inside the run's temp dir. */
  scratch(name: string): Promise<string>;
  /** Removes a scratch directory once its scenario is done, to keep the disk use of a run small. */
  discard(path: string): Promise<void>;
}

export function createContext(
  config: BenchConfig,
  root: string,
  startedNs: bigint,
  notes: Map<Section, string[]>,
): BenchContext {
  let counter = 0;
  return {
    config,
    note(section, text) {
      const list = notes.get(section) ?? [];
      list.push(text);
      notes.set(section, list);
    },
    progress(message) {
      const seconds = Number(process.hrtime.bigint() - startedNs) / 1e9;
      process.stderr.write(`[bench ${seconds.toFixed(1).padStart(5)} s] ${message}\n`);
    },
    async scratch(name) {
      const path = join(root, `${String(++counter).padStart(3, '0')}-${name.replace(/[^a-z0-9]+/gi, '-')}`);
      await mkdir(path, { recursive: true });
      return path;
    },
    async discard(path) {
      await rm(path, { recursive: true, force: true });
    },
  };
}

export const MB = 1_000_000;

export function nowNs(): bigint {
  return process.hrtime.bigint();
}

export function secondsSince(startNs: bigint): number {
  return Number(process.hrtime.bigint() - startNs) / 1e9;
}

export interface Throughput {
  /** Operations completed (an operation may carry many records; the caller scales). */
  readonly ops: number;
  readonly seconds: number;
  /** ops / seconds over all rounds. */
  readonly rate: number;
  /** ops / seconds of each round, in order: their spread shows how steady the machine was. */
  readonly roundRates: readonly number[];
  /** Per-operation latency in ms, when asked for. */
  readonly latencyMs?: Summary | undefined;
}

/** Measured rounds per throughput scenario: enough to see noise, few enough to stay short. */
export const ROUNDS = 3;

export interface LoopOptions {
  /** Total measured time, split evenly over the rounds. */
  readonly durationMs: number;
  /** Operations kept in flight: `concurrency` loops, each awaiting its own operation. @default 1 */
  readonly concurrency?: number;
  /** Record each operation's latency. Costs two clock reads per operation. @default false */
  readonly latency?: boolean;
  /** Consecutive rounds, each reported on its own in `roundRates`. @default 1 */
  readonly rounds?: number;
}

/**
 * Runs `op` in `concurrency` loops until the round's time has passed and every operation in
 * flight has settled; the time counted runs to that last settlement. The deadline is checked
 * before each operation starts, so no operation is cut short and none is counted twice.
 */
async function runRound(
  durationMs: number,
  concurrency: number,
  recorder: SampleRecorder | undefined,
  op: () => Promise<unknown>,
): Promise<{ ops: number; seconds: number }> {
  const startNs = nowNs();
  const deadlineNs = startNs + BigInt(Math.round(durationMs * 1e6));
  let ops = 0;
  const loop = async (): Promise<void> => {
    for (;;) {
      const beforeNs = nowNs();
      if (beforeNs >= deadlineNs) return;
      await op();
      ops++;
      if (recorder !== undefined) recorder.record(Number(nowNs() - beforeNs) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return { ops, seconds: secondsSince(startNs) };
}

/** Runs `op` for `durationMs` in `rounds` back-to-back rounds; see runRound. */
export async function runFor(options: LoopOptions, op: () => Promise<unknown>): Promise<Throughput> {
  const concurrency = options.concurrency ?? 1;
  const rounds = options.rounds ?? 1;
  const recorder = options.latency === true ? new SampleRecorder() : undefined;
  let ops = 0;
  let seconds = 0;
  const roundRates: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const result = await runRound(options.durationMs / rounds, concurrency, recorder, op);
    ops += result.ops;
    seconds += result.seconds;
    roundRates.push(result.ops / result.seconds);
  }
  return { ops, seconds, rate: ops / seconds, roundRates, latencyMs: recorder?.summary() };
}

/** A warm-up of `config.warmupMs`, not counted, then `config.scenarioMs` measured in ROUNDS rounds. */
export async function measure(
  config: BenchConfig,
  options: Omit<LoopOptions, 'durationMs' | 'rounds'>,
  op: () => Promise<unknown>,
): Promise<Throughput> {
  await runFor({ ...options, durationMs: config.warmupMs, latency: false }, op);
  return runFor({ ...options, durationMs: config.scenarioMs, rounds: ROUNDS }, op);
}

/** "rounds 4,100–5,300/s" (scaled by `perOp` records per operation), or '' for a single round. */
export function roundsText(throughput: Throughput, perOp = 1): string {
  if (throughput.roundRates.length < 2) return '';
  const rates = throughput.roundRates.map((rate) => rate * perOp);
  const low = Math.min(...rates);
  const high = Math.max(...rates);
  return `rounds ${formatCount(low)}–${formatCount(high)}/s`;
}

/** "p50 0.210 ms, p99 0.330 ms", or '' without latency samples. */
export function latencyText(throughput: Throughput): string {
  const latency = throughput.latencyMs;
  return latency === undefined ? '' : `p50 ${latency.p50.toFixed(3)} ms, p99 ${latency.p99.toFixed(3)} ms`;
}

/** Joins the non-empty parts of a details cell. */
export function details(...parts: readonly string[]): string {
  return parts.filter((part) => part !== '').join(', ');
}

function formatCount(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

/** Resolves when `condition()` holds, polling every `intervalMs`, or with false at the deadline. */
export async function waitUntil(condition: () => boolean, deadlineNs: bigint, intervalMs = 2): Promise<boolean> {
  while (!condition()) {
    if (nowNs() >= deadlineNs) return false;
    await sleep(intervalMs);
  }
  return true;
}

/** A row for a scenario that could not run, with the reason. */
export function unavailableRow(
  section: Section,
  key: string,
  label: string,
  status: 'skipped' | 'failed',
  note: string,
): Row {
  return { section, key, label, value: Number.NaN, unit: '', status, note };
}

/** The message of anything thrown, on one line. */
export function describeError(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.replace(/\s+/g, ' ').slice(0, 300);
}

/** Builds a payload of `size` bytes that is not all zeros (no compression or sparse tricks anywhere). */
export function payloadOf(size: number, seed = 1): Buffer {
  const buffer = Buffer.allocUnsafe(size);
  let state = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    buffer[i] = 0x20 + ((state >>> 16) % 95);
  }
  return buffer;
}
