// The events a Queue emits and their arguments, as the @types/node typed EventEmitter map.
import type { CompactionReport } from './compaction.ts';
import type { DefaultJobMap, Job, JobMap } from './job.ts';

/**
 * Events of a `Queue<J>`. Every job event fires after the record of the change has reached the
 * OS (not necessarily the disk), in log order.
 */
export type QueueEvents<J extends JobMap = DefaultJobMap> = {
  /** A job was handed to a processor (its started record is written). `job.state` is `'active'`. */
  active: [job: Job<J>];
  /** A processor returned: `result` is its return value as returned (getJob later shows the stored copy). */
  completed: [job: Job<J>, result: unknown];
  /**
   * An attempt failed and no attempt is left (or the error was an `UnrecoverableError`):
   * the job is `'failed'` for good. A timeout fails with a `TimeoutError`.
   */
  failed: [job: Job<J>, error: Error];
  /** An attempt failed and the job will run again at `retryAt` (ms since the epoch). */
  retrying: [job: Job<J>, error: Error, retryAt: number];
  /**
   * Nothing is pending or active any more (delayed jobs may remain), after at least one job ran.
   * `await once(queue, 'drained')` waits for a backlog to be worked off.
   */
  drained: [];
  /**
   * An internal failure, e.g. a failed write or fsync that poisoned the log. The queue stops
   * dispatching; close it and open it again to recover from what is on disk. As for any
   * EventEmitter, an 'error' without a listener is thrown (as an uncaught exception).
   */
  error: [error: Error];
  /**
   * A compaction committed: the log's segments up to its cut (`report.bytesBefore`) were
   * replaced by one holding only live jobs (`report.bytesAfter`). Counters: `queue.stats()`.
   */
  compacted: [report: CompactionReport];
};
