// A child process for the cross-process directory-lock tests. It tries to take the lock of
// <dir> in <mode>, prints one JSON line on stdout, {"acquired":"flock"|"pidfile","pid":n} or
// {"error":"ERR_BLERO_LOCKED","holderPid":n|null}, and then, if it holds the lock, keeps it
// until it is killed or its stdin closes (so a crashed test run leaves no orphan behind).
//
//   node --import tsx test/support/lock-holder.ts <dir> <auto|flock|pidfile> [--no-fs-ext | --on-go]
//
// --no-fs-ext makes fs-ext "fail to load", to exercise the fallback and its debug message.
// --on-go prints {"ready":true} first and waits for a line on stdin before it tries, so that a
// test can start several racers at nearly the same moment.
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { acquireDirectoryLock, setFsExtLoaderForTests } from '../../src/engine/directory-lock.ts';
import { LockedError } from '../../src/errors.ts';

const [directory, mode, flag] = process.argv.slice(2);
if (directory === undefined || (mode !== 'auto' && mode !== 'flock' && mode !== 'pidfile')) {
  throw new TypeError('usage: lock-holder.ts <dir> <auto|flock|pidfile> [--no-fs-ext | --on-go]');
}
if (flag === '--no-fs-ext') {
  setFsExtLoaderForTests(() => {
    throw new Error('simulated load failure');
  });
}

if (flag === '--on-go') {
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  const lines = createInterface({ input: process.stdin });
  await once(lines, 'line');
  lines.close();
}

try {
  const lock = await acquireDirectoryLock(directory, mode);
  process.stdout.write(`${JSON.stringify({ acquired: lock.kind, pid: process.pid })}\n`);
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
} catch (error) {
  if (!(error instanceof LockedError)) throw error;
  process.stdout.write(`${JSON.stringify({ error: error.code, holderPid: error.holderPid ?? null })}\n`);
}
