// Compile-time contract of the public types, checked by `npm run typecheck` (tsc covers test/):
// enqueue checks data against the name, processors see a union discriminated by name, events
// are typed, and the default map accepts anything. The runtime part only keeps vitest happy.
import { describe, expectTypeOf, it } from 'vitest';
import {
  Queue,
  type EnqueueItem,
  type Job,
  type JobCounts,
  type JobState,
  type QueueEvents,
  type CompactionReport,
  type QueueStats,
  type QueueOptions,
} from '../../src/index.ts';

type Jobs = { email: { to: string }; resize: Buffer };

interface InterfaceJobs {
  ping: { at: number };
}

// Never called: only compiled.
async function typedUsage(queue: Queue<Jobs>): Promise<void> {
  expectTypeOf(await queue.enqueue('email', { to: 'a@example.com' })).toEqualTypeOf<number>();
  await queue.enqueue('resize', Buffer.from('x'));
  // @ts-expect-error: the data does not match the name
  await queue.enqueue('email', { to: 1 });
  // @ts-expect-error: unknown job name
  await queue.enqueue('sms', { to: 'x' });
  // @ts-expect-error: email data is required to have `to`
  await queue.enqueue('email', {});
  expectTypeOf(await queue.enqueueMany([{ name: 'email', data: { to: 'x' } }, { name: 'resize', data: Buffer.alloc(1) }])).toEqualTypeOf<
    number[]
  >();
  // @ts-expect-error: a batch item is checked against its own name
  await queue.enqueueMany([{ name: 'resize', data: { to: 'x' } }]);

  queue.registerProcessor(async (job, signal) => {
    expectTypeOf(signal).toEqualTypeOf<AbortSignal>();
    expectTypeOf(job.name).toEqualTypeOf<'email' | 'resize'>();
    if (job.name === 'email') {
      expectTypeOf(job.data).toEqualTypeOf<{ to: string }>();
      return job.data.to;
    }
    expectTypeOf(job.data).toEqualTypeOf<Buffer>();
    return job.data.length;
  });

  const job = await queue.getJob(1);
  expectTypeOf(job).toEqualTypeOf<Job<Jobs> | undefined>();
  if (job !== undefined) {
    expectTypeOf(job.state).toEqualTypeOf<JobState>();
    expectTypeOf(job.id).toEqualTypeOf<number>();
  }
  expectTypeOf(queue.counts()).toEqualTypeOf<JobCounts>();

  queue.on('completed', (completed, result) => {
    expectTypeOf(completed).toEqualTypeOf<Job<Jobs>>();
    expectTypeOf(result).toEqualTypeOf<unknown>();
  });
  queue.on('retrying', (retried, error, retryAt) => {
    expectTypeOf(retried).toEqualTypeOf<Job<Jobs>>();
    expectTypeOf(error).toEqualTypeOf<Error>();
    expectTypeOf(retryAt).toEqualTypeOf<number>();
  });
  queue.on('drained', (...args) => expectTypeOf(args).toEqualTypeOf<[]>());
  queue.on('error', (error) => expectTypeOf(error).toEqualTypeOf<Error>());
  expectTypeOf<QueueEvents<Jobs>['failed']>().toEqualTypeOf<[job: Job<Jobs>, error: Error]>();
  await queue[Symbol.asyncDispose]();
}

async function defaultUsage(queue: Queue): Promise<void> {
  await queue.enqueue('anything', { free: 'form' });
  await queue.enqueue('other', 42);
  queue.registerProcessor((job) => {
    expectTypeOf(job.name).toEqualTypeOf<string>();
    expectTypeOf(job.data).toEqualTypeOf<unknown>();
  });
  expectTypeOf<EnqueueItem>().toEqualTypeOf<{ readonly name: string; readonly data: unknown; readonly options?: import('../../src/index.ts').JobOptions | undefined }>();
}

async function interfaceUsage(): Promise<void> {
  const queue = await Queue.open<InterfaceJobs>('/tmp/x');
  await queue.enqueue('ping', { at: 1 });
  queue.registerProcessor((job) => expectTypeOf(job.data).toEqualTypeOf<{ at: number }>());
}

// Never called: only compiled. Compaction's public surface.
async function compactionUsage(queue: Queue<Jobs>): Promise<void> {
  expectTypeOf(await queue.compact()).toEqualTypeOf<CompactionReport>();
  expectTypeOf(queue.stats()).toEqualTypeOf<QueueStats>();
  queue.on('compacted', (report) => expectTypeOf(report).toEqualTypeOf<CompactionReport>());
  const off: QueueOptions = { compaction: false };
  const tuned: QueueOptions = { compaction: { deadRatio: 0.3 } };
  expectTypeOf(off).toEqualTypeOf<QueueOptions>();
  expectTypeOf(tuned).toEqualTypeOf<QueueOptions>();
}

describe('public types', () => {
  it('compile (checked by tsc, not at run time)', () => {
    expectTypeOf(typedUsage).toBeFunction();
    expectTypeOf(defaultUsage).toBeFunction();
    expectTypeOf(interfaceUsage).toBeFunction();
    expectTypeOf(compactionUsage).toBeFunction();
    expectTypeOf(Queue.open<Jobs>).returns.resolves.toEqualTypeOf<Queue<Jobs>>();
  });
});
