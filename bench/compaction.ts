// The compaction bench (issue 4), through the public API (Queue.compact(), queue.stats(), the
// 'compacted' event):
// - throughput: MB/s of live data written by one compaction of a log that is half dead, for
//   1 KiB and 100-byte jobs, as a fraction of the disk's sequential bandwidth (disk.sequential);
// - space under churn: a steady backlog plus jobs enqueued and completed at the same rate, with
//   automatic compaction; the files on disk sampled every 25 ms against the live data;
// - open (replay) time against the length of the history, with and without a compaction;
// - p99 latency of enqueue ('sync', one awaited at a time) while a compaction runs, against the
//   same loop on the same queue in equally long windows between compactions.
import { once } from 'node:events';
import { cp, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Queue } from '../src/index.ts';
import type { CompactionReport } from '../src/index.ts';
import { sequentialSeconds } from './disk-baseline.ts';
import { formatNumber } from './report.ts';
import type { BenchContext, Row } from './scenario.ts';
import { MB, nowNs, secondsSince } from './scenario.ts';
import { SampleRecorder } from './stats.ts';
import { BENCH_JOB_DATA, BENCH_JOB_NAME, ENQUEUE_BATCH_SIZE } from './workload.ts';

interface Sizes {
  /**
   * Jobs in the throughput logs, by data size: half completed (dead), half pending (live), about
   * 100 MB of live data in quick mode. A rate needs a transfer comparable with the sequential
   * write it is compared with (256 MiB), and large enough that a compaction's fixed costs (the
   * roll at the cut, renames, directory fsyncs: 10–30 ms here) do not make up most of it; the
   * small-log row shows those.
   */
  readonly throughputJobs: { readonly 1000: number; readonly 100: number };
  /** Jobs in the log of the small-log row and of the latency rows. */
  readonly smallJobs: number;
  readonly churnMs: number;
  readonly churnBacklog: number;
  /** History lengths (jobs enqueued and completed) of the open-time rows. */
  readonly histories: readonly number[];
  /** Pending jobs the open-time queues keep throughout. */
  readonly openBacklog: number;
  /** Length of each latency loop. */
  readonly latencyMs: number;
}

const QUICK_SIZES: Sizes = { throughputJobs: { 1000: 200_000, 100: 1_000_000 }, smallJobs: 60_000, churnMs: 3000, churnBacklog: 5_000, histories: [25_000, 100_000], openBacklog: 5_000, latencyMs: 1500 };
const FULL_SIZES: Sizes = { throughputJobs: { 1000: 600_000, 100: 3_000_000 }, smallJobs: 300_000, churnMs: 15_000, churnBacklog: 20_000, histories: [100_000, 400_000, 1_000_000], openBacklog: 20_000, latencyMs: 5000 };

type BenchQueue = Queue<Record<string, unknown>>;

function jobsOf(count: number, pad: string): { name: string; data: unknown }[] {
  return Array.from({ length: count }, (_, n) => ({ name: BENCH_JOB_NAME, data: { n, pad } }));
}

/** Enqueues `count` jobs in batches. */
async function fill(queue: BenchQueue, count: number, pad: string): Promise<void> {
  for (let done = 0; done < count; done += ENQUEUE_BATCH_SIZE) await queue.enqueueMany(jobsOf(Math.min(ENQUEUE_BATCH_SIZE, count - done), pad));
}

/** Enqueues `count` jobs and waits until a no-op processor has completed all of them. */
async function churn(queue: BenchQueue, count: number, pad: string): Promise<void> {
  const processor = queue.registerProcessor(() => undefined, { concurrency: 16 });
  for (let done = 0; done < count; done += 10 * ENQUEUE_BATCH_SIZE) {
    const drained = once(queue, 'drained');
    await fill(queue, Math.min(10 * ENQUEUE_BATCH_SIZE, count - done), pad);
    await drained;
  }
  queue.unregisterProcessor(processor);
}

/** A log that is about half dead: `jobs / 2` completed, `jobs / 2` pending. */
async function halfDeadQueue(directory: string, jobs: number, pad: string, maxBytesPerSecond?: number): Promise<BenchQueue> {
  const queue = await Queue.open(directory, { durability: 'none', compaction: { auto: false, maxBytesPerSecond } });
  await churn(queue, jobs / 2, pad);
  await fill(queue, jobs / 2, pad);
  return queue;
}

