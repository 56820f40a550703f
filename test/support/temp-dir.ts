// A vitest fixture that hands each test a fresh temp directory and removes it afterwards.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { test as base } from 'vitest';

export async function makeTempDir(prefix = 'blero-test-'): Promise<string> {
  return mkdtemp(path.join(tmpdir(), prefix));
}

export const test = base.extend<{ dir: string }>({
  // eslint-disable-next-line no-empty-pattern
  dir: async ({}, use) => {
    const dir = await makeTempDir();
    await use(dir);
    await rm(dir, { recursive: true, force: true });
  },
});
