// Entry point of `npm run bench`: runs the scenario groups one after another in a fresh temp dir
// (removed afterwards, also on Ctrl-C), then prints the markdown report to stdout. Progress goes
// to stderr, so `npm run bench > bench.md` keeps only the report.
//
//   node --import tsx bench/run.ts [--full] [--only engine|queue|compaction|baselines]... [--json out.json] [--dir parent]
//
// A group whose target module (the Log, the Queue) does not exist yet is skipped with a note;
// a group that fails is reported as failed and the exit code is 1. Missed targets do not change
// the exit code: they are findings, printed in the table.
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import * as os from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runDiskBaseline } from './disk-baseline.ts';
import { PUBLISHED_ROWS, describeMachine, renderReport } from './report.ts';
import type { BenchContext, Row, Section } from './scenario.ts';
import { FULL, QUICK, createContext, describeError, nowNs, secondsSince, unavailableRow } from './scenario.ts';
import { runSqliteBaseline } from './sqlite.ts';

const USAGE = `Usage: npm run bench -- [options]
  --full            longer runs and the issues' full sizes (1M-record replay, 1M pending jobs)
  --only <group>    engine | queue | compaction | baselines (disk limits + SQLite); repeatable; default all
  --json <file>     also write the rows and the machine as JSON
  --dir <path>      parent of the temp dir (default ${os.tmpdir()}); must be on the disk to measure
  --help`;

const GROUP_NAMES = ['engine', 'queue', 'compaction', 'baselines'] as const;
type GroupName = (typeof GROUP_NAMES)[number];

interface Group {
  readonly name: GroupName;
  readonly section: Section;
  readonly label: string;
  run(context: BenchContext): Promise<Row[]>;
}

/**
 * Imports `specifier` (a module under src/) and says whether it and `exportName` exist. Only a
 * missing file counts as "not there yet"; a module that exists but fails to load is an error.
 */
async function probeTarget(specifier: string, exportName: string): Promise<string | undefined> {
  const url = new URL(specifier, import.meta.url);
  try {
    const module = (await import(url.href)) as Record<string, unknown>;
    return exportName in module ? undefined : `${specifier.replace('../', '')} does not export ${exportName} yet`;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const missingItself = code === 'ERR_MODULE_NOT_FOUND' && String((error as Error).message).includes(url.pathname);
    if (missingItself) return `${specifier.replace('../', '')} does not exist yet`;
    throw error;
  }
}

/** Runs `load().run` when the target exists; otherwise one skipped row saying what is missing. */
async function runAgainst(
  context: BenchContext,
  section: Section,
  target: { specifier: string; exportName: string },
  load: () => Promise<(context: BenchContext) => Promise<Row[]>>,
): Promise<Row[]> {
  const missing = await probeTarget(target.specifier, target.exportName);
  if (missing !== undefined) return [unavailableRow(section, `${section}.missing`, `${section} scenarios`, 'skipped', missing)];
  const run = await load();
  return run(context);
}

const GROUPS: readonly Group[] = [
  { name: 'baselines', section: 'disk', label: 'disk limits', run: runDiskBaseline },
  {
    name: 'engine',
    section: 'engine',
    label: 'engine',
    run: (context) =>
      runAgainst(context, 'engine', { specifier: '../src/engine/log.ts', exportName: 'Log' }, async () => (await import('./engine.ts')).runEngineBench),
  },
  { name: 'baselines', section: 'sqlite', label: 'SQLite baseline', run: runSqliteBaseline },
  {
    name: 'queue',
    section: 'queue',
    label: 'queue',
    run: (context) =>
      runAgainst(context, 'queue', { specifier: '../src/index.ts', exportName: 'Queue' }, async () => (await import('./queue.ts')).runQueueBench),
  },
  {
    name: 'compaction',
    section: 'compaction',
    label: 'compaction',
    run: (context) =>
      runAgainst(context, 'compaction', { specifier: '../src/index.ts', exportName: 'Queue' }, async () => (await import('./compaction.ts')).runCompactionBench),
  },
];

function parseOptions(): { full: boolean; only: Set<GroupName>; json?: string; dir: string } | undefined {
  const { values } = parseArgs({
    options: {
      full: { type: 'boolean', default: false },
      only: { type: 'string', multiple: true },
      json: { type: 'string' },
      dir: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) return undefined;
  const only = new Set<GroupName>();
  for (const name of values.only ?? GROUP_NAMES) {
    if (!(GROUP_NAMES as readonly string[]).includes(name)) throw new TypeError(`--only must be one of ${GROUP_NAMES.join(', ')}, got ${name}`);
    only.add(name as GroupName);
  }
  const options = { full: values.full, only, dir: resolve(values.dir ?? os.tmpdir()) };
  return values.json === undefined ? options : { ...options, json: resolve(values.json) };
}

/** The commit the bench ran on, so two reports can be matched to code; undefined outside git. */
function describeRevision(): string | undefined {
  try {
    const run = (...args: string[]): string => execFileSync('git', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const commit = run('rev-parse', '--short', 'HEAD');
    const dirty = run('status', '--porcelain', '--untracked-files=no', '--', 'src', 'bench') !== '';
    return dirty ? `${commit} with uncommitted changes in src/ or bench/` : commit;
  } catch {
    return undefined;
  }
}

async function main(): Promise<number> {
  let options: ReturnType<typeof parseOptions>;
  try {
    options = parseOptions();
  } catch (error) {
    process.stderr.write(`${describeError(error)}\n${USAGE}\n`);
    return 2;
  }
  if (options === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const config = options.full ? FULL : QUICK;
  const startedNs = nowNs();
  const loadAverage = os.loadavg()[0] ?? Number.NaN;
  const revision = describeRevision();
  const root = await mkdtemp(join(options.dir, 'blero-bench-'));
  const removeRoot = (): void => {
    void rm(root, { recursive: true, force: true });
  };
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`\n${signal}: removing ${root}\n`);
    removeRoot();
    // The removal is asynchronous; give it a moment, then leave with the signal's usual code.
    setTimeout(() => process.exit(128 + (os.constants.signals[signal] ?? 0)), 200).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const notes = new Map<Section, string[]>();
  const context = createContext(config, root, startedNs, notes);
  const rows: Row[] = [];
  let failed = false;
  try {
    for (const group of GROUPS) {
      if (!options.only.has(group.name)) continue;
      try {
        rows.push(...(await group.run(context)));
      } catch (error) {
        failed = true;
        const stack = error instanceof Error ? (error.stack ?? error.message) : String(error);
        process.stderr.write(`${group.label} failed:\n${stack}\n`);
        rows.push(unavailableRow(group.section, `${group.section}.failed`, `${group.label} scenarios`, 'failed', describeError(error)));
      }
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  if (options.only.has('queue')) rows.push(...PUBLISHED_ROWS);

  const machine = describeMachine(options.dir, loadAverage);
  const wallSeconds = secondsSince(startedNs);
  process.stdout.write(renderReport({ machine, config, rows, notes, wallSeconds, revision }));
  if (options.json !== undefined) {
    const json = { machine, revision, config, wallSeconds, notes: Object.fromEntries(notes), rows };
    // NaN is not JSON: skipped rows get null.
    await writeFile(options.json, `${JSON.stringify(json, (_key, value: unknown) => (typeof value === 'number' && !Number.isFinite(value) ? null : value), 2)}\n`);
  }
  return failed ? 1 : 0;
}

process.exitCode = await main();