async function directoryBytes(directory: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(directory)) total += (await stat(join(directory, name)).catch(() => ({ size: 0 }))).size;
  return total;
}

/** One compaction of a freshly built half-dead log of `jobs` jobs. */
async function timedCompaction(context: BenchContext, jobs: number, pad: string, name: string): Promise<{ report: CompactionReport; logBytes: number }> {
  const directory = await context.scratch(name);
  try {
    const queue = await halfDeadQueue(directory, jobs, pad);
    const logBytes = queue.stats().logBytes;
    const report = await queue.compact();
    await queue.close();
    return { report, logBytes };
  } finally {
    await context.discard(directory);
  }
}

/** The row of one timed compaction: MB/s of live data written, as a ratio to the disk beside it. */
function throughputRowOf(report: CompactionReport, logBytes: number, key: string, label: string): Row {
  return {
    section: 'compaction',
    key,
    label,
    value: report.bytesAfter / MB / (report.durationMs / 1000),
    unit: 'MB/s',
    detail: `${formatNumber(report.bytesAfter / MB)} MB live written (${formatNumber(report.jobs)} jobs) from ${formatNumber(report.bytesBefore / MB)} MB (log ${formatNumber(logBytes / MB)} MB) in ${formatNumber(report.durationMs)} ms, including its fsyncs`,
    ratio: { to: 'compaction.disk-sequential' },
    status: 'measured',
    data: { jobs: report.jobs, bytesBefore: report.bytesBefore, bytesAfter: report.bytesAfter, durationMs: report.durationMs },
  };
}

/** MB/s of live data one compaction of a freshly built, half-dead log writes. */
async function throughputRow(context: BenchContext, dataBytes: 1000 | 100): Promise<Row> {
  const jobs = (context.config.full ? FULL_SIZES : QUICK_SIZES).throughputJobs[dataBytes];
  const pad = 'x'.repeat(Math.max(0, dataBytes - 20));
  context.progress(`compaction: throughput, ${jobs.toLocaleString('en-US')} jobs of ~${dataBytes} B, half completed`);
  const { report, logBytes } = await timedCompaction(context, jobs, pad, `compaction-throughput-${dataBytes}`);
  const label = `compaction throughput, jobs of ~${formatNumber(dataBytes)} B of data, log half dead`;
  return { ...throughputRowOf(report, logBytes, `compaction.throughput.${dataBytes}`, label), target: { of: 'ratio', atLeast: 0.5 } };
}

/** The 100-byte row on a small log: what a compaction costs when its fixed costs weigh most. */
async function smallLogRow(context: BenchContext): Promise<Row> {
  const jobs = 2 * (context.config.full ? FULL_SIZES : QUICK_SIZES).smallJobs;
  context.progress(`compaction: a small log, ${jobs.toLocaleString('en-US')} jobs of ~100 B, half completed`);
  const { report, logBytes } = await timedCompaction(context, jobs, 'x'.repeat(80), 'compaction-small');
  const label = 'the 100 B row on a small log (fixed costs weigh: the roll at the cut, renames, directory fsyncs)';
  return throughputRowOf(report, logBytes, 'compaction.throughput.100.small', label);
}

/**
 * Steady churn with automatic compaction: a backlog that never runs (delayed an hour) keeps the
 * live data constant, while jobs are enqueued and completed as fast as the queue goes. Every
 * 25 ms the bytes of the directory's files are compared with the live data.
 */
