// The reference model the engine crash tests judge a reopened log against. It records what a
// test appended (LSNs, payloads, atomic groups) and which rewrites it started, and decides
// whether a replay is a legal state after a crash:
// - LSNs strictly increase;
// - the replay is a prefix of the logical sequence (the appends, with every committed
//   rewrite's range replaced by its output), ending on an atomic-group boundary: never a
//   hole followed by later records, never a record that was not appended, never half a group;
// - the prefix reaches at least `floor`, the highest LSN the test saw acknowledged as durable.
// A rewrite whose promise resolved is committed; one that was cut short by the crash may or
// may not be, so both states are legal. A violation throws with the test's context (its seed)
// in the message, so every failure can be replayed.
import { Log } from '../../src/engine/log.ts';
import type { LogOptions } from '../../src/engine/log.ts';
import type { FileSystem } from '../../src/engine/file-system.ts';

/** The directory every simulated-disk test keeps its log in. */
export const LOG_DIR = '/blero/log';

export interface ModelRecord {
  readonly lsn: number;
  readonly payload: Buffer;
  /** False while more records of the same atomic group follow. */
  readonly groupEnd: boolean;
}

export interface ReplayedRecord {
  readonly lsn: number;
  readonly payload: Buffer;
  readonly location: number;
}

export type RewriteState = 'running' | 'resolved' | 'rejected';

export interface ModelRewrite {
  readonly coverEndLsn: number;
  readonly outputs: readonly Buffer[];
  state: RewriteState;
}

/** Which legal state a replay matched. */
export interface OracleMatch {
  /** Rewrites applied in the matched state. */
  readonly committedRewrites: number;
  /** Records of the logical sequence the replay holds. */
  readonly length: number;
  /** coverEndLsn of the last applied rewrite (0 when none): the LSN space below it is spent. */
  readonly coveredLsn: number;
}

export class LogModel {
  /** Every record handed to append()/appendGroup(), in LSN order. */
  readonly appended: ModelRecord[] = [];
  readonly rewrites: ModelRewrite[] = [];

  /**
   * Records a call: `firstLsn` is log.lastLsn - payloads.length + 1, read right after the call.
   * Appends are dense, except the first after a reopen that follows a rewrite's range (`afterGap`).
   */
  addAppend(firstLsn: number, payloads: readonly Uint8Array[], atomic: boolean, afterGap = false): void {
    const last = this.appended[this.appended.length - 1];
    if (last !== undefined && (afterGap ? firstLsn <= last.lsn : firstLsn !== last.lsn + 1)) {
      throw new Error(`model: append at LSN ${firstLsn} does not follow ${last.lsn}`);
    }
    payloads.forEach((payload, i) => {
      this.appended.push({ lsn: firstLsn + i, payload: Buffer.from(payload), groupEnd: !atomic || i === payloads.length - 1 });
    });
  }

  /** Starts a model from what a reopened log replayed (complete groups only, so each record ends one). */
  static fromReplay(records: readonly ReplayedRecord[]): LogModel {
    const model = new LogModel();
    for (const record of records) model.appended.push({ lsn: record.lsn, payload: record.payload, groupEnd: true });
    return model;
  }

  /** The logical sequence with the first `committed` rewrites applied. */
  logical(committed: number): ModelRecord[] {
    let sequence: ModelRecord[] = this.appended;
    for (const rewrite of this.rewrites.slice(0, committed)) {
      // An output's records take LSNs from the first segment's base, which is always 1.
      const outputs = rewrite.outputs.map((payload, i) => ({ lsn: 1 + i, payload, groupEnd: true }));
      sequence = [...outputs, ...sequence.filter((r) => r.lsn > rewrite.coverEndLsn)];
    }
    return sequence;
  }

  /** The current logical records at or below `lsn` (what a rewrite up to a cut may keep). */
  liveUpTo(lsn: number): ModelRecord[] {
    return this.logical(this.resolvedRewrites()).filter((r) => r.lsn <= lsn);
  }

  resolvedRewrites(): number {
    let count = 0;
    while (count < this.rewrites.length && this.rewrites[count]!.state === 'resolved') count++;
    return count;
  }

  /** The rewrite counts a crash may have left committed. */
  candidateCommits(): number[] {
    const resolved = this.resolvedRewrites();
    return resolved < this.rewrites.length ? [resolved, resolved + 1] : [resolved];
  }

