// The FileSystem port's contract as vitest tests, run against every implementation (the real
// disk and SimFileSystem, see test/engine/file-system.test.ts) so the simulator cannot drift from
// what Linux does. Only behaviour the engine relies on is pinned here; durability across crashes
// is the simulator's own business (test/crash/sim-fs.test.ts), since a real disk cannot be crashed
// from a test.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { FileHandle, FileSystem } from '../../src/engine/file-system.ts';

export interface FileSystemUnderTest {
  readonly fs: FileSystem;
  /** An existing, empty directory the tests may fill. */
  readonly dir: string;
  cleanup(): Promise<void>;
}

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

async function readAll(handle: FileHandle): Promise<Buffer> {
  const out = Buffer.alloc(await handle.size());
  let done = 0;
  while (done < out.length) {
    const n = await handle.read(out, done, out.length - done, done);
    if (n === 0) break;
    done += n;
  }
  return out.subarray(0, done);
}

async function readPath(fs: FileSystem, file: string): Promise<Buffer> {
  const handle = await fs.open(file, 'read');
  try {
    return await readAll(handle);
  } finally {
    await handle.close();
  }
}

async function writeNew(fs: FileSystem, file: string, content: string): Promise<void> {
  const handle = await fs.open(file, 'create');
  try {
    expect(await handle.writev([bytes(content)], 0)).toBe(content.length);
  } finally {
    await handle.close();
  }
}