async function churnRows(context: BenchContext): Promise<Row[]> {
  const sizes = context.config.full ? FULL_SIZES : QUICK_SIZES;
  const segmentSize = 4 * 1024 * 1024;
  context.progress(`compaction: churn for ${sizes.churnMs} ms over a backlog of ${sizes.churnBacklog.toLocaleString('en-US')} jobs, compacting on its own`);
  const directory = await context.scratch('compaction-churn');
  const pad = 'c'.repeat(1000);
  try {
    const queue = await Queue.open(directory, { durability: 'none', segmentSize, compaction: { minSizeBytes: 4 * segmentSize } });
    const runAt = Date.now() + 3_600_000;
    for (let done = 0; done < sizes.churnBacklog; done += ENQUEUE_BATCH_SIZE) {
      await queue.enqueueMany(jobsOf(Math.min(ENQUEUE_BATCH_SIZE, sizes.churnBacklog - done), pad).map((job) => ({ ...job, options: { runAt } })));
    }
    let worstPeak = 0;
    let worstSteady = 0;
    let peakBytes = 0;
    let completed = 0;
    const amplification: number[] = [];
    // What the log grew by while a compaction ran: the bound holds while it stays under a segment.
    let growthBytes = 0;
    queue.on('compacted', (report) => (growthBytes = Math.max(growthBytes, queue.stats().logBytes - report.bytesAfter)));
    queue.on('completed', () => completed++);
    queue.registerProcessor(() => undefined, { concurrency: 16 });
    const startNs = nowNs();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const running = queue.stats().compaction.running;
        const onDisk = await directoryBytes(directory);
        const stats = queue.stats();
        const bound = 2 * stats.liveBytes + segmentSize;
        peakBytes = Math.max(peakBytes, onDisk);
        worstPeak = Math.max(worstPeak, onDisk / bound);
        if (!running && !stats.compaction.running) worstSteady = Math.max(worstSteady, onDisk / bound);
        amplification.push(onDisk / stats.liveBytes);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    })();
    while (secondsSince(startNs) * 1000 < sizes.churnMs) {
      const drained = once(queue, 'drained');
      await fill(queue, 2 * ENQUEUE_BATCH_SIZE, pad);
      await drained;
    }
    sampling = false;
    await sampler;
    const seconds = secondsSince(startNs);
    const stats = queue.stats();
    await queue.close();
    const mean = amplification.reduce((sum, value) => sum + value, 0) / amplification.length;
    const runs = stats.compaction.runs;
    const common = `${formatNumber(completed)} jobs churned in ${seconds.toFixed(1)} s (${formatNumber(completed / seconds)} jobs/s) over ${formatNumber(stats.liveBytes / MB)} MB live; ${runs} compactions, ${formatNumber(stats.compaction.bytesReclaimed / MB)} MB reclaimed; 4 MiB segments`;
    return [
      {
        section: 'compaction',
        key: 'compaction.space.steady',
        label: 'disk use under churn between compactions, ÷ (2 × live + 1 segment)',
        value: worstSteady,
        unit: '× bound',
        detail: `worst of ${amplification.length} samples taken while no compaction ran; disk ÷ live: mean ${mean.toFixed(2)}×; the log grew by up to ${formatNumber(growthBytes / MB)} MB during one compaction (the bound holds while that stays under one segment); ${common}`,
        target: { of: 'value', atMost: 1 },
        status: 'measured',
        data: { worstSteady, mean, runs, completed, seconds, growthBytes },
      },
      {
        section: 'compaction',
        key: 'compaction.space.peak',
        label: 'peak disk use under churn, during compactions too, ÷ (2 × live + 1 segment)',
        value: worstPeak,
        unit: '× bound',
        detail: `peak ${formatNumber(peakBytes / MB)} MB on disk: while a compaction writes its new segment the old ones are still there (about live ÷ (1 − deadRatio) + live)`,
        status: 'measured',
        data: { worstPeak, peakBytes },
      },
    ];
  } finally {
    await context.discard(directory);
  }
}

/** Fastest of three opens (each closed again): the page cache is warm for all three. */
async function openMs(directory: string): Promise<number> {
  let best = Infinity;
  for (let round = 0; round < 3; round++) {
    const startNs = nowNs();
    const queue = await Queue.open(directory, { compaction: false });
    best = Math.min(best, secondsSince(startNs) * 1000);
    await queue.close();
  }
  return best;
}

/**
 * Open time after histories of growing length: one queue keeps a backlog and accumulates
 * history (jobs enqueued and completed); at each length it is closed and opened as it is, and a
 * copy of it is compacted and opened.
 */
