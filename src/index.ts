/**
 * blero: an embedded, persistent job queue for Node.js on its own append-only, CRC-checked
 * segment log. No server, no Redis, no SQL.
 *
 * Start with {@link Queue.open}. Delivery is at-least-once; docs/queue.md says precisely what
 * can run twice and when.
 *
 * @packageDocumentation
 */
export { Queue } from './queue/queue.ts';
export type { CloseOptions } from './queue/queue.ts';
export type { QueueEvents } from './queue/queue-events.ts';
export type { QueueOptions, DefaultJobOptions, KeepJobs, CompactionOptions } from './queue/queue-options.ts';
export type { CompactionReport, CompactionStats, QueueStats } from './queue/compaction.ts';
export type {
  Backoff,
  EnqueueItem,
  Job,
  JobCounts,
  JobError,
  JobMap,
  DefaultJobMap,
  JobOptions,
  JobState,
  Processor,
  ProcessorOptions,
} from './queue/job.ts';
export type { Durability } from './engine/log.ts';
export {
  BleroError,
  ClosedError,
  CorruptionError,
  ErrorCode,
  LockedError,
  PoisonedError,
  RecordTooLargeError,
  StalledError,
  TimeoutError,
  UnrecoverableError,
} from './errors.ts';
export type { BleroErrorCode } from './errors.ts';
