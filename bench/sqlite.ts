// The baseline a user would pick instead of blero: a careful job queue on SQLite through
// better-sqlite3 (v12; v13 crashes on Node 20), in WAL mode with synchronous=FULL so that every
// acknowledged enqueue and every completion survives a power cut, like blero's 'sync' mode.
// It runs the queue bench's workloads: enqueue one awaited at a time, 64 in flight, batches of
// 1,000 in one transaction, and draining a backlog with a no-op handler at concurrency 1 and 16,
// where every job is claimed in one transaction and completed in another (a claim that is not
// durable would let a crash run the job twice without anyone knowing it started).
//
// better-sqlite3 is synchronous: "64 in flight" means 64 async callers whose calls still run one
// after another, each with its own fsync. That is the honest picture of this driver; no group
// commit is possible without batching in the application.
//
// better-sqlite3 is a devDependency built from source. When it does not load, the rows say so
// and the bench goes on.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type BetterSqlite3 from 'better-sqlite3';
import type { BenchContext, Row } from './scenario.ts';
import { describeError, details, latencyText, measure, nowNs, roundsText, secondsSince, unavailableRow } from './scenario.ts';
import { BENCH_JOB_DATA, BENCH_JOB_NAME, ENQUEUE_BATCH_SIZE } from './workload.ts';

type Database = BetterSqlite3.Database;
type DatabaseConstructor = typeof BetterSqlite3;

const SCHEMA = `
  CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,   -- ids never reused, as in blero
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    state INTEGER NOT NULL,                 -- 0 pending, 1 active, 2 completed
    priority INTEGER NOT NULL DEFAULT 0,
    run_at INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    finished_at INTEGER,
    result TEXT
  );
  -- Dispatch order (priority, then FIFO) over pending jobs only, so a claim is one index seek.
  CREATE INDEX jobs_pending ON jobs (priority DESC, id) WHERE state = 0;
`;

interface ClaimedJob {
  readonly id: number;
  readonly name: string;
  readonly data: unknown;
  readonly attempt: number;
}

/** The SQLite queue under test. Statements are prepared once; each call is one transaction. */
class SqliteQueue {
  readonly #db: Database;
  readonly #insert: BetterSqlite3.Statement<[string, string, number, number]>;
  readonly #insertMany: (items: readonly { name: string; data: unknown }[]) => number[];
  readonly #claim: BetterSqlite3.Statement<[number], { id: number; name: string; data: string; attempt: number }>;
  readonly #complete: BetterSqlite3.Statement<[string | null, number, number, number]>;

