// The directory lock must let one holder at a time into a directory, name the holder to a loser,
// and free the directory when the holder releases it or dies. Same-process cases run in this
// process; cross-process cases and process death use test/support/lock-holder.ts as a real child
// process, which is SIGKILLed so that nothing but the kernel (flock) or stale-lock detection
// (pidfile) can free the lock. Stale and garbage pid files are made by writing LOCK by hand.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect } from 'vitest';
import { acquireDirectoryLock, setFsExtLoaderForTests, type LockKind } from '../../src/engine/directory-lock.ts';
import { LockedError } from '../../src/errors.ts';
import { test } from '../support/temp-dir.ts';

const HOLDER_SCRIPT = path.join(import.meta.dirname, '../support/lock-holder.ts');
const children = new Set<ChildProcess>();

afterEach(() => {
  setFsExtLoaderForTests(undefined);
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});

interface HolderReport {
  readonly ready?: boolean;
  readonly acquired?: LockKind;
  readonly pid?: number;
  readonly error?: string;
  readonly holderPid?: number | null;
}

/**
 * Starts lock-holder.ts; `report` resolves with its first JSON line (after `go()` for --on-go).
 * stdout ends only after everything the child wrote was read, so a child that dies silently
 * rejects instead of hanging.
 */
async function runHolder(directory: string, mode: string, ...extra: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', HOLDER_SCRIPT, directory, mode, ...extra], {
    env: { ...process.env, NODE_DEBUG: 'blero' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const nextReport = async (): Promise<HolderReport> => {
    const line = await lines.next();
    if (line.done === true) throw new Error(`lock-holder exited without a report: ${stderr}`);
    return JSON.parse(line.value) as HolderReport;
  };
  const go = () => child.stdin.write('go\n');
  return { child, report: await nextReport(), nextReport, go, stderr: () => stderr };
}

async function killAndWait(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

async function expectLocked(promise: Promise<unknown>, holderPid: number | undefined): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LockedError);
  expect((error as LockedError).holderPid).toBe(holderPid);
}

/** A pid that no process has right now: that of a child that has already exited. */
function deadPid(): number {
  const { pid } = spawnSync(process.execPath, ['-e', '']);
  expect(pid).toBeGreaterThan(0);
  return pid as number;
}

async function backdate(file: string, seconds: number): Promise<void> {
  const past = new Date(Date.now() - seconds * 1000);
  await fs.utimes(file, past, past);
}

describe('directory lock, flock', () => {
  test('auto picks flock when fs-ext loads, and writes the holder pid into LOCK', async ({ dir }) => {
    const lock = await acquireDirectoryLock(dir);
    expect(lock.kind).toBe('flock');
    expect(lock.path).toBe(path.join(dir, 'LOCK'));
    expect((await fs.readFile(lock.path, 'utf8')).split('\n')[0]).toBe(String(process.pid));
    await lock.release();
  });

  test('refuses a second open in the same process, naming this process', async ({ dir }) => {
    const lock = await acquireDirectoryLock(dir, 'flock');
    await expectLocked(acquireDirectoryLock(dir, 'flock'), process.pid);
    await lock.release();
  });

  test('can be taken again after release; release is idempotent and removes LOCK', async ({ dir }) => {
    const first = await acquireDirectoryLock(dir, 'flock');
    await Promise.all([first.release(), first.release()]);
    await first.release();
    await expect(fs.access(first.path)).rejects.toMatchObject({ code: 'ENOENT' });
    const second = await acquireDirectoryLock(dir, 'flock');
    await first.release(); // a stale handle's release must not free the new holder's lock
    await expectLocked(acquireDirectoryLock(dir, 'flock'), process.pid);
    await second.release();
  });

  test('lets exactly one of two concurrent opens in this process win', async ({ dir }) => {
    const results = await Promise.allSettled([acquireDirectoryLock(dir, 'flock'), acquireDirectoryLock(dir, 'flock')]);
    const winners = results.filter((result) => result.status === 'fulfilled');
    expect(winners).toHaveLength(1);
    expect(results.find((result) => result.status === 'rejected')?.reason).toBeInstanceOf(LockedError);
    await winners[0]?.value.release();
  });

  test('ignores a LOCK left by a dead holder', async ({ dir }) => {
    await fs.writeFile(path.join(dir, 'LOCK'), `${deadPid()}\n\nflock\n`);
    const lock = await acquireDirectoryLock(dir, 'flock');
    await lock.release();
  });

  test('refuses another process while it holds the lock, and is freed by its death', async ({ dir }) => {
    const holder = await runHolder(dir, 'flock');
    expect(holder.report).toEqual({ acquired: 'flock', pid: holder.child.pid });
    await expectLocked(acquireDirectoryLock(dir, 'flock'), holder.child.pid);
    await killAndWait(holder.child);
    const lock = await acquireDirectoryLock(dir, 'flock');
    await lock.release();
  });

  test('another process is refused while this one holds the lock', async ({ dir }) => {
    const lock = await acquireDirectoryLock(dir, 'flock');
    const loser = await runHolder(dir, 'flock');
    expect(loser.report).toEqual({ error: 'ERR_BLERO_LOCKED', holderPid: process.pid });
    await lock.release();
  });
});

