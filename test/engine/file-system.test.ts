// Runs the FileSystem port's contract (test/support/file-system-suite.ts) against the real disk
// and against the simulated one, so SimFileSystem keeps Linux's semantics for every call the
// engine makes.
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { nodeFileSystem } from '../../src/engine/file-system.ts';
import { runFileSystemSuite } from '../support/file-system-suite.ts';
import { SimFileSystem } from '../support/sim-fs.ts';

runFileSystemSuite('nodeFileSystem', async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'blero-fs-'));
  return { fs: nodeFileSystem, dir, cleanup: () => fs.rm(dir, { recursive: true, force: true }) };
});

runFileSystemSuite('SimFileSystem', async () => {
  const sim = new SimFileSystem();
  await sim.mkdir('/sim/data');
  return { fs: sim, dir: '/sim/data', cleanup: async () => {} };
});

runFileSystemSuite("SimFileSystem (settle: 'immediate')", async () => {
  const sim = new SimFileSystem({ settle: 'immediate' });
  await sim.mkdir('/sim/data');
  return { fs: sim, dir: '/sim/data', cleanup: async () => {} };
});
