// Child process of recovery.test.ts: opens the queue in argv[2], optionally enqueues one job with
// maxStalls argv[3], and registers a processor that reports each job it starts to the parent and
// never finishes, so the parent can SIGKILL the process while the job is active.
import { Queue } from '../../src/index.ts';

const [directory, maxStalls] = process.argv.slice(2);
if (directory === undefined) throw new Error('usage: crash-child <dir> [maxStalls]');
const queue = await Queue.open(directory);
if (maxStalls !== undefined) await queue.enqueue('crashy', { n: 1 }, { maxStalls: Number(maxStalls) });
queue.registerProcessor(async (job) => {
  process.send?.({ active: job.id, attempt: job.attempt, stalls: job.stalls });
  await new Promise(() => undefined);
});
