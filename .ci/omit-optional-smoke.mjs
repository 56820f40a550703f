// CI smoke check of a product promise: `npm install --omit=optional` gives a working queue.
// Run from a scratch project where the packed tarball was installed without fs-ext.
import { Queue } from 'blero';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'blero-omit-optional-'));
try {
  let q = await Queue.open(dir);
  await q.enqueue('double', { n: 21 });
  await q.close();
  q = await Queue.open(dir); // the job survives a reopen
  const result = await new Promise((resolve, reject) => {
    q.on('completed', (_job, value) => resolve(value));
    q.on('failed', (_job, error) => reject(error));
    q.registerProcessor(async (job) => job.data.n * 2);
  });
  await q.close();
  if (result !== 42) throw new Error(`expected 42, got ${result}`);
  console.log('omit-optional smoke: ok (queue works without fs-ext)');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
