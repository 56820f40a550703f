// The directory lock: one process at a time per log directory. Both implementations use the
// file <dir>/LOCK and write the same contents, `pid\nstart-time\nkind\n` (start time: field 22
// of /proc/<pid>/stat, empty where there is no /proc), so a loser can name the holder and each
// implementation can see a holder of the other kind.
//
// flock (fs-ext, native; preferred when it loads): open LOCK, flock(LOCK_EX | LOCK_NB). The
//   kernel owns the lock: it goes away when the holder dies, and it belongs to the open file
//   description, so a second open in the same process is refused too. The pid is written only
//   to name the holder. Release unlinks LOCK before unlocking, so an acquirer checks after its
//   flock that the file it locked is still the one named LOCK, and starts over if not.
//   Limit: flock over NFS is emulated or absent depending on the client; use a local disk.
//
// pidfile (pure JS; the fallback): create LOCK with O_EXCL. If it exists, its holder is alive
//   when process.kill(pid, 0) finds the pid and the pid's start time still matches (a reused
//   pid does not); otherwise the lock is stale and is broken while holding a second O_EXCL
//   file, LOCK.break, so two newcomers cannot both break it and both win. A process-wide set of
//   real paths refuses a second open from this process. Limits, all on the side of the holder:
//   - local file systems only: O_EXCL and pid liveness mean nothing across machines;
//   - a LOCK that does not parse is taken as being written for 10 s, then as debris: a creator
//     frozen for 10 s between its create and its write loses the lock;
//   - a LOCK.break older than 10 s is taken as abandoned: a breaker frozen that long inside
//     it, or two newcomers removing the same abandoned one at once, can let two breakers run;
//   - without /proc, a reused pid looks alive: the lock is refused, never wrongly granted.
//
// Mixing the two across processes on one directory is safe except in one window: a flock
// acquirer that opens LOCK right after a pidfile creator made it, before it wrote its pid.
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { debuglog, promisify } from 'node:util';
import { LockedError } from '../errors.ts';
import { LOCK_FILE_NAME } from './file-names.ts';
import type { LockMode } from './log-options.ts';

export type LockKind = 'flock' | 'pidfile';

/** A held directory lock. It stays held until `release()` or the death of this process. */
export interface DirectoryLock {
  readonly kind: LockKind;
  /** Path of the lock file. */
  readonly path: string;
  /** Releases the lock. Idempotent: later calls return the first call's promise. */
  release(): Promise<void>;
}

/** The part of fs-ext used here. */
export interface FsExt {
  flock(fd: number, flags: 'exnb' | 'un', callback: (error: NodeJS.ErrnoException | null) => void): void;
}

const debug = debuglog('blero');
const BREAK_FILE_NAME = `${LOCK_FILE_NAME}.break`;
/** A LOCK that does not parse and is younger than this is being written; older, it is debris. */
const UNPARSABLE_GRACE_MS = 10_000;
/** A LOCK.break older than this was left by a breaker that died. */
const BREAK_ABANDONED_MS = 10_000;
/** Bounds the retries when LOCK keeps changing under us (released, broken, replaced). */
const MAX_ATTEMPTS = 10;
const RETRY_DELAY_MS = 25;
/** A valid lock file is at most 10 + 1 + 20 + 1 + 7 + 1 bytes; anything longer is garbage. */
const MAX_LOCK_FILE_BYTES = 64;
const HOLDER_PATTERN = /^(\d{1,10})\n(\d{0,20})\n(?:(flock|pidfile)\n)?$/;

const defaultLoader = (): FsExt => createRequire(import.meta.url)('fs-ext') as FsExt;
let fsExtLoader: () => FsExt = defaultLoader;
let fsExtLoad: { readonly fsExt: FsExt } | { readonly reason: string } | undefined;
/** Real paths of the directories this process holds with a pidfile lock. */
const pidfileHeld = new Set<string>();

/**
 * @internal Replaces the fs-ext loader (`undefined` restores the real one) and forgets the
 * cached load result, so a test can make fs-ext "fail to load".
 */
export function setFsExtLoaderForTests(loader: (() => FsExt) | undefined): void {
  fsExtLoader = loader ?? defaultLoader;
  fsExtLoad = undefined;
}

/**
 * Takes the lock of `directory` (which must exist). `'auto'` uses flock when fs-ext loads and
 * the pid-file lock otherwise (announced under NODE_DEBUG=blero). `mode` is validated by
 * resolveLogOptions at the public boundary.
 * @throws LockedError when another process, or another open in this one, holds the lock.
 * @throws Error when `mode` is `'flock'` and fs-ext cannot be loaded.
 */
