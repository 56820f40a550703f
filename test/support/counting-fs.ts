// A FileSystem that forwards to the real disk and counts calls, with optional one-shot
// failures. Tests of group commit count fdatasyncs through it; poisoning tests inject errors.
import type { FileHandle, FileSystem, OpenMode } from '../../src/engine/file-system.ts';
import { nodeFileSystem } from '../../src/engine/file-system.ts';

export class CountingFileSystem implements FileSystem {
  datasyncs = 0;
  writevs = 0;
  directorySyncs = 0;
  /** When set, the next datasync fails with this error (and the counter still counts it). */
  failNextDatasync: Error | undefined;
  /** When set, the next writev writes only this many bytes and reports the short count. */
  shortNextWrite: number | undefined;

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const inner = await nodeFileSystem.open(path, mode);
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const fs = this;
    return {
      read: (buffer, offset, length, position) => inner.read(buffer, offset, length, position),
      async writev(buffers, position) {
        fs.writevs++;
        if (fs.shortNextWrite !== undefined) {
          const limit = fs.shortNextWrite;
          fs.shortNextWrite = undefined;
          const all = Buffer.concat(buffers.map((b) => Buffer.from(b.buffer, b.byteOffset, b.length)));
          return inner.writev([all.subarray(0, limit)], position);
        }
        return inner.writev(buffers, position);
      },
      async datasync() {
        fs.datasyncs++;
        const failure = fs.failNextDatasync;
        if (failure) {
          fs.failNextDatasync = undefined;
          throw failure;
        }
        return inner.datasync();
      },
      truncate: (length) => inner.truncate(length),
      size: () => inner.size(),
      close: () => inner.close(),
    };
  }
  readdir(directory: string): Promise<string[]> {
    return nodeFileSystem.readdir(directory);
  }
  rename(source: string, target: string): Promise<void> {
    return nodeFileSystem.rename(source, target);
  }
  unlink(path: string): Promise<void> {
    return nodeFileSystem.unlink(path);
  }
  mkdir(directory: string): Promise<void> {
    return nodeFileSystem.mkdir(directory);
  }
  syncDirectory(directory: string): Promise<void> {
    this.directorySyncs++;
    return nodeFileSystem.syncDirectory(directory);
  }
}