  /**
   * Checks `replayed` against every legal state and returns the one it matches; throws with
   * `context` and a description of the closest miss otherwise.
   */
  check(replayed: readonly ReplayedRecord[], floor: number, context: string): OracleMatch {
    for (let i = 1; i < replayed.length; i++) {
      if (!(replayed[i]!.lsn > replayed[i - 1]!.lsn)) {
        throw new Error(`${context}: LSNs not strictly increasing at replay index ${i}: ${replayed[i - 1]!.lsn} then ${replayed[i]!.lsn}`);
      }
    }
    const misses: string[] = [];
    for (const committed of this.candidateCommits()) {
      const expected = this.logical(committed);
      const miss = prefixMiss(replayed, expected, floor);
      if (miss === undefined) {
        const coveredLsn = committed === 0 ? 0 : this.rewrites[committed - 1]!.coverEndLsn;
        return { committedRewrites: committed, length: replayed.length, coveredLsn };
      }
      misses.push(`with ${committed} rewrite(s) committed: ${miss}`);
    }
    throw new Error(
      `${context}: replay is not a legal state (floor ${floor}; replayed LSNs ${summarize(replayed.map((r) => r.lsn))}; ` +
        `appended ${summarize(this.appended.map((r) => r.lsn))}):\n  ${misses.join('\n  ')}`,
    );
  }
}

/** Why `replayed` is not an acceptable prefix of `expected`, or undefined when it is. */
function prefixMiss(replayed: readonly ReplayedRecord[], expected: readonly ModelRecord[], floor: number): string | undefined {
  if (replayed.length > expected.length) return `${replayed.length} records replayed but only ${expected.length} exist`;
  for (let i = 0; i < replayed.length; i++) {
    const got = replayed[i]!;
    const want = expected[i]!;
    if (got.lsn !== want.lsn) return `index ${i}: LSN ${got.lsn}, expected ${want.lsn} (a hole or a record never appended)`;
    if (!got.payload.equals(want.payload)) return `index ${i} (LSN ${got.lsn}): payload differs (${got.payload.length} vs ${want.payload.length} bytes)`;
  }
  const m = replayed.length;
  if (m > 0 && !expected[m - 1]!.groupEnd) return `replay ends inside an atomic group at LSN ${expected[m - 1]!.lsn}`;
  const firstMissing = expected[m];
  if (firstMissing !== undefined && firstMissing.lsn <= floor) {
    return `acknowledged LSN ${firstMissing.lsn} is missing (durable floor ${floor})`;
  }
  return undefined;
}

/** `1-40,42,50-51`: a short, readable list of LSNs for failure messages. */
export function summarize(lsns: readonly number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < lsns.length; ) {
    let j = i;
    while (j + 1 < lsns.length && lsns[j + 1] === lsns[j]! + 1) j++;
    parts.push(i === j ? `${lsns[i]}` : `${lsns[i]}-${lsns[j]}`);
    i = j + 1;
  }
  return parts.length === 0 ? '(none)' : parts.join(',');
}

/** Opens the log on `fileSystem` and collects the replay (payloads copied). */
export async function openAndReplay(
  fileSystem: FileSystem,
  options: LogOptions = {},
): Promise<{ log: Log; records: ReplayedRecord[] }> {
  const records: ReplayedRecord[] = [];
  const log = await Log.open(LOG_DIR, {
    ...options,
    fileSystem,
    onRecord: (payload, lsn, location) => records.push({ lsn, payload: Buffer.from(payload), location }),
  });
  return { log, records };
}

/** Rejects with a message naming `context` if `promise` has not settled after `ms` (a hang is a bug). */
export async function withinMs<T>(promise: Promise<T>, ms: number, context: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${context}: did not settle within ${ms} ms (hang)`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A payload of `size` bytes whose content depends on `tag` (distinct tags give distinct bytes). */
export function taggedPayload(tag: number, size: number): Buffer {
  const bytes = Buffer.alloc(size);
  let state = (tag * 2654435761) >>> 0;
  for (let i = 0; i < size; i++) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  if (size >= 4) bytes.writeUInt32LE(tag >>> 0, 0);
  return bytes;
}