export async function acquireDirectoryLock(directory: string, mode: LockMode = 'auto'): Promise<DirectoryLock> {
  const lockPath = path.join(directory, LOCK_FILE_NAME);
  if (mode === 'pidfile') return acquirePidfileLock(directory, lockPath);
  fsExtLoad ??= loadFsExt();
  if ('fsExt' in fsExtLoad) return acquireFlockLock(fsExtLoad.fsExt, directory, lockPath);
  if (mode === 'flock') {
    throw new Error(`lock 'flock' needs the optional dependency fs-ext, which did not load: ${fsExtLoad.reason}`);
  }
  debug('fs-ext unavailable (%s); using pid-file lock for %s', fsExtLoad.reason, directory);
  return acquirePidfileLock(directory, lockPath);
}

function loadFsExt(): { fsExt: FsExt } | { reason: string } {
  try {
    return { fsExt: fsExtLoader() };
  } catch (error) {
    return { reason: error instanceof Error ? error.message : String(error) };
  }
}

async function acquireFlockLock(fsExt: FsExt, directory: string, lockPath: string): Promise<DirectoryLock> {
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const handle = await fsp.open(lockPath, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o644);
    let lock: DirectoryLock | undefined;
    try {
      lock = await lockOpenFile(fsExt, handle, directory, lockPath);
    } finally {
      // Closing the only descriptor of the open file drops its flock, if we got one.
      if (lock === undefined) await handle.close();
    }
    if (lock !== undefined) return lock;
  }
  throw new LockedError(directory, undefined, `LOCK was replaced ${MAX_ATTEMPTS} times while locking it`);
}

/** Locks an open LOCK; undefined when it was unlinked meanwhile and the caller must start over. */
async function lockOpenFile(
  fsExt: FsExt,
  handle: fsp.FileHandle,
  directory: string,
  lockPath: string,
): Promise<DirectoryLock | undefined> {
  try {
    await flock(fsExt, handle.fd, 'exnb');
  } catch (error) {
    if (!hasCode(error, 'EAGAIN', 'EWOULDBLOCK')) throw error;
    throw new LockedError(directory, parseHolder((await readHead(lockPath)) ?? '')?.pid);
  }
  if (!(await isSameFile(handle, lockPath))) return undefined;
  // The kernel vouches only for flock holders; a live pidfile holder would not show up there.
  const state = await inspectLock(lockPath);
  if (state.state === 'live' && state.kind === 'pidfile') throw new LockedError(directory, state.pid);
  const content = Buffer.from(await lockContent('flock'));
  await handle.truncate(0);
  await handle.write(content, 0, content.length, 0);
  return makeLock('flock', lockPath, async () => {
    if (await isSameFile(handle, lockPath)) await unlinkIfExists(lockPath);
    await flock(fsExt, handle.fd, 'un');
    await handle.close();
  });
}

async function acquirePidfileLock(directory: string, lockPath: string): Promise<DirectoryLock> {
  const key = await fsp.realpath(directory);
  if (pidfileHeld.has(key)) throw new LockedError(directory, process.pid, 'already open in this process');
  pidfileHeld.add(key);
  try {
    const content = await lockContent('pidfile');
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      if (await createExclusive(lockPath, content)) {
        await syncDirectory(directory);
        return makeLock('pidfile', lockPath, () => releasePidfileLock(directory, lockPath, content, key));
      }
      const state = await inspectLock(lockPath);
      if (state.state === 'live') throw new LockedError(directory, state.pid);
      if (state.state === 'busy') throw new LockedError(directory, undefined, 'LOCK is being written');
      if (state.state === 'stale' && !(await breakStaleLock(directory, lockPath))) await delay(RETRY_DELAY_MS);
    }
    throw new LockedError(directory, undefined, `a stale LOCK could not be broken in ${MAX_ATTEMPTS} attempts`);
  } catch (error) {
    pidfileHeld.delete(key);
    throw error;
  }
}

async function releasePidfileLock(directory: string, lockPath: string, content: string, key: string): Promise<void> {
  try {
    // Someone may have judged us dead and broken the lock; their LOCK is not ours to remove.
    if ((await readHead(lockPath)) !== content) return;
    await fsp.unlink(lockPath);
    await syncDirectory(directory);
  } finally {
    pidfileHeld.delete(key);
  }
}

/** Removes a stale LOCK under LOCK.break; false when another breaker is at work (wait, retry). */
async function breakStaleLock(directory: string, lockPath: string): Promise<boolean> {
  const breakPath = path.join(directory, BREAK_FILE_NAME);
  if (!(await createExclusive(breakPath, `${process.pid}\n`))) {
    if ((await ageMs(breakPath)) <= BREAK_ABANDONED_MS) return false;
    debug('removing abandoned %s', breakPath);
    await unlinkIfExists(breakPath);
    return true;
  }
  try {
    // Judge again under the mutex: since our first look, another breaker may have replaced the
    // stale LOCK with a live one, and only breakers (now excluded) replace a stale LOCK.
    const state = await inspectLock(lockPath);
    if (state.state !== 'stale') return true;
    debug('breaking stale lock %s (%s)', lockPath, state.reason);
    await unlinkIfExists(lockPath);
    await syncDirectory(directory);
  } finally {
    await unlinkIfExists(breakPath);
  }
  return true;
}