describe('directory lock, pid file', () => {
  test('writes pid, start time and kind; release is idempotent and removes LOCK', async ({ dir }) => {
    const lock = await acquireDirectoryLock(dir, 'pidfile');
    expect(lock.kind).toBe('pidfile');
    expect(await fs.readFile(lock.path, 'utf8')).toMatch(new RegExp(`^${process.pid}\\n\\d+\\npidfile\\n$`));
    await Promise.all([lock.release(), lock.release()]);
    await expect(fs.access(lock.path)).rejects.toMatchObject({ code: 'ENOENT' });
    const again = await acquireDirectoryLock(dir, 'pidfile');
    await again.release();
  });

  test('refuses a second open in the same process, also through another spelling of the path', async ({ dir }) => {
    const lock = await acquireDirectoryLock(dir, 'pidfile');
    await expect(acquireDirectoryLock(dir, 'pidfile')).rejects.toThrow(/already open in this process/);
    const alias = `${dir}-alias`;
    await fs.symlink(dir, alias);
    try {
      await expectLocked(acquireDirectoryLock(path.join(alias, '.'), 'pidfile'), process.pid);
    } finally {
      await fs.unlink(alias);
    }
    await lock.release();
  });

  test('lets exactly one of two concurrent opens in this process win', async ({ dir }) => {
    const results = await Promise.allSettled([acquireDirectoryLock(dir, 'pidfile'), acquireDirectoryLock(dir, 'pidfile')]);
    const winners = results.filter((result) => result.status === 'fulfilled');
    const losers = results.filter((result) => result.status === 'rejected');
    expect(winners).toHaveLength(1);
    expect(losers[0]?.reason).toMatchObject({ code: 'ERR_BLERO_LOCKED', holderPid: process.pid });
    await winners[0]?.value.release();
  });

  test('lets exactly one of several processes racing to break a stale lock win', async ({ dir }) => {
    await fs.writeFile(path.join(dir, 'LOCK'), `${deadPid()}\n\npidfile\n`);
    const racers = await Promise.all([1, 2, 3, 4].map(() => runHolder(dir, 'pidfile', '--on-go')));
    for (const racer of racers) racer.go();
    const reports = await Promise.all(racers.map((racer) => racer.nextReport()));
    const winners = reports.filter((report) => report.acquired === 'pidfile');
    expect(winners).toHaveLength(1);
    expect(reports.filter((report) => report.error === 'ERR_BLERO_LOCKED')).toHaveLength(racers.length - 1);
    expect((await fs.readFile(path.join(dir, 'LOCK'), 'utf8')).split('\n')[0]).toBe(String(winners[0]?.pid));
  });

  test('breaks a lock whose holder is dead', async ({ dir }) => {
    await fs.writeFile(path.join(dir, 'LOCK'), `${deadPid()}\n12345\npidfile\n`);
    const lock = await acquireDirectoryLock(dir, 'pidfile');
    expect((await fs.readFile(lock.path, 'utf8')).split('\n')[0]).toBe(String(process.pid));
    await lock.release();
    await expect(fs.readdir(dir)).resolves.toEqual([]);
  });

  test('breaks a lock whose pid is alive but was reused (start time differs)', async ({ dir }) => {
    await fs.writeFile(path.join(dir, 'LOCK'), `${process.pid}\n1\npidfile\n`);
    const lock = await acquireDirectoryLock(dir, 'pidfile');
    await lock.release();
  });

  test('refuses a lock whose live holder has a matching start time', async ({ dir }) => {
    // The parent of this test process is alive and not going anywhere.
    const stat = await fs.readFile(`/proc/${process.ppid}/stat`, 'utf8');
    const startTime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    await fs.writeFile(path.join(dir, 'LOCK'), `${process.ppid}\n${startTime}\npidfile\n`);
    await expectLocked(acquireDirectoryLock(dir, 'pidfile'), process.ppid);
  });

  test('treats a young unparsable LOCK as being written, an old one as stale', async ({ dir }) => {
    const lockPath = path.join(dir, 'LOCK');
    await fs.writeFile(lockPath, '');
    await expectLocked(acquireDirectoryLock(dir, 'pidfile'), undefined);
    await fs.writeFile(lockPath, 'not a pid\n');
    await expectLocked(acquireDirectoryLock(dir, 'pidfile'), undefined);
    await backdate(lockPath, 11);
    const lock = await acquireDirectoryLock(dir, 'pidfile');
    await lock.release();
  });

  test('waits for a fresh LOCK.break, and gives up with LockedError while it stays', async ({ dir }) => {
    await fs.writeFile(path.join(dir, 'LOCK'), `${deadPid()}\n\npidfile\n`);
    await fs.writeFile(path.join(dir, 'LOCK.break'), `${process.ppid}\n`);
    await expectLocked(acquireDirectoryLock(dir, 'pidfile'), undefined);
    await expect(fs.readdir(dir)).resolves.toEqual(['LOCK', 'LOCK.break']);
  });

  test('removes an abandoned LOCK.break and then breaks the stale lock', async ({ dir }) => {
    await fs.writeFile(path.join(dir, 'LOCK'), `${deadPid()}\n\npidfile\n`);
    await fs.writeFile(path.join(dir, 'LOCK.break'), '');
    await backdate(path.join(dir, 'LOCK.break'), 11);
    const lock = await acquireDirectoryLock(dir, 'pidfile');
    await expect(fs.readdir(dir)).resolves.toEqual(['LOCK']);
    await lock.release();
  });

  test('does not remove a LOCK that another process wrote over ours', async ({ dir }) => {
    const lock = await acquireDirectoryLock(dir, 'pidfile');
    const foreign = `${process.ppid}\n\npidfile\n`;
    await fs.writeFile(lock.path, foreign);
    await lock.release();
    expect(await fs.readFile(lock.path, 'utf8')).toBe(foreign);
  });

  test('refuses another process while it holds the lock, and is broken after its death', async ({ dir }) => {
    const holder = await runHolder(dir, 'pidfile');
    expect(holder.report).toEqual({ acquired: 'pidfile', pid: holder.child.pid });
    await expectLocked(acquireDirectoryLock(dir, 'pidfile'), holder.child.pid);
    await killAndWait(holder.child);
    const lock = await acquireDirectoryLock(dir, 'pidfile');
    await lock.release();
  });

  test('another process is refused while this one holds the lock', async ({ dir }) => {
    const lock = await acquireDirectoryLock(dir, 'pidfile');
    const loser = await runHolder(dir, 'pidfile');
    expect(loser.report).toEqual({ error: 'ERR_BLERO_LOCKED', holderPid: process.pid });
    await lock.release();
  });
});

