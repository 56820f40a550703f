// Builds the public Job objects (for getJob, processors and events) from a job's decoded records
// and the few fields the index holds. Jobs handed out are plain frozen snapshots: changing one
// changes nothing in the queue.
import { decodeData } from './job-data.ts';
import type { AddedRecord, CompletedRecord, FailedRecord } from './job-records.ts';
import type { Job, JobError, JobState } from './job.ts';

export interface JobViewFields {
  readonly state: JobState;
  readonly attempt: number;
  readonly runAt: number;
  readonly stalls: number;
  readonly finishedAt?: number | undefined;
  readonly result?: unknown;
  readonly error?: JobError | undefined;
}

export function jobView(added: AddedRecord, data: unknown, fields: JobViewFields): Job {
  const job: Record<string, unknown> = {
    id: added.id,
    name: added.name,
    data,
    state: fields.state,
    attempt: fields.attempt,
    maxAttempts: added.maxAttempts,
    priority: added.priority,
    runAt: fields.runAt,
    createdAt: added.createdAt,
    stalls: fields.stalls,
  };
  if (fields.finishedAt !== undefined) job['finishedAt'] = fields.finishedAt;
  if (fields.state === 'completed') job['result'] = fields.result;
  if (fields.error !== undefined) job['error'] = fields.error;
  return Object.freeze(job) as unknown as Job;
}

/** The job's data, decoded from its added record. */
export function jobData(added: AddedRecord): unknown {
  return decodeData(added.dataEncoding, added.data);
}

export function jobErrorOf(record: FailedRecord): JobError {
  const error: { name: string; message: string; stack?: string; code?: string } = { name: record.errorName, message: record.message };
  if (record.stack !== undefined) error.stack = record.stack;
  if (record.errorCode !== '') error.code = record.errorCode;
  return Object.freeze(error);
}

export function jobResultOf(record: CompletedRecord): unknown {
  return record.result === undefined ? undefined : decodeData(record.result.encoding, record.result.bytes);
}

/** The same job in a later state, for events. */
export function withState(job: Job, fields: Partial<JobViewFields>): Job {
  return Object.freeze({ ...job, ...fields }) as Job;
}