type LockState =
  | { readonly state: 'absent' }
  | { readonly state: 'busy' }
  | { readonly state: 'live'; readonly pid: number; readonly kind: LockKind | undefined }
  | { readonly state: 'stale'; readonly reason: string };

async function inspectLock(lockPath: string): Promise<LockState> {
  const head = await readHead(lockPath);
  if (head === undefined) return { state: 'absent' };
  const holder = parseHolder(head);
  if (holder === undefined) {
    const isOld = (await ageMs(lockPath)) > UNPARSABLE_GRACE_MS;
    return isOld ? { state: 'stale', reason: 'unparsable and old' } : { state: 'busy' };
  }
  if (await isHolderAlive(holder)) return { state: 'live', pid: holder.pid, kind: holder.kind };
  return { state: 'stale', reason: `process ${holder.pid} is gone` };
}

interface Holder {
  readonly pid: number;
  readonly startTime: string;
  readonly kind: LockKind | undefined;
}

function parseHolder(head: string): Holder | undefined {
  const match = HOLDER_PATTERN.exec(head);
  const pid = Number(match?.[1]);
  // pid 0 and negative pids address process groups in kill(2): never probe them.
  if (!match || !(pid >= 1 && pid <= 0x7fffffff)) return undefined;
  return { pid, startTime: match[2] ?? '', kind: match[3] as LockKind | undefined };
}

async function isHolderAlive(holder: Holder): Promise<boolean> {
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    // EPERM: the pid exists but belongs to another user, so it is alive.
    if (hasCode(error, 'ESRCH')) return false;
  }
  if (holder.startTime === '') return true;
  const startTime = await readStartTime(holder.pid);
  return startTime === undefined || startTime === holder.startTime;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot), or undefined. */
async function readStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await fsp.readFile(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (the command name) may contain spaces and parentheses: count from the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[22 - 3];
  } catch {
    return undefined;
  }
}

async function lockContent(kind: LockKind): Promise<string> {
  return `${process.pid}\n${(await readStartTime(process.pid)) ?? ''}\n${kind}\n`;
}

function makeLock(kind: LockKind, lockPath: string, release: () => Promise<void>): DirectoryLock {
  let released: Promise<void> | undefined;
  return { kind, path: lockPath, release: () => (released ??= release()) };
}

/** Creates `filePath` with O_EXCL and writes `content`; false when it already exists. */
async function createExclusive(filePath: string, content: string): Promise<boolean> {
  const handle = await fsp.open(filePath, 'wx', 0o644).catch(unless('EEXIST', undefined));
  if (handle === undefined) return false;
  try {
    await handle.writeFile(content);
  } catch (error) {
    // A half-written LOCK would lock everyone out for UNPARSABLE_GRACE_MS.
    await handle.close();
    await unlinkIfExists(filePath);
    throw error;
  }
  await handle.close();
  return true;
}

async function readHead(filePath: string): Promise<string | undefined> {
  const handle = await fsp.open(filePath, 'r').catch(unless('ENOENT', undefined));
  if (handle === undefined) return undefined;
  try {
    const buffer = Buffer.alloc(MAX_LOCK_FILE_BYTES + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.toString('utf8', 0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Milliseconds since `filePath` was modified; Infinity when it is gone. */
async function ageMs(filePath: string): Promise<number> {
  const stat = await fsp.stat(filePath).catch(unless('ENOENT', undefined));
  return stat === undefined ? Infinity : Date.now() - stat.mtimeMs;
}

async function isSameFile(handle: fsp.FileHandle, filePath: string): Promise<boolean> {
  const [opened, named] = await Promise.all([handle.stat(), fsp.stat(filePath).catch(unless('ENOENT', undefined))]);
  return named !== undefined && opened.ino === named.ino && opened.dev === named.dev;
}

async function unlinkIfExists(filePath: string): Promise<void> {
  await fsp.unlink(filePath).catch(unless('ENOENT', undefined));
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await fsp.open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function flock(fsExt: FsExt, fd: number, flags: 'exnb' | 'un'): Promise<void> {
  return promisify(fsExt.flock)(fd, flags);
}

function hasCode(error: unknown, ...codes: string[]): boolean {
  return error instanceof Error && codes.includes(String((error as NodeJS.ErrnoException).code));
}

/** A rejection handler that turns the error `code` into `value` and rethrows anything else. */
function unless<T>(code: string, value: T): (error: unknown) => T {
  return (error) => {
    if (hasCode(error, code)) return value;
    throw error;
  };
}