describe('directory lock, fallback and mixed modes', () => {
  test("auto falls back to the pid file when fs-ext fails to load; 'flock' then throws", async ({ dir }) => {
    setFsExtLoaderForTests(() => {
      throw new Error('simulated load failure');
    });
    await expect(acquireDirectoryLock(dir, 'flock')).rejects.toThrow(/fs-ext.*simulated load failure/);
    const lock = await acquireDirectoryLock(dir, 'auto');
    expect(lock.kind).toBe('pidfile');
    await lock.release();
  });

  test('announces the fallback under NODE_DEBUG=blero', async ({ dir }) => {
    const holder = await runHolder(dir, 'auto', '--no-fs-ext');
    expect(holder.report.acquired).toBe('pidfile');
    expect(holder.stderr()).toMatch(/BLERO \d+: fs-ext unavailable \(simulated load failure\); using pid-file lock/);
  });

  test('each implementation refuses a live holder of the other kind', async ({ dir }) => {
    const flockLock = await acquireDirectoryLock(dir, 'flock');
    await expectLocked(acquireDirectoryLock(dir, 'pidfile'), process.pid);
    await flockLock.release();
    const pidfileLock = await acquireDirectoryLock(dir, 'pidfile');
    await expectLocked(acquireDirectoryLock(dir, 'flock'), process.pid);
    await pidfileLock.release();
  });
});
