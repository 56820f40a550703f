// The queue's bench (issue 3), through the public API only (src/index.ts), in 'sync' mode:
// enqueue one awaited at a time, 64 in flight, enqueueMany in batches of 1,000; draining a
// backlog with a no-op handler at concurrency 1 and 16; the start latency of a lightly loaded
// queue (1,000 jobs/s); and the open (replay) time and heap bytes per job of a log of pending
// jobs. Every job carries the same 100-byte JSON data as the SQLite baseline, whose rows the
// throughput figures are compared with.
//
// A drain counts until the queue is drained *and* close() has resolved: completions do not wait
// for their fsync, and close() syncs them, so the measured time covers durable completions.
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Queue } from '../src/index.ts';
import type { BenchContext, Row } from './scenario.ts';
import { details, latencyText, measure, nowNs, roundsText, secondsSince, waitUntil } from './scenario.ts';
import { formatNumber } from './report.ts';
import { SampleRecorder } from './stats.ts';
import { BENCH_JOB_DATA, BENCH_JOB_NAME, ENQUEUE_BATCH_SIZE } from './workload.ts';

type BenchJobs = { [BENCH_JOB_NAME]: typeof BENCH_JOB_DATA };
type BenchQueue = Queue<BenchJobs>;

const BATCH = Array.from({ length: ENQUEUE_BATCH_SIZE }, () => ({ name: BENCH_JOB_NAME, data: BENCH_JOB_DATA }) as const);
/** Interval of the light load in the start-latency scenario (1,000 jobs/s). */
const LIGHT_LOAD_INTERVAL_MS = 1;
/** Start-latency samples taken before this much of the run has passed are a warm-up and dropped. */
const LATENCY_WARMUP_MS = 200;

async function withQueue<T>(
  context: BenchContext,
  name: string,
  options: { durability: 'sync' | 'none' },
  body: (queue: BenchQueue, directory: string) => Promise<T>,
): Promise<T> {
  const directory = await context.scratch(`queue-${name}`);
  const queue = await Queue.open<BenchJobs>(directory, options);
  try {
    return await body(queue, directory);
  } finally {
    await queue.close();
    await context.discard(directory);
  }
}

async function enqueueRow(context: BenchContext, inFlight: 1 | 64): Promise<Row> {
  context.progress(`queue: enqueue, ${inFlight} in flight`);
  const result = await withQueue(context, `enqueue-${inFlight}`, { durability: 'sync' }, (queue) =>
    measure(context.config, { concurrency: inFlight, latency: inFlight === 1 }, () => queue.enqueue(BENCH_JOB_NAME, BENCH_JOB_DATA)),
  );
  return {
    section: 'queue',
    key: `queue.enqueue.${inFlight}`,
    label: inFlight === 1 ? 'enqueue, sync, 1 awaited at a time' : 'enqueue, sync, 64 in flight',
    value: result.rate,
    unit: 'jobs/s',
    detail: details(roundsText(result), latencyText(result)),
    ratio: { to: `sqlite.enqueue.${inFlight}` },
    ...(inFlight === 64 ? { target: { of: 'value' as const, atLeast: 100_000 } } : {}),
    status: 'measured',
    data: { jobs: result.ops, seconds: result.seconds },
  };
}

async function enqueueManyRow(context: BenchContext): Promise<Row> {
  context.progress(`queue: enqueueMany, batches of ${ENQUEUE_BATCH_SIZE}`);
  const result = await withQueue(context, 'enqueue-many', { durability: 'sync' }, (queue) =>
    measure(context.config, {}, () => queue.enqueueMany(BATCH)),
  );
  return {
    section: 'queue',
    key: 'queue.enqueue-many',
    label: `enqueueMany, sync, batches of ${ENQUEUE_BATCH_SIZE.toLocaleString('en-US')}`,
    value: result.rate * ENQUEUE_BATCH_SIZE,
    unit: 'jobs/s',
    detail: details(`${formatNumber(result.rate)} batches/s`, roundsText(result, ENQUEUE_BATCH_SIZE)),
    ratio: { to: 'sqlite.enqueue-batch' },
    target: { of: 'value', atLeast: 500_000 },
    status: 'measured',
    data: { batches: result.ops, seconds: result.seconds },
  };
}

async function fill(queue: BenchQueue, jobs: number): Promise<void> {
  for (let added = 0; added < jobs; added += ENQUEUE_BATCH_SIZE) await queue.enqueueMany(BATCH);
}