async function openRows(context: BenchContext): Promise<Row[]> {
  const sizes = context.config.full ? FULL_SIZES : QUICK_SIZES;
  const directory = await context.scratch('compaction-open');
  const copy = await context.scratch('compaction-open-copy');
  const pad = BENCH_JOB_DATA.body;
  const results: { history: number; raw: number; compacted: number; rawBytes: number; compactedBytes: number }[] = [];
  try {
    let history = 0;
    for (const target of sizes.histories) {
      context.progress(`compaction: open time after ${target.toLocaleString('en-US')} jobs of history`);
      const queue = await Queue.open(directory, { durability: 'none', compaction: false });
      // The backlog waits an hour, so the churn's processor leaves it alone.
      const runAt = Date.now() + 3_600_000;
      if (history === 0) {
        for (let done = 0; done < sizes.openBacklog; done += ENQUEUE_BATCH_SIZE) {
          await queue.enqueueMany(jobsOf(Math.min(ENQUEUE_BATCH_SIZE, sizes.openBacklog - done), pad).map((job) => ({ ...job, options: { runAt } })));
        }
      }
      await churn(queue, target - history, pad);
      await queue.close();
      history = target;
      const raw = await openMs(directory);
      await context.discard(copy);
      await cp(directory, copy, { recursive: true });
      const compacting = await Queue.open(copy, { compaction: false });
      await compacting.compact();
      await compacting.close();
      const compacted = await openMs(copy);
      results.push({ history, raw, compacted, rawBytes: await directoryBytes(directory), compactedBytes: await directoryBytes(copy) });
    }
  } finally {
    await context.discard(directory);
    await context.discard(copy);
  }
  const first = results[0]!;
  const rows: Row[] = [];
  for (const result of results) {
    const growth = result === first ? '' : `; history ${formatNumber(result.history / first.history)}× the first: open ${(result.raw / first.raw).toFixed(1)}× without compaction, ${(result.compacted / first.compacted).toFixed(1)}× with`;
    rows.push(
      {
        section: 'compaction',
        key: `compaction.open.raw.${result.history}`,
        label: `open after ${formatNumber(result.history)} jobs of history, never compacted (best of 3)`,
        value: result.raw,
        unit: 'ms',
        detail: `log ${formatNumber(result.rawBytes / MB)} MB, ${formatNumber(sizes.openBacklog)} jobs waiting`,
        status: 'measured',
        data: { history: result.history, ms: result.raw, bytes: result.rawBytes },
      },
      {
        section: 'compaction',
        key: `compaction.open.compacted.${result.history}`,
        label: `open after ${formatNumber(result.history)} jobs of history, compacted (best of 3)`,
        value: result.compacted,
        unit: 'ms',
        detail: `log ${formatNumber(result.compactedBytes / MB)} MB; ${((100 * result.compacted) / result.raw).toFixed(0)}% of the open time without compaction${growth}`,
        status: 'measured',
        data: { history: result.history, ms: result.compacted, bytes: result.compactedBytes },
      },
    );
  }
  return rows;
}

/** Records the latency of 'sync' enqueues, one awaited at a time, while `busy()` holds. */
async function recordEnqueues(queue: BenchQueue, recorder: SampleRecorder, busy: () => boolean): Promise<number> {
  let count = 0;
  while (busy()) {
    const beforeNs = nowNs();
    await queue.enqueue(BENCH_JOB_NAME, BENCH_JOB_DATA, { durability: 'sync' });
    recorder.record(Number(nowNs() - beforeNs) / 1e6);
    count++;
  }
  return count;
}

/**
 * p99 of enqueue with and without a compaction running, on the same queue and log, in
 * alternating windows (one compaction, then as long without), so that whatever else loads the
 * machine weighs on both sides alike. The first compaction rewrites a half-dead log; the later
 * ones rewrite everything live again, which is as much writing.
 */