export function runFileSystemSuite(name: string, setup: () => Promise<FileSystemUnderTest>): void {
  const test = it.extend<{ disk: FileSystemUnderTest }>({
    // vitest reads a fixture's dependencies from this destructuring pattern, so it must stay.
    disk: async ({}, use) => {
      const disk = await setup();
      await use(disk);
      await disk.cleanup();
    },
  });

  describe(`FileSystem contract: ${name}`, () => {
    test('writev writes its buffers back to back at the position and resolves with the count', async ({ disk }) => {
      const file = path.join(disk.dir, 'a');
      const handle = await disk.fs.open(file, 'create');
      expect(await handle.writev([bytes('abc'), bytes(''), bytes('de')], 0)).toBe(5);
      expect(await handle.writev([bytes('XY')], 1)).toBe(2);
      expect(await handle.size()).toBe(5);
      expect((await readAll(handle)).toString('latin1')).toBe('aXYde');
      await handle.close();
    });

    test('writev past the end extends the file and fills the hole with zeros', async ({ disk }) => {
      const handle = await disk.fs.open(path.join(disk.dir, 'a'), 'create');
      expect(await handle.writev([bytes('ab')], 0)).toBe(2);
      expect(await handle.writev([bytes('z')], 6)).toBe(1);
      expect(await handle.size()).toBe(7);
      expect([...(await readAll(handle))]).toEqual([0x61, 0x62, 0, 0, 0, 0, 0x7a]);
      await handle.close();
    });

    test('read resolves with 0 at EOF and with the short count across it, into the buffer offset', async ({ disk }) => {
      const handle = await disk.fs.open(path.join(disk.dir, 'a'), 'create');
      await handle.writev([bytes('hello')], 0);
      const buffer = Buffer.alloc(8, 0x2e);
      expect(await handle.read(buffer, 0, 4, 5)).toBe(0);
      expect(await handle.read(buffer, 0, 4, 50)).toBe(0);
      expect(await handle.read(buffer, 2, 6, 3)).toBe(2);
      expect(buffer.toString('latin1')).toBe('..lo....');
      await handle.close();
    });

    test('a new file is empty, and a second handle sees what the first wrote', async ({ disk }) => {
      const file = path.join(disk.dir, 'a');
      const writer = await disk.fs.open(file, 'create');
      expect(await writer.size()).toBe(0);
      await writer.writev([bytes('shared')], 0);
      const reader = await disk.fs.open(file, 'read');
      expect((await readAll(reader)).toString('latin1')).toBe('shared');
      await reader.close();
      await writer.close();
    });

    test("open 'create' is exclusive and fails with EEXIST when the name exists", async ({ disk }) => {
      const file = path.join(disk.dir, 'a');
      await writeNew(disk.fs, file, 'x');
      await expect(disk.fs.open(file, 'create')).rejects.toMatchObject({ code: 'EEXIST' });
      expect((await readPath(disk.fs, file)).toString('latin1')).toBe('x');
    });

    test('opening a missing file or a file in a missing directory fails with ENOENT', async ({ disk }) => {
      await expect(disk.fs.open(path.join(disk.dir, 'missing'), 'read')).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(disk.fs.open(path.join(disk.dir, 'missing'), 'write')).rejects.toMatchObject({ code: 'ENOENT' });
      await expect(disk.fs.open(path.join(disk.dir, 'no', 'a'), 'create')).rejects.toMatchObject({ code: 'ENOENT' });
    });

    test("open 'write' keeps the content, and a read-only handle rejects writev with EBADF", async ({ disk }) => {
      const file = path.join(disk.dir, 'a');
      await writeNew(disk.fs, file, 'keep');
      const writer = await disk.fs.open(file, 'write');
      expect(await writer.size()).toBe(4);
      await writer.close();
      const reader = await disk.fs.open(file, 'read');
      await expect(reader.writev([bytes('x')], 0)).rejects.toMatchObject({ code: 'EBADF' });
      await reader.close();
      expect((await readPath(disk.fs, file)).toString('latin1')).toBe('keep');
    });

    test('rename replaces an existing target, while a handle on the replaced file still reads it', async ({ disk }) => {
      const [source, target] = [path.join(disk.dir, 'new.tmp'), path.join(disk.dir, 'live')];
      await writeNew(disk.fs, source, 'new');
      await writeNew(disk.fs, target, 'old');
      const old = await disk.fs.open(target, 'read');
      await disk.fs.rename(source, target);
      expect((await readPath(disk.fs, target)).toString('latin1')).toBe('new');
      expect((await readAll(old)).toString('latin1')).toBe('old');
      await old.close();
      expect((await disk.fs.readdir(disk.dir)).sort()).toEqual(['live']);
      await expect(disk.fs.open(source, 'read')).rejects.toMatchObject({ code: 'ENOENT' });
    });

    test('rename of a missing file fails with ENOENT', async ({ disk }) => {
      const promise = disk.fs.rename(path.join(disk.dir, 'missing'), path.join(disk.dir, 'b'));
      await expect(promise).rejects.toMatchObject({ code: 'ENOENT' });
    });

    test('unlink removes the name, and an open handle stays readable and writable', async ({ disk }) => {
      const file = path.join(disk.dir, 'a');
      await writeNew(disk.fs, file, 'data');
      const handle = await disk.fs.open(file, 'write');
      await disk.fs.unlink(file);
      expect(await disk.fs.readdir(disk.dir)).toEqual([]);
      await expect(disk.fs.open(file, 'read')).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await handle.writev([bytes('!')], 4)).toBe(1);
      expect((await readAll(handle)).toString('latin1')).toBe('data!');
      await handle.datasync();
      await handle.close();
      await expect(disk.fs.unlink(file)).rejects.toMatchObject({ code: 'ENOENT' });
    });

    test('truncate shrinks the file and extends it with zeros', async ({ disk }) => {
      const handle = await disk.fs.open(path.join(disk.dir, 'a'), 'create');
      await handle.writev([bytes('abcdef')], 0);
      await handle.truncate(2);
      expect(await handle.size()).toBe(2);
      await handle.truncate(5);
      expect(await handle.size()).toBe(5);
      expect([...(await readAll(handle))]).toEqual([0x61, 0x62, 0, 0, 0]);
      await handle.close();
    });

    test('datasync resolves, and the data reads back through a new handle', async ({ disk }) => {
      const file = path.join(disk.dir, 'a');
      const handle = await disk.fs.open(file, 'create');
      await handle.writev([bytes('synced')], 0);
      await handle.datasync();
      await handle.close();
      expect((await readPath(disk.fs, file)).toString('latin1')).toBe('synced');
    });

    test('readdir lists the names (not paths) of files and subdirectories', async ({ disk }) => {
      await writeNew(disk.fs, path.join(disk.dir, 'b'), '');
      await writeNew(disk.fs, path.join(disk.dir, 'a'), '');
      await disk.fs.mkdir(path.join(disk.dir, 'sub'));
      await writeNew(disk.fs, path.join(disk.dir, 'sub', 'inner'), '');
      expect((await disk.fs.readdir(disk.dir)).sort()).toEqual(['a', 'b', 'sub']);
      expect(await disk.fs.readdir(path.join(disk.dir, 'sub'))).toEqual(['inner']);
      await expect(disk.fs.readdir(path.join(disk.dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    });

    test('mkdir creates missing parents, succeeds when the directory exists, and fails with EEXIST on a file', async ({ disk }) => {
      const deep = path.join(disk.dir, 'x', 'y', 'z');
      await disk.fs.mkdir(deep);
      await disk.fs.mkdir(deep);
      await writeNew(disk.fs, path.join(deep, 'f'), 'f');
      expect(await disk.fs.readdir(path.join(disk.dir, 'x'))).toEqual(['y']);
      await expect(disk.fs.mkdir(path.join(deep, 'f'))).rejects.toMatchObject({ code: 'EEXIST' });
    });

    test('syncDirectory resolves for an existing directory and fails with ENOENT for a missing one', async ({ disk }) => {
      await writeNew(disk.fs, path.join(disk.dir, 'a'), 'a');
      await disk.fs.syncDirectory(disk.dir);
      await expect(disk.fs.syncDirectory(path.join(disk.dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
    });
  });
}