  constructor(Database: DatabaseConstructor, path: string) {
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(SCHEMA);
    this.#insert = this.#db.prepare(
      'INSERT INTO jobs (name, data, state, run_at, created_at) VALUES (?, ?, 0, ?, ?)',
    );
    this.#insertMany = this.#db.transaction((items: readonly { name: string; data: unknown }[]) => {
      const now = Date.now();
      return items.map((item) => Number(this.#insert.run(item.name, JSON.stringify(item.data), now, now).lastInsertRowid));
    });
    this.#claim = this.#db.prepare(`
      UPDATE jobs SET state = 1, attempt = attempt + 1
      WHERE id = (SELECT id FROM jobs WHERE state = 0 AND run_at <= ? ORDER BY priority DESC, id LIMIT 1)
      RETURNING id, name, data, attempt`);
    // The attempt number fences a late completion, as in blero.
    this.#complete = this.#db.prepare(
      'UPDATE jobs SET state = 2, result = ?, finished_at = ? WHERE id = ? AND state = 1 AND attempt = ?',
    );
  }

  // async, like a queue API would be, so the bench loops have the same shape as blero's.
  async enqueue(name: string, data: unknown): Promise<number> {
    const now = Date.now();
    return Number(this.#insert.run(name, JSON.stringify(data), now, now).lastInsertRowid);
  }

  async enqueueMany(items: readonly { name: string; data: unknown }[]): Promise<number[]> {
    return this.#insertMany(items);
  }

  async claim(): Promise<ClaimedJob | undefined> {
    const row = this.#claim.get(Date.now());
    return row === undefined ? undefined : { id: row.id, name: row.name, data: JSON.parse(row.data), attempt: row.attempt };
  }

  async complete(job: ClaimedJob, result: unknown): Promise<void> {
    this.#complete.run(result === undefined ? null : JSON.stringify(result), Date.now(), job.id, job.attempt);
  }

  close(): void {
    this.#db.close();
  }
}

interface Loaded {
  readonly Database: DatabaseConstructor;
  readonly label: string;
}

async function loadSqlite(): Promise<Loaded> {
  const module = await import('better-sqlite3');
  const Database = module.default;
  const probe = new Database(':memory:');
  const { version } = probe.prepare('SELECT sqlite_version() AS version').get() as { version: string };
  probe.close();
  const packageJson = createRequire(import.meta.url)('better-sqlite3/package.json') as { version: string };
  return { Database, label: `better-sqlite3 ${packageJson.version}, SQLite ${version}` };
}

async function withQueue<T>(
  context: BenchContext,
  loaded: Loaded,
  name: string,
  body: (queue: SqliteQueue) => Promise<T>,
): Promise<T> {
  const directory = await context.scratch(`sqlite-${name}`);
  const queue = new SqliteQueue(loaded.Database, join(directory, 'queue.db'));
  try {
    return await body(queue);
  } finally {
    queue.close();
    await context.discard(directory);
  }
}

async function enqueueRow(context: BenchContext, loaded: Loaded, inFlight: 1 | 64): Promise<Row> {
  context.progress(`sqlite: enqueue, ${inFlight} in flight`);
  const result = await withQueue(context, loaded, `enqueue-${inFlight}`, (queue) =>
    measure(context.config, { concurrency: inFlight, latency: inFlight === 1 }, () =>
      queue.enqueue(BENCH_JOB_NAME, BENCH_JOB_DATA),
    ),
  );
  return {
    section: 'sqlite',
    key: `sqlite.enqueue.${inFlight}`,
    label: inFlight === 1 ? 'enqueue, 1 awaited at a time' : 'enqueue, 64 in flight',
    value: result.rate,
    unit: 'jobs/s',
    detail: details(roundsText(result), latencyText(result)),
    ratio: { to: 'disk.append-sync' },
    status: 'measured',
    data: { jobs: result.ops, seconds: result.seconds },
  };
}

async function enqueueBatchRow(context: BenchContext, loaded: Loaded): Promise<Row> {
  context.progress(`sqlite: enqueue in transactions of ${ENQUEUE_BATCH_SIZE}`);
  const batch = Array.from({ length: ENQUEUE_BATCH_SIZE }, () => ({ name: BENCH_JOB_NAME, data: BENCH_JOB_DATA }));
  const result = await withQueue(context, loaded, 'enqueue-batch', (queue) =>
    measure(context.config, {}, () => queue.enqueueMany(batch)),
  );
  return {
    section: 'sqlite',
    key: 'sqlite.enqueue-batch',
    label: `enqueue, transactions of ${ENQUEUE_BATCH_SIZE.toLocaleString('en-US')}`,
    value: result.rate * ENQUEUE_BATCH_SIZE,
    unit: 'jobs/s',
    detail: roundsText(result, ENQUEUE_BATCH_SIZE),
    ratio: { to: 'disk.batch-sync' },
    status: 'measured',
    data: { batches: result.ops, seconds: result.seconds },
  };
}

async function drainRow(context: BenchContext, loaded: Loaded, concurrency: 1 | 16): Promise<Row> {
  const { sqliteDrainJobs: backlog, drainMaxMs } = context.config;
  context.progress(`sqlite: drain ${backlog.toLocaleString('en-US')} jobs at concurrency ${concurrency}`);
  const outcome = await withQueue(context, loaded, `drain-${concurrency}`, async (queue) => {
    const batch = Array.from({ length: ENQUEUE_BATCH_SIZE }, () => ({ name: BENCH_JOB_NAME, data: BENCH_JOB_DATA }));
    for (let added = 0; added < backlog; added += ENQUEUE_BATCH_SIZE) await queue.enqueueMany(batch);
    const handler = async (_job: ClaimedJob): Promise<undefined> => undefined;
    const startNs = nowNs();
    const deadlineNs = startNs + BigInt(drainMaxMs) * 1_000_000n;
    let completed = 0;
    const worker = async (): Promise<void> => {
      while (nowNs() < deadlineNs) {
        const job = await queue.claim();
        if (job === undefined) return;
        await queue.complete(job, await handler(job));
        completed++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return { completed, seconds: secondsSince(startNs) };
  });
  const partial = outcome.completed < backlog;
  return {
    section: 'sqlite',
    key: `sqlite.drain.${concurrency}`,
    label: `drain a backlog, no-op handler, concurrency ${concurrency}`,
    value: outcome.completed / outcome.seconds,
    unit: 'jobs/s',
    detail: `${outcome.completed.toLocaleString('en-US')} jobs in ${outcome.seconds.toFixed(2)} s${partial ? ' (stopped at the time limit)' : ''}`,
    ratio: { to: 'disk.append-sync' },
    status: 'measured',
    data: { completed: outcome.completed, backlog, seconds: outcome.seconds },
  };
}

/** The SQLite rows, or one row saying why SQLite could not be measured. */
export async function runSqliteBaseline(context: BenchContext): Promise<Row[]> {
  let loaded: Loaded;
  try {
    loaded = await loadSqlite();
  } catch (error) {
    return [unavailableRow('sqlite', 'sqlite.unavailable', 'SQLite baseline', 'skipped', `better-sqlite3 did not load: ${describeError(error)}`)];
  }
  context.note('sqlite', `${loaded.label}, journal_mode=WAL, synchronous=FULL; JSON data in a TEXT column.`);
  return [
    await enqueueRow(context, loaded, 1),
    await enqueueRow(context, loaded, 64),
    await enqueueBatchRow(context, loaded),
    await drainRow(context, loaded, 1),
    await drainRow(context, loaded, 16),
  ];
}
