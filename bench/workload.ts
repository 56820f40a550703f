// The job both queues run in the bench (blero's and the SQLite baseline), so that their rows
// compare the same work: one job name, JSON data of 100 bytes once serialised, and batches of
// 1,000 for the batch-enqueue scenarios.
import assert from 'node:assert/strict';

export const BENCH_JOB_NAME = 'bench';

/** JSON of exactly 100 bytes: `{"to":"user@example.com","body":"xxx…"}`. */
export const BENCH_JOB_DATA: { readonly to: string; readonly body: string } = {
  to: 'user@example.com',
  body: 'x'.repeat(100 - JSON.stringify({ to: 'user@example.com', body: '' }).length),
};
assert(Buffer.byteLength(JSON.stringify(BENCH_JOB_DATA)) === 100, 'bench job data is 100 bytes of JSON');

export const ENQUEUE_BATCH_SIZE = 1000;
