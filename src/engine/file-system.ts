// The engine's only door to the disk. Every byte the engine reads or writes, and every
// directory change it makes, goes through a FileSystem, so tests can swap in a simulated disk
// that drops unsynced data or injects faults (test/support/sim-fs.ts). The port holds only the
// calls the engine makes; it does not mirror Node's whole fs.
//
// Promises the Node implementation keeps and any other must keep too:
// - writev is positional and may write fewer bytes than asked without an error (libuv returns
//   the partial count when an error follows partial progress): callers compare the count.
// - datasync flushes the file's data and its size, not its name: a new, renamed or deleted
//   name is durable only after syncDirectory on its directory.
// - open(path, 'create') fails with EEXIST when the name exists.
import * as fs from 'node:fs';

/** How a file is opened: read-only, read-write of an existing file, or exclusive creation. */
export type OpenMode = 'read' | 'write' | 'create';

export interface FileHandle {
  /** Reads up to `length` bytes at `position` into `buffer[offset..]`; resolves with the count (0 at EOF). */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Writes `buffers` back to back at `position`; resolves with the count actually written. */
  writev(buffers: readonly Uint8Array[], position: number): Promise<number>;
  /**
   * Optional synchronous writev (same contract): a copy into the page cache, cheaper than a
   * thread-pool round trip. It never blocks on a device flush (fdatasync stays asynchronous).
   */
  writevSync?(buffers: readonly Uint8Array[], position: number): number;
  /** fdatasync: the written bytes and the file size are on stable storage when it resolves. */
  datasync(): Promise<void>;
  /** Sets the file's length (the change is durable only after datasync). */
  truncate(length: number): Promise<void>;
  /** The file's current length in bytes. */
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface FileSystem {
  open(path: string, mode: OpenMode): Promise<FileHandle>;
  /** Names (not paths) in `directory`, in no particular order. */
  readdir(directory: string): Promise<string[]>;
  rename(source: string, target: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Creates `directory` and missing parents; no error when it exists. */
  mkdir(directory: string): Promise<void>;
  /** fsync of the directory itself, making creations, renames and deletions in it durable. */
  syncDirectory(directory: string): Promise<void>;
}

const OPEN_FLAGS: Record<OpenMode, number> = {
  read: fs.constants.O_RDONLY,
  write: fs.constants.O_RDWR,
  // Never O_APPEND: Linux ignores the position of a pwrite on an O_APPEND file.
  create: fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL,
};

function promiseOf<T>(run: (callback: (error: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    run((error, value) => (error ? reject(error) : resolve(value)));
  });
}

/**
 * FileHandle on a raw descriptor with Node's callback API: one threadpool hop per call and no
 * FileHandle bookkeeping, which is measurably cheaper per fdatasync than fs.promises.
 */
class NodeFileHandle implements FileHandle {
  readonly #fd: number;
  constructor(fd: number) {
    this.#fd = fd;
  }
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return promiseOf<number>((cb) => fs.read(this.#fd, buffer, offset, length, position, cb));
  }
  writev(buffers: readonly Uint8Array[], position: number): Promise<number> {
    return promiseOf<number>((cb) => fs.writev(this.#fd, buffers as Uint8Array[], position, cb));
  }
  writevSync(buffers: readonly Uint8Array[], position: number): number {
    return fs.writevSync(this.#fd, buffers as Uint8Array[], position);
  }
  datasync(): Promise<void> {
    return promiseOf<void>((cb) => fs.fdatasync(this.#fd, (error) => cb(error, undefined)));
  }
  truncate(length: number): Promise<void> {
    return promiseOf<void>((cb) => fs.ftruncate(this.#fd, length, (error) => cb(error, undefined)));
  }
  size(): Promise<number> {
    return promiseOf<number>((cb) => fs.fstat(this.#fd, (error, stats) => cb(error, stats?.size ?? 0)));
  }
  close(): Promise<void> {
    return promiseOf<void>((cb) => fs.close(this.#fd, (error) => cb(error, undefined)));
  }
}

/** The real disk. */
export class NodeFileSystem implements FileSystem {
  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const fd = await promiseOf<number>((cb) => fs.open(path, OPEN_FLAGS[mode], 0o644, cb));
    return new NodeFileHandle(fd);
  }
  readdir(directory: string): Promise<string[]> {
    return fs.promises.readdir(directory);
  }
  rename(source: string, target: string): Promise<void> {
    return fs.promises.rename(source, target);
  }
  unlink(path: string): Promise<void> {
    return fs.promises.unlink(path);
  }
  async mkdir(directory: string): Promise<void> {
    await fs.promises.mkdir(directory, { recursive: true });
  }
  async syncDirectory(directory: string): Promise<void> {
    // Windows cannot fsync a directory (EPERM, nodejs/node#3879); durability is promised on Linux.
    if (process.platform === 'win32') return;
    const fd = await promiseOf<number>((cb) => fs.open(directory, fs.constants.O_RDONLY, cb));
    try {
      await promiseOf<void>((cb) => fs.fsync(fd, (error) => cb(error, undefined)));
    } finally {
      await promiseOf<void>((cb) => fs.close(fd, (error) => cb(error, undefined)));
    }
  }
}

/** One shared instance: it holds no state. */
export const nodeFileSystem: FileSystem = new NodeFileSystem();
