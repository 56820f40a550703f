// Measures heap bytes per pending job after a replay, and the open (replay) time, for a log of
// N pending jobs (default 1,000,000 with 100-byte payloads). Not a test: run it by hand,
//   node --expose-gc --import tsx test/queue/measure-heap.ts [jobs] [payloadBytes]
// It writes the log in this process, then opens it in a fresh child process (so nothing of the
// writing phase is left on the heap) and prints the figures docs/queue.md quotes.
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from '../../src/index.ts';

const BATCH = 10_000;

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run with node --expose-gc');
  for (let round = 0; round < 4; round++) collect();
}

async function write(dir: string, jobs: number, payloadBytes: number): Promise<void> {
  const queue = await Queue.open(dir, { durability: 'none', payloadCacheBytes: 0 });
  const data = 'x'.repeat(Math.max(0, payloadBytes - 2)); // JSON string quotes make up the rest
  for (let done = 0; done < jobs; done += BATCH) {
    const count = Math.min(BATCH, jobs - done);
    await queue.enqueueMany(Array.from({ length: count }, () => ({ name: 'job', data })));
  }
  await queue.close();
}

async function measureOpen(dir: string, jobs: number): Promise<void> {
  gc();
  const before = process.memoryUsage();
  const startedAt = performance.now();
  const queue = await Queue.open(dir);
  const openMs = performance.now() - startedAt;
  gc();
  const after = process.memoryUsage();
  const counts = queue.counts();
  if (counts.pending !== jobs) throw new Error(`expected ${jobs} pending jobs, found ${counts.pending}`);
  const heapBytes = after.heapUsed - before.heapUsed;
  // `external` includes `arrayBuffers` (Node's docs): count it once.
  const externalBytes = after.external - before.external;
  const report = {
    jobs,
    openMs: Math.round(openMs),
    heapBytesPerJob: Math.round(heapBytes / jobs),
    // Typed-array columns live outside the V8 heap (array buffers); they are part of the cost.
    externalBytesPerJob: Math.round(externalBytes / jobs),
    totalBytesPerJob: Math.round((heapBytes + externalBytes) / jobs),
    rssMiB: Math.round(after.rss / 2 ** 20),
  };
  await queue.close();
  process.send?.(report);
}

const [mode, dirArg, jobsArg] = process.argv.slice(2);
if (mode === '--open' && dirArg !== undefined) {
  await measureOpen(dirArg, Number(jobsArg));
} else {
  const jobs = Number(process.argv[2] ?? 1_000_000);
  const payloadBytes = Number(process.argv[3] ?? 100);
  const dir = await mkdtemp(path.join(tmpdir(), 'blero-heap-'));
  try {
    const writeStart = performance.now();
    await write(dir, jobs, payloadBytes);
    console.log(`wrote ${jobs} pending jobs with ${payloadBytes}-byte payloads in ${Math.round(performance.now() - writeStart)} ms`);
    const child = fork(fileURLToPath(import.meta.url), ['--open', dir, String(jobs)], {
      execArgv: ['--expose-gc', '--import', 'tsx'],
    });
    const [report] = await once(child, 'message');
    await once(child, 'exit');
    console.log(report);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