async function drainRow(context: BenchContext, concurrency: 1 | 16): Promise<Row> {
  const { drainJobs: backlog, drainMaxMs } = context.config;
  context.progress(`queue: drain ${backlog.toLocaleString('en-US')} jobs at concurrency ${concurrency}`);
  const directory = await context.scratch(`queue-drain-${concurrency}`);
  const queue = await Queue.open<BenchJobs>(directory, { durability: 'sync' });
  let completed = 0;
  let seconds: number;
  let drained: boolean;
  try {
    await fill(queue, backlog);
    queue.on('completed', () => {
      completed++;
    });
    const drainedEvent = once(queue, 'drained').then(() => true);
    const timeLimit = new AbortController();
    const timedOut = sleep(drainMaxMs, false, { signal: timeLimit.signal }).catch(() => false);
    const startNs = nowNs();
    queue.registerProcessor(async () => undefined, { concurrency });
    drained = await Promise.race([drainedEvent, timedOut]);
    timeLimit.abort();
    await queue.close();
    seconds = secondsSince(startNs);
  } finally {
    await queue.close();
    await context.discard(directory);
  }
  return {
    section: 'queue',
    key: `queue.drain.${concurrency}`,
    label: `drain a backlog, no-op handler, concurrency ${concurrency}`,
    value: completed / seconds,
    unit: 'jobs/s',
    detail: `${completed.toLocaleString('en-US')} jobs in ${seconds.toFixed(2)} s incl. close()${drained ? '' : ' (stopped at the time limit)'}`,
    ratio: { to: `sqlite.drain.${concurrency}` },
    ...(concurrency === 16 ? { target: { of: 'value' as const, atLeast: 100_000 } } : {}),
    status: 'measured',
    data: { completed, backlog, seconds, drained },
  };
}

/**
 * Open-loop light load: one enqueue per timer tick (about 1 ms), whatever the previous one is
 * doing. Latency = when the processor is called − when that job's enqueue resolved; negative
 * when the job started before its enqueue's fsync returned.
 */
async function startLatencyRow(context: BenchContext): Promise<Row> {
  const durationMs = context.config.latencyMs;
  context.progress(`queue: start latency at ~1,000 jobs/s for ${durationMs} ms`);
  const resolvedNs = new Map<number, bigint>();
  const startedNs = new Map<number, bigint>();
  let enqueued = 0;
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  const outcome = await withQueue(context, 'latency', { durability: 'sync' }, async (queue) => {
    queue.registerProcessor(
      async (job) => {
        startedNs.set(job.id, nowNs());
      },
      { concurrency: 1 },
    );
    // Event-loop delay tells a slow dispatch apart from a process that was not scheduled at all.
    loopDelay.enable();
    const runStartNs = nowNs();
    const warmupEndNs = runStartNs + BigInt(LATENCY_WARMUP_MS) * 1_000_000n;
    const pending = new Set<Promise<void>>();
    const timer = setInterval(() => {
      enqueued++;
      const enqueue = queue.enqueue(BENCH_JOB_NAME, BENCH_JOB_DATA).then((id) => {
        const now = nowNs();
        if (now >= warmupEndNs) resolvedNs.set(id, now);
        pending.delete(enqueue);
      });
      pending.add(enqueue);
    }, LIGHT_LOAD_INTERVAL_MS);
    await sleep(durationMs);
    clearInterval(timer);
    loopDelay.disable();
    const loadSeconds = secondsSince(runStartNs);
    await Promise.all(pending);
    await waitUntil(() => [...resolvedNs.keys()].every((id) => startedNs.has(id)), nowNs() + 5_000_000_000n, 5);
    return { loadSeconds };
  });
  const recorder = new SampleRecorder();
  let early = 0;
  for (const [id, resolved] of resolvedNs) {
    const started = startedNs.get(id);
    if (started === undefined) continue;
    const latencyMs = Number(started - resolved) / 1e6;
    if (latencyMs < 0) early++;
    recorder.record(latencyMs);
  }
  const summary = recorder.summary();
  if (summary === undefined) throw new Error('start latency: no job both resolved and started');
  const rate = enqueued / outcome.loadSeconds;
  return {
    section: 'queue',
    key: 'queue.start-latency',
    label: 'start latency p50 at ~1,000 jobs/s (enqueue resolved → processor called)',
    value: summary.p50,
    unit: 'ms',
    detail: `p90 ${summary.p90.toFixed(3)} ms, p99 ${summary.p99.toFixed(3)} ms, ${summary.count} jobs at ${formatNumber(rate)} jobs/s, ${early} started before their enqueue resolved, event-loop delay p99 ${(loopDelay.percentile(99) / 1e6).toFixed(1)} ms`,
    target: { of: 'value', atMost: 0.5 },
    status: 'measured',
    data: { samples: summary.count, p50: summary.p50, p90: summary.p90, p99: summary.p99, early, rate },
  };
}