async function latencyRow(context: BenchContext, paced: boolean): Promise<Row> {
  const sizes = context.config.full ? FULL_SIZES : QUICK_SIZES;
  const jobs = sizes.smallJobs;
  context.progress(`compaction: p99 enqueue latency, ${sizes.latencyMs} ms each with and without ${paced ? 'paced' : 'unpaced'} compactions of a ${jobs.toLocaleString('en-US')}-job log`);
  const directory = await context.scratch(paced ? 'compaction-latency' : 'compaction-latency-unpaced');
  try {
    const queue = await halfDeadQueue(directory, jobs, 'l'.repeat(1000), paced ? undefined : Infinity);
    const during = new SampleRecorder();
    const alone = new SampleRecorder();
    const until = (deadlineNs: bigint) => () => nowNs() < deadlineNs;
    await recordEnqueues(queue, new SampleRecorder(), until(nowNs() + 300_000_000n)); // warm-up
    let compactions = 0;
    let duringMs = 0;
    while (duringMs < sizes.latencyMs) {
      const startNs = nowNs();
      let running = true;
      const compaction = queue.compact().finally(() => (running = false));
      await recordEnqueues(queue, during, () => running);
      await compaction;
      compactions++;
      const windowNs = nowNs() - startNs;
      duringMs += Number(windowNs) / 1e6;
      await recordEnqueues(queue, alone, until(nowNs() + windowNs));
    }
    await queue.close();
    const withCompaction = during.summary();
    const without = alone.summary();
    if (withCompaction === undefined || without === undefined) throw new Error('no latency samples');
    return {
      section: 'compaction',
      key: paced ? 'compaction.enqueue-p99' : 'compaction.enqueue-p99.unpaced',
      label: paced
        ? "p99 enqueue latency ('sync', one at a time) during compaction ÷ without (defaults: paced while enqueues sync)"
        : "the same, compaction.maxBytesPerSecond: Infinity (never paced)",
      value: withCompaction.p99 / without.p99,
      unit: '×',
      detail: `p99 ${withCompaction.p99.toFixed(2)} ms during ${compactions} compactions vs ${without.p99.toFixed(2)} ms in the windows between them (p50 ${withCompaction.p50.toFixed(2)} vs ${without.p50.toFixed(2)} ms, max ${withCompaction.max.toFixed(1)} vs ${without.max.toFixed(1)} ms; ${withCompaction.count} and ${without.count} enqueues)`,
      ...(paced ? { target: { of: 'value', atMost: 5 } as const } : { ratio: { to: 'disk.interference' } }),
      status: 'measured',
      data: { p99During: withCompaction.p99, p99Alone: without.p99, p50During: withCompaction.p50, p50Alone: without.p50, compactions },
    };
  } finally {
    await context.discard(directory);
  }
}

/**
 * The disk's sequential bandwidth measured again right before and right after the throughput
 * rows, the higher of the two: this VM's disk varied between about 350 and 1,800 MB/s from one
 * minute to the next, and a throughput ratio is only fair against the disk as it was then.
 */
async function throughputRowsWithBandwidth(context: BenchContext): Promise<Row[]> {
  const total = context.config.sequentialBytes;
  context.progress(`compaction: sequential write ${total / (1024 * 1024)} MiB + fdatasync, before and after the throughput rows`);
  const before = await sequentialSeconds(context, total, 'compaction-sequential-before');
  const rows = [await throughputRow(context, 1000), await throughputRow(context, 100), await smallLogRow(context)];
  const after = await sequentialSeconds(context, total, 'compaction-sequential-after');
  const bandwidth = (seconds: number): number => total / MB / seconds;
  return [
    {
      section: 'compaction',
      key: 'compaction.disk-sequential',
      label: 'sequential write (as in the disk table), just before and after the throughput rows: the higher',
      value: Math.max(bandwidth(before), bandwidth(after)),
      unit: 'MB/s',
      detail: `${formatNumber(bandwidth(before))} MB/s before, ${formatNumber(bandwidth(after))} MB/s after`,
      status: 'measured',
      data: { before: bandwidth(before), after: bandwidth(after) },
    },
    ...rows,
  ];
}

/** Every compaction row, one scenario at a time. */
export async function runCompactionBench(context: BenchContext): Promise<Row[]> {
  const rows = [
    ...(await throughputRowsWithBandwidth(context)),
    ...(await churnRows(context)),
    ...(await openRows(context)),
    await latencyRow(context, true),
    await latencyRow(context, false),
  ];
  context.note('compaction', "Queues run with durability 'none' while their logs are built (the enqueue-latency rows use 'sync'); each compaction's time runs from the cut to the moment the index points at the new segment, including its fsyncs.");
  context.note('compaction', "Throughput rows compact a freshly built log with no appends running, so the compaction is not paced (compaction.maxBytesPerSecond applies only while appends are being synced); the latency row runs with the defaults, paced.");
  if (!context.config.full) context.note('compaction', 'Quick mode uses smaller logs and shorter runs than --full.');
  return rows;
}
