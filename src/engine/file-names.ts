// Names of every file the engine creates in a log directory, and the one parser that
// recognises them. Recovery and compaction use parseFileName to find leftovers; any name it
// does not recognise belongs to someone else and is never touched.
//
//   seg-<baseLsn:20 digits>-<generation:6 digits>.log   a segment (generation 0: written by the
//                                                        appender; >0: a compaction output)
//   <segment name>.tmp                                  being built; deleted on open
//   quarantine-<ms>-<segment name>                      bytes moved aside by `repair`
//   LOCK, LOCK.break                                    the directory lock (and its stale-break guard)

export const LOCK_FILE_NAME = 'LOCK';

const SEGMENT_PATTERN = /^seg-(\d{20})-(\d{6})\.log$/;
const TEMP_PATTERN = /^seg-(\d{20})-(\d{6})\.log\.tmp$/;
const QUARANTINE_PATTERN = /^quarantine-\d+-.+$/;

export type ParsedFileName =
  | { readonly kind: 'segment'; readonly baseLsn: number; readonly generation: number }
  | { readonly kind: 'temp'; readonly baseLsn: number; readonly generation: number }
  | { readonly kind: 'quarantine' }
  | { readonly kind: 'lock' };

export function segmentFileName(baseLsn: number, generation: number): string {
  return `seg-${String(baseLsn).padStart(20, '0')}-${String(generation).padStart(6, '0')}.log`;
}

export function tempFileName(baseLsn: number, generation: number): string {
  return `${segmentFileName(baseLsn, generation)}.tmp`;
}

export function quarantineFileName(original: string, nowMs: number): string {
  return `quarantine-${nowMs}-${original}`;
}

export function parseFileName(name: string): ParsedFileName | undefined {
  if (name === LOCK_FILE_NAME || name === `${LOCK_FILE_NAME}.break`) return { kind: 'lock' };
  let match = SEGMENT_PATTERN.exec(name);
  if (match) return { kind: 'segment', baseLsn: Number(match[1]), generation: Number(match[2]) };
  match = TEMP_PATTERN.exec(name);
  if (match) return { kind: 'temp', baseLsn: Number(match[1]), generation: Number(match[2]) };
  if (QUARANTINE_PATTERN.test(name)) return { kind: 'quarantine' };
  return undefined;
}