/** V8's gc(), made reachable without --expose-gc on the command line. */
function loadGc(): (() => void) | undefined {
  setFlagsFromString('--expose-gc');
  const gc: unknown = runInNewContext('gc');
  return typeof gc === 'function' ? (gc as () => void) : undefined;
}

function memoryNow(gc: (() => void) | undefined): { heap: number; outside: number } {
  gc?.();
  gc?.();
  const usage = process.memoryUsage();
  // `external` already includes `arrayBuffers` (Buffers and typed arrays live there).
  return { heap: usage.heapUsed, outside: usage.external };
}

async function openRows(context: BenchContext): Promise<Row[]> {
  const jobs = context.config.openJobs;
  context.progress(`queue: open (replay) with ${jobs.toLocaleString('en-US')} pending jobs (enqueueing them first)`);
  const directory = await context.scratch('queue-open');
  const gc = loadGc();
  try {
    const filler = await Queue.open<BenchJobs>(directory, { durability: 'none' });
    try {
      await fill(filler, jobs);
    } finally {
      await filler.close();
    }
    const before = memoryNow(gc);
    const startNs = nowNs();
    const queue = await Queue.open<BenchJobs>(directory, { durability: 'sync' });
    const seconds = secondsSince(startNs);
    try {
      const after = memoryNow(gc);
      const pending = queue.counts().pending;
      if (pending !== jobs) throw new Error(`open found ${pending} pending jobs, expected ${jobs}`);
      // Memory outside the V8 heap (an index in typed arrays, cached Buffers) is memory the
      // jobs cost all the same, so the figure is the sum and the details split it.
      const heapPerJob = (after.heap - before.heap) / jobs;
      const outsidePerJob = (after.outside - before.outside) / jobs;
      const totalPerJob = heapPerJob + outsidePerJob;
      const fullSize = jobs >= 1_000_000;
      const extrapolated = fullSize ? '' : `; 1,000,000 would take ~${((seconds * 1_000_000) / jobs).toFixed(2)} s at this rate (target ≤ 2 s is for 1M, use --full)`;
      return [
        {
          section: 'queue',
          key: 'queue.open',
          label: `open (replay) with ${jobs.toLocaleString('en-US')} pending jobs`,
          value: seconds * 1000,
          unit: 'ms',
          detail: `${formatNumber(jobs / seconds)} jobs/s${extrapolated}`,
          ...(fullSize ? { target: { of: 'value' as const, atMost: 2000 } } : {}),
          status: 'measured',
          data: { jobs, seconds },
        },
        {
          section: 'queue',
          key: 'queue.heap-per-job',
          label: 'memory per pending job after open (V8 heap + Buffers)',
          value: totalPerJob,
          unit: 'B/job',
          detail: `${formatNumber(heapPerJob)} B on the V8 heap + ${formatNumber(outsidePerJob)} B in Buffers/typed arrays${gc === undefined ? '; no gc() available, approximate' : ''}`,
          target: { of: 'value', atMost: 200 },
          status: 'measured',
          data: { jobs, totalPerJob, heapPerJob, outsidePerJob, gc: gc !== undefined },
        },
      ];
    } finally {
      await queue.close();
    }
  } finally {
    await context.discard(directory);
  }
}

/** Every queue row, one scenario at a time. */
export async function runQueueBench(context: BenchContext): Promise<Row[]> {
  const rows = [
    await enqueueRow(context, 1),
    await enqueueRow(context, 64),
    await enqueueManyRow(context),
    await drainRow(context, 1),
    await drainRow(context, 16),
    await startLatencyRow(context),
    ...(await openRows(context)),
  ];
  context.note('queue', `Jobs carry ${JSON.stringify(BENCH_JOB_DATA).length} bytes of JSON data; the queue runs with durability 'sync'.`);
  if (context.config.openJobs < 1_000_000) {
    context.note('queue', `Quick mode opens ${context.config.openJobs.toLocaleString('en-US')} pending jobs, not the issue's 1,000,000 (use --full).`);
  }
  return rows;
}
