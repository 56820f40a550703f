// The child process of the SIGKILL torture (test/crash/queue-sigkill.test.ts). It opens the queue
// in <dir> with durability <mode>, enqueues and processes jobs at full speed (four producers
// of enqueue/enqueueMany calls, a processor with eight slots, some jobs failing once and retried,
// some delayed; compaction every 10 ms), and reports to its parent
// over IPC, always after the fact:
//   { ready: pid }                              the queue is open
//   { compacting: true }                        a compaction starts
//   { acks: [[tag, id], ...], done: [id, ...], compacted: [jobs, ...] }
//     enqueues whose promise resolved, jobs whose 'completed' event fired (record written to the
//     OS), and compactions that completed
// It runs until it is killed. A report lost with the process only makes the parent's check
// weaker, never wrong. Job data is a pure function of the job's tag (jobFor), so the parent can
// check every job in the log, also those whose enqueue was never acknowledged.
//
//   node --import tsx test/support/queue-worker.ts <dir> <sync|interval|none> <round>
import { isDeepStrictEqual } from 'node:util';
import { pathToFileURL } from 'node:url';
import { Queue } from '../../src/index.ts';
import type { Durability, JobOptions, QueueOptions } from '../../src/index.ts';

/** Tags of round r are r * TAGS_PER_ROUND + seq, so every round's tags are distinct and ordered. */
export const TAGS_PER_ROUND = 1_000_000;
const HOUR_MS = 3_600_000;
const MAX_BACKLOG = 200;

/** The options both the worker and the checking parent open the queue with: no job is ever evicted. */
export const WORKER_QUEUE_OPTIONS = {
  removeOnComplete: Number.MAX_SAFE_INTEGER,
  removeOnFail: Number.MAX_SAFE_INTEGER,
  segmentSize: 256 * 1024,
} as const satisfies QueueOptions;

export interface WorkerMessage {
  readonly ready?: number;
  readonly acks?: readonly (readonly [number, number])[];
  readonly done?: readonly number[];
  /** A compaction starts (sent at once, so the parent can tell a kill inside one). */
  readonly compacting?: boolean;
  /** Compactions that completed, each with the number of live jobs it wrote. */
  readonly compacted?: readonly number[];
}

/** The job a tag stands for: a third carry raw bytes, the rest JSON with multi-byte text. */
export function jobFor(tag: number): { name: string; data: unknown; options: JobOptions | undefined } {
  const options: JobOptions | undefined = tag % 17 === 0 ? { delayMs: HOUR_MS } : tag % 11 === 0 ? { attempts: 2 } : undefined;
  if (tag % 3 === 0) {
    const bytes = Buffer.alloc(4 + (tag % 300));
    bytes.writeUInt32LE(tag, 0);
    for (let at = 4; at < bytes.length; at++) bytes[at] = (tag + at * 13) & 0xff;
    return { name: 'bytes', data: bytes, options };
  }
  return { name: 'json', data: { tag, text: 'é✓'.repeat(tag % 50), ratio: tag / 7 }, options };
}

export function tagOf(data: unknown): number | undefined {
  if (Buffer.isBuffer(data)) return data.length >= 4 ? data.readUInt32LE(0) : undefined;
  const tag = typeof data === 'object' && data !== null ? (data as { tag?: unknown }).tag : undefined;
  return typeof tag === 'number' ? tag : undefined;
}

/** True when `name` and `data` are exactly what jobFor(tag) enqueued. */
export function matchesTag(tag: number, name: string, data: unknown): boolean {
  const expected = jobFor(tag);
  if (name !== expected.name) return false;
  if (Buffer.isBuffer(expected.data)) return Buffer.isBuffer(data) && data.equals(expected.data);
  return isDeepStrictEqual(data, expected.data);
}

async function main(directory: string, durability: Durability, round: number): Promise<void> {
  const queue = await Queue.open(directory, { ...WORKER_QUEUE_OPTIONS, durability, syncIntervalMs: 5 });
  let acks: (readonly [number, number])[] = [];
  let done: number[] = [];
  let compacted: number[] = [];
  let flushing = false;
  const flush = (): void => {
    flushing = false;
    if (acks.length === 0 && done.length === 0 && compacted.length === 0) return;
    process.send!({ acks, done, compacted } satisfies WorkerMessage);
    acks = [];
    done = [];
    compacted = [];
  };
  const report = (): void => {
    if (flushing) return;
    flushing = true;
    setImmediate(flush);
  };
  queue.on('completed', (job) => {
    done.push(job.id);
    report();
  });
  queue.registerProcessor(
    async (job) => {
      const tag = tagOf(job.data)!;
      // Half the handlers return at once, half after an event-loop turn (overlapping runs).
      if (tag % 2 === 0) await new Promise((resolve) => setImmediate(resolve));
      if (tag % 11 === 0 && job.attempt === 1) throw new Error('the first attempt of every eleventh job fails');
      return tag;
    },
    { concurrency: 8 },
  );
  let seq = 0;
  const produce = async (): Promise<void> => {
    for (;;) {
      // Keep the backlog small so that the processor's records interleave with the enqueues.
      while (queue.counts().pending > MAX_BACKLOG) await new Promise((resolve) => setTimeout(resolve, 1));
      const count = seq % 5 === 0 ? 1 + (seq % 16) : 1;
      const tags = Array.from({ length: count }, () => round * TAGS_PER_ROUND + seq++);
      const jobs = tags.map(jobFor);
      const ids =
        count === 1
          ? [await queue.enqueue(jobs[0]!.name, jobs[0]!.data, jobs[0]!.options)]
          : await queue.enqueueMany(jobs.map((job) => ({ name: job.name, data: job.data, options: job.options })));
      ids.forEach((id, at) => acks.push([tags[at]!, id]));
      report();
    }
  };
  // Compaction back to back (a short pause between runs), so that many kills land inside one.
  const compactLoop = async (): Promise<void> => {
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      process.send!({ compacting: true } satisfies WorkerMessage);
      const result = await queue.compact();
      compacted.push(result.jobs);
      report();
    }
  };
  process.send!({ ready: process.pid } satisfies WorkerMessage);
  await Promise.all([produce(), produce(), produce(), produce(), compactLoop()]);
}

const script = process.argv[1];
if (script !== undefined && import.meta.url === pathToFileURL(script).href) {
  const [directory, mode, round] = process.argv.slice(2);
  if (directory === undefined || (mode !== 'sync' && mode !== 'interval' && mode !== 'none') || round === undefined) {
    throw new TypeError('usage: queue-worker.ts <dir> <sync|interval|none> <round>');
  }
  await main(directory, mode, Number(round));
}
