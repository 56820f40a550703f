// Every public error class and its stable code. Codes are a contract (listed in the README);
// messages may change. Invalid arguments are plain TypeError/RangeError without a code,
// thrown before anything is written.

export const ErrorCode = {
  corrupt: 'ERR_BLERO_CORRUPT',
  locked: 'ERR_BLERO_LOCKED',
  closed: 'ERR_BLERO_CLOSED',
  poisoned: 'ERR_BLERO_POISONED',
  recordTooLarge: 'ERR_BLERO_RECORD_TOO_LARGE',
  timeout: 'ERR_BLERO_TIMEOUT',
  unrecoverable: 'ERR_BLERO_UNRECOVERABLE',
  stalled: 'ERR_BLERO_STALLED',
} as const;
export type BleroErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Base class of every error blero raises on purpose. Branch on `code`, not on the message. */
export class BleroError extends Error {
  readonly code: BleroErrorCode;
  constructor(code: BleroErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * Bytes on disk that cannot be explained by a crash: a bad checksum in a sealed segment, a bad
 * record followed by records that were synced after it, a gap in sequence numbers, a missing
 * segment, a bad header or an unknown format version. Opening with `repair: true` truncates at
 * the damage and moves what follows into a quarantine file instead.
 */
export class CorruptionError extends BleroError {
  /** Path of the damaged file. For a missing segment: the segment right after the gap. */
  readonly file: string;
  /** Byte offset in `file` where the damage starts (0 for a missing segment or a bad header). */
  readonly offset: number;
  /**
   * Which recovery case applied: a key of RECOVERY_RULES in src/engine/recovery.ts, listed in
   * docs/format.md (for example `'sealed-segment-damage'`, `'vouched-damage'`, `'lsn-gap'`).
   */
  readonly reason: string;
  constructor(file: string, offset: number, reason: string, detail: string) {
    super(ErrorCode.corrupt, `${file} at offset ${offset}: ${detail} (${reason})`);
    this.file = file;
    this.offset = offset;
    this.reason = reason;
  }
}

/** Another process (or another open instance in this process) holds the directory lock. */
export class LockedError extends BleroError {
  readonly directory: string;
  /** Process id of the holder, when the lock implementation can tell. */
  readonly holderPid: number | undefined;
  constructor(directory: string, holderPid: number | undefined, detail?: string) {
    super(
      ErrorCode.locked,
      `${directory} is locked by ${holderPid === undefined ? 'another process' : `process ${holderPid}`}` +
        (detail ? ` (${detail})` : ''),
    );
    this.directory = directory;
    this.holderPid = holderPid;
  }
}

/** The log or queue was closed (or is closing) before or during the call. */
export class ClosedError extends BleroError {
  constructor(what = 'log') {
    super(ErrorCode.closed, `the ${what} is closed`);
  }
}

/**
 * A write or fsync failed earlier, so the state of the file is unknown. Every later append
 * fails with this error (its `cause` is the original one); reopening recovers from the disk.
 */
export class PoisonedError extends BleroError {
  constructor(cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(ErrorCode.poisoned, `the log is poisoned by an earlier I/O failure: ${reason}; reopen it to recover`, {
      cause,
    });
  }
}

/** A record (an encoded job) is larger than `maxRecordSize`. Nothing was written. */
export class RecordTooLargeError extends BleroError {
  readonly sizeBytes: number;
  readonly maxRecordSize: number;
  constructor(sizeBytes: number, maxRecordSize: number) {
    super(ErrorCode.recordTooLarge, `record of ${sizeBytes} bytes exceeds maxRecordSize ${maxRecordSize}`);
    this.sizeBytes = sizeBytes;
    this.maxRecordSize = maxRecordSize;
  }
}

/** A job attempt ran past its `timeoutMs`; its signal was aborted with this reason. */
export class TimeoutError extends BleroError {
  readonly jobId: number | undefined;
  readonly timeoutMs: number;
  constructor(timeoutMs: number, jobId?: number) {
    super(ErrorCode.timeout, `job${jobId === undefined ? '' : ` ${jobId}`} timed out after ${timeoutMs} ms`);
    this.jobId = jobId;
    this.timeoutMs = timeoutMs;
  }
}

/** Throw from a processor to fail the job at once, skipping its remaining attempts. */
export class UnrecoverableError extends BleroError {
  constructor(message = 'unrecoverable', options?: ErrorOptions) {
    super(ErrorCode.unrecoverable, message, options);
  }
}

/** A job was interrupted by more process crashes than its `maxStalls` allows. */
export class StalledError extends BleroError {
  readonly jobId: number;
  readonly stalls: number;
  constructor(jobId: number, stalls: number) {
    super(ErrorCode.stalled, `job ${jobId} stalled ${stalls} times (the process died while it ran)`);
    this.jobId = jobId;
    this.stalls = stalls;
  }
}
