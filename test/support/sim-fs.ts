// SimFileSystem: an in-memory, deterministic disk implementing the engine's FileSystem port, for
// crash and fault tests. It keeps apart what a power cut cannot take away and what it may.
//
// Fault model (what crash() may do, and why each case is plausible on Linux):
// - Files. Each file (inode) has a durable image and the list of writes and truncates since its
//   last datasync. Reads see the latest state, as the page cache does. A power crash decides per
//   file, with the seeded generator, that its unsynced changes are all lost, all kept, kept as a
//   prefix (changes in order up to one torn write, cut at a random byte or 512-byte sector), or
//   each independently lost, kept or torn (so a later write survives while an earlier one does
//   not: write-back does not keep order). The torn part of a write is absent, zeros (the size was
//   updated before the data) or random garbage. An unsynced truncate may be lost. A datasync makes
//   the file's bytes and size durable, never its name.
// - Names. Creates, renames and unlinks are pending until syncDirectory on their directory (for a
//   cross-directory rename, either one; a sync also commits the earlier pending changes of the same
//   file, as a journal would). A power crash keeps all of them, undoes all, or decides for each.
//   They replay in order on the durable names, and a change whose precondition no longer holds is
//   dropped: an undone create means the file does not exist (and a later rename of it is dropped
//   too); an undone rename leaves the old name with the file and the target as it was; an undone
//   unlink brings the file back.
// - Directories themselves are durable as soon as mkdir returns (the engine makes its directory
//   once; losing it is not the failure we test).
// - crash({ mode: 'process' }) is a process crash: the page cache survives, so everything written
//   is still there and still only as durable as before; only handles are gone.
//   crash({ mode: 'durable' }) is the harshest power cut: every unsynced change is lost.
// - The crashed instance rejects every later call with EIO (isSimulatedCrash() is true).
// Injected faults (the `faults` object, or the fail*() methods; changeable at any time):
// - ENOSPC after N more bytes: the writev that crosses the limit writes the prefix that fits and
//   resolves with that short count, without an error; the next writev rejects with ENOSPC. libuv
//   behaves so: write(2) returns the partial count, and only the next call sees the error.
// - EIO on the k-th datasync from now. As on Linux after a failed writeback, the pages are marked
//   clean: the file's unsynced changes are dropped from what can survive (a retried datasync
//   "succeeds" and persists nothing of them), while reads still see them until a crash.
// - EIO on the k-th syncDirectory from now (its name changes stay pending).
// - EIO on every read, or only on files opened under one path.
// - A short write: the next writev writes only a given number of bytes and resolves with it.
// Every effect happens when the call is made (after the onOperation hooks), so the operation
// order, and with a seed the crashed disk, is reproducible.
import * as path from 'node:path';
import type { FileHandle, FileSystem, OpenMode } from '../../src/engine/file-system.ts';
import { Rng } from './rng.ts';

export type SimOperation =
  | 'open' | 'readdir' | 'rename' | 'unlink' | 'mkdir' | 'syncDirectory'
  | 'read' | 'writev' | 'datasync' | 'truncate' | 'size' | 'close';

export interface SimOperationEvent {
  readonly op: SimOperation;
  /** The path the call names; for handle calls, the path the file was opened under. */
  readonly path: string;
  /** rename only: the target path. */
  readonly target?: string | undefined;
  /** 0-based sequence number of this call on this instance (equals counters.operations before it). */
  readonly index: number;
}

export interface SimFaults {
  /** Bytes writev may still write before the disk is full; undefined: unlimited. */
  noSpaceAfterBytes: number | undefined;
  /** The k-th datasync from now (1: the next) fails with EIO; counts down, then clears itself. */
  datasyncFailsIn: number | undefined;
  /** The k-th syncDirectory from now (1: the next) fails with EIO; then clears itself. */
  directorySyncFailsIn: number | undefined;
  /** Reads fail with EIO: true for every file, a path for files opened under that path only. */
  readFails: boolean | string;
  /** The next writev writes at most this many bytes and resolves with the count; then clears. */
  shortWriteBytes: number | undefined;
}

function noFaults(): SimFaults {
  return {
    noSpaceAfterBytes: undefined, datasyncFailsIn: undefined, directorySyncFailsIn: undefined,
    readFails: false, shortWriteBytes: undefined,
  };
}

/** Calls made on this instance, including those that failed. */
export interface SimCounters {
  operations: number;
  writevs: number;
  bytesWritten: number;
  datasyncs: number;
  directorySyncs: number;
  reads: number;
}

export type CrashMode = 'power' | 'process' | 'durable';
export interface CrashOptions {
  /** @default 'power' */
  readonly mode?: CrashMode | undefined;
  /** Power mode needs a seed or an rng; the same seed gives the same disk. */
  readonly seed?: number | undefined;
  readonly rng?: Rng | undefined;
}

export interface SimFileSystemOptions {
  /** 'immediate' resolves every call after a setImmediate turn, letting other work interleave. @default 'microtask' */
  readonly settle?: 'microtask' | 'immediate' | undefined;
}

const ERRNO = {
  ENOENT: [-2, 'no such file or directory'], EIO: [-5, 'i/o error'], EBADF: [-9, 'bad file descriptor'],
  EEXIST: [-17, 'file already exists'], ENOTDIR: [-20, 'not a directory'], EISDIR: [-21, 'illegal operation on a directory'],
  EINVAL: [-22, 'invalid argument'], ENOSPC: [-28, 'no space left on device'], ENOTSUP: [-95, 'operation not supported'],
} as const;
type ErrorCode = keyof typeof ERRNO;

/** An Error shaped like Node's fs errors: `ENOENT: no such file or directory, open '/x'`. */
function fsError(code: ErrorCode, syscall: string, filePath: string, target?: string): NodeJS.ErrnoException {
  const [errno, text] = ERRNO[code];
  const where = target === undefined ? `'${filePath}'` : `'${filePath}' -> '${target}'`;
  const error: NodeJS.ErrnoException = new Error(`${code}: ${text}, ${syscall} ${where}`);
  Object.assign(error, { errno, code, syscall, path: filePath }, target === undefined ? {} : { dest: target });
  return error;
}

const SIMULATED_CRASH = Symbol('simulatedCrash');

/** True for the EIO errors a crashed SimFileSystem rejects with (as opposed to injected faults). */
/** An EIO as Node reports one, marked as injected (`where` says at which operation). */
export function injectedEio(where: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`EIO: i/o error (injected: ${where})`), { code: 'EIO', errno: -5 });
}

export function isSimulatedCrash(error: unknown): boolean {
  return typeof error === 'object' && error !== null && SIMULATED_CRASH in error;
}

/** A growable byte array; bytes past `length` are always zero, so extending exposes zeros. */
class ByteImage {
  #buffer: Uint8Array;
  length: number;
  constructor(bytes: Uint8Array = new Uint8Array(0)) {
    this.#buffer = Uint8Array.from(bytes);
    this.length = bytes.length;
  }
  write(position: number, bytes: Uint8Array): void {
    this.#reserve(position + bytes.length);
    this.#buffer.set(bytes, position);
    this.length = Math.max(this.length, position + bytes.length);
  }
  truncate(length: number): void {
    if (length < this.length) this.#buffer.fill(0, length, this.length);
    else this.#reserve(length);
    this.length = length;
  }
  read(target: Uint8Array, offset: number, count: number, position: number): number {
    const n = Math.max(0, Math.min(count, this.length - position));
    target.set(this.#buffer.subarray(position, position + n), offset);
    return n;
  }
  copy(): ByteImage {
    return new ByteImage(this.#buffer.subarray(0, this.length));
  }
  toBuffer(): Buffer {
    return Buffer.from(this.#buffer.subarray(0, this.length));
  }
  #reserve(capacity: number): void {
    if (capacity <= this.#buffer.length) return;
    const grown = new Uint8Array(Math.max(capacity, this.#buffer.length * 2, 4096));
    grown.set(this.#buffer);
    this.#buffer = grown;
  }
}

/** A change since the last datasync. `bytes` is a private copy and never mutated. */
type FileChange =
  | { readonly kind: 'write'; readonly position: number; readonly bytes: Uint8Array }
  | { readonly kind: 'truncate'; readonly length: number };

function applyFileChange(image: ByteImage, change: FileChange): void {
  if (change.kind === 'write') image.write(change.position, change.bytes);
  else image.truncate(change.length);
}

/** A file's content, independent of its names (unlink keeps open handles working). */
class Inode {
  readonly id: number;
  durable: ByteImage;
  current: ByteImage;
  pending: FileChange[] = [];
  constructor(id: number, durable: ByteImage, current: ByteImage) {
    this.id = id;
    this.durable = durable;
    this.current = current;
  }
}

type NameChange =
  | { readonly kind: 'create'; readonly path: string; readonly inode: Inode }
  | { readonly kind: 'unlink'; readonly path: string; readonly inode: Inode }
  | { readonly kind: 'rename'; readonly source: string; readonly target: string; readonly inode: Inode };

function touchesDirectory(change: NameChange, directory: string): boolean {
  if (change.kind === 'rename') {
    return path.posix.dirname(change.source) === directory || path.posix.dirname(change.target) === directory;
  }
  return path.posix.dirname(change.path) === directory;
}

/** Applies `change` if its precondition holds in `names`; returns whether it did. */
function applyNameChange(names: Map<string, Inode>, change: NameChange): boolean {
  if (change.kind === 'create') {
    if (names.has(change.path)) return false;
    names.set(change.path, change.inode);
  } else if (change.kind === 'unlink') {
    if (names.get(change.path) !== change.inode) return false;
    names.delete(change.path);
  } else {
    if (names.get(change.source) !== change.inode) return false;
    names.delete(change.source);
    names.set(change.target, change.inode);
  }
  return true;
}

/** A fixed scrambled order, like ext4's hashed directories: callers must not rely on creation order. */
function hashName(name: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) hash = Math.imul(hash ^ name.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

type FileFate = 'lost' | 'kept' | 'prefix' | 'each';
const FILE_FATES: readonly FileFate[] = ['lost', 'kept', 'prefix', 'each'];
const SECTOR_SIZE = 512;

/** Applies the first `cut` bytes of a write, then leaves the rest absent, zeroed or garbage. */
function applyTornWrite(image: ByteImage, change: FileChange & { kind: 'write' }, rng: Rng): void {
  const { position, bytes } = change;
  const firstSector = Math.ceil(position / SECTOR_SIZE) * SECTOR_SIZE;
  const sectors = Math.floor((position + bytes.length - firstSector) / SECTOR_SIZE) + 1;
  const cut = sectors > 0 && rng.chance(0.5)
    ? firstSector + rng.int(sectors) * SECTOR_SIZE - position
    : rng.int(bytes.length + 1);
  image.write(position, bytes.subarray(0, cut));
  const tail = rng.pick(['absent', 'zeros', 'garbage'] as const);
  if (tail === 'zeros') image.write(position + cut, new Uint8Array(bytes.length - cut));
  if (tail === 'garbage') image.write(position + cut, rng.bytes(bytes.length - cut));
}

function applyChangeWithFate(image: ByteImage, change: FileChange, rng: Rng): void {
  if (change.kind === 'truncate') {
    if (rng.chance(0.5)) applyFileChange(image, change);
    return;
  }
  const fate = rng.pick(['lost', 'kept', 'torn'] as const);
  if (fate === 'kept') applyFileChange(image, change);
  if (fate === 'torn') applyTornWrite(image, change, rng);
}

/** What one file holds after a power cut: its durable image plus some fate of each unsynced change. */
function crashFile(inode: Inode, rng: Rng): ByteImage {
  const image = inode.durable.copy();
  const pending = inode.pending;
  if (pending.length === 0) return image;
  const fate = rng.pick(FILE_FATES);
  if (fate === 'kept') pending.forEach((change) => applyFileChange(image, change));
  if (fate === 'each') pending.forEach((change) => applyChangeWithFate(image, change, rng));
  if (fate === 'prefix') {
    const torn = rng.int(pending.length);
    pending.slice(0, torn).forEach((change) => applyFileChange(image, change));
    applyChangeWithFate(image, pending[torn] as FileChange, rng);
  }
  return image;
}

function normalize(filePath: string): string {
  return path.posix.resolve('/', filePath);
}

export class SimFileSystem implements FileSystem {
  /** Injected faults; assign fields directly or use the fail*() methods. */
  readonly faults: SimFaults = noFaults();
  readonly #options: SimFileSystemOptions;
  readonly #counters: SimCounters = { operations: 0, writevs: 0, bytesWritten: 0, datasyncs: 0, directorySyncs: 0, reads: 0 };
  #directories = new Set<string>(['/']);
  /** What open and readdir see now. */
  #names = new Map<string, Inode>();
  /** What a power cut keeps for sure; pendingNames replay on it. */
  #durableNames = new Map<string, Inode>();
  #pendingNames: NameChange[] = [];
  #nextInodeId = 1;
  #crashed = false;
  #crashAtOperation: number | undefined;
  #hooks: Array<(event: SimOperationEvent) => void> = [];

  constructor(options: SimFileSystemOptions = {}) {
    this.#options = options;
  }

  /** A copy of the counters; take differences to count the calls of one step. */
  get counters(): Readonly<SimCounters> {
    return { ...this.#counters };
  }

  get crashed(): boolean {
    return this.#crashed;
  }

  // --- Fault injection -------------------------------------------------------------------------

  failNoSpaceAfter(bytes: number): void {
    this.faults.noSpaceAfterBytes = bytes;
  }
  failDatasync(nth = 1): void {
    this.faults.datasyncFailsIn = nth;
  }
  failDirectorySync(nth = 1): void {
    this.faults.directorySyncFailsIn = nth;
  }
  failReads(filePath?: string): void {
    this.faults.readFails = filePath === undefined ? true : normalize(filePath);
  }
  shortWrite(bytes: number): void {
    this.faults.shortWriteBytes = bytes;
  }
  clearFaults(): void {
    Object.assign(this.faults, noFaults());
  }

  /** Calls `hook` before every operation; if it throws, the operation rejects with that error and does nothing. Returns an unsubscribe function. */
  onOperation(hook: (event: SimOperationEvent) => void): () => void {
    this.#hooks.push(hook);
    return () => {
      this.#hooks = this.#hooks.filter((h) => h !== hook);
    };
  }

  /**
   * Makes operation number `index` (counted as SimOperationEvent.index) reject with `error`, and
   * only that one. Returns what that operation was, once it has been tried.
   */
  failOperation(index: number, error: Error): () => SimOperationEvent | undefined {
    let failed: SimOperationEvent | undefined;
    this.onOperation((event) => {
      if (event.index !== index) return;
      failed = event;
      throw error;
    });
    return () => failed;
  }

  /** The next `count` operations run; from the one after on, this instance is crashed and every call rejects. */
  crashAfterOperations(count: number): void {
    this.#crashAtOperation = this.#counters.operations + count;
  }

  // --- FileSystem --------------------------------------------------------------------------------

  open(filePath: string, mode: OpenMode): Promise<FileHandle> {
    return this.#run('open', filePath, undefined, () => {
      const file = normalize(filePath);
      this.#requireDirectory(path.posix.dirname(file), 'open', filePath);
      if (this.#directories.has(file)) throw fsError(mode === 'create' ? 'EEXIST' : 'EISDIR', 'open', filePath);
      let inode = this.#names.get(file);
      if (mode === 'create') {
        if (inode !== undefined) throw fsError('EEXIST', 'open', filePath);
        inode = new Inode(this.#nextInodeId++, new ByteImage(), new ByteImage());
        this.#names.set(file, inode);
        this.#pendingNames.push({ kind: 'create', path: file, inode });
      }
      if (inode === undefined) throw fsError('ENOENT', 'open', filePath);
      return this.#handle(inode, file, mode);
    });
  }

  readdir(directory: string): Promise<string[]> {
    return this.#run('readdir', directory, undefined, () => {
      const dir = normalize(directory);
      this.#requireDirectory(dir, 'scandir', directory);
      const paths = [...this.#names.keys(), ...this.#directories].filter((p) => p !== dir && path.posix.dirname(p) === dir);
      return paths.map((p) => path.posix.basename(p)).sort((a, b) => hashName(a) - hashName(b) || (a < b ? -1 : 1));
    });
  }

  rename(source: string, target: string): Promise<void> {
    return this.#run('rename', source, target, () => {
      const [from, to] = [normalize(source), normalize(target)];
      this.#requireDirectory(path.posix.dirname(from), 'rename', source, target);
      this.#requireDirectory(path.posix.dirname(to), 'rename', source, target);
      if (this.#directories.has(from)) throw fsError('ENOTSUP', 'rename', source, target);
      if (this.#directories.has(to)) throw fsError('EISDIR', 'rename', source, target);
      const inode = this.#names.get(from);
      if (inode === undefined) throw fsError('ENOENT', 'rename', source, target);
      if (from === to) return;
      this.#names.delete(from);
      this.#names.set(to, inode);
      this.#pendingNames.push({ kind: 'rename', source: from, target: to, inode });
    });
  }

  unlink(filePath: string): Promise<void> {
    return this.#run('unlink', filePath, undefined, () => {
      const file = normalize(filePath);
      this.#requireDirectory(path.posix.dirname(file), 'unlink', filePath);
      if (this.#directories.has(file)) throw fsError('EISDIR', 'unlink', filePath);
      const inode = this.#names.get(file);
      if (inode === undefined) throw fsError('ENOENT', 'unlink', filePath);
      this.#names.delete(file);
      this.#pendingNames.push({ kind: 'unlink', path: file, inode });
    });
  }

  mkdir(directory: string): Promise<void> {
    return this.#run('mkdir', directory, undefined, () => this.#mkdirNow(directory));
  }

  syncDirectory(directory: string): Promise<void> {
    return this.#run('syncDirectory', directory, undefined, () => {
      const dir = normalize(directory);
      this.#requireDirectory(dir, 'fsync', directory);
      this.#counters.directorySyncs++;
      if (this.#countDown('directorySyncFailsIn')) throw fsError('EIO', 'fsync', directory);
      // Commit the changes in this directory and, walking back, the earlier changes of the same
      // files, so the durable names never depend on a change that could still be undone.
      const inodes = new Set<Inode>();
      const committed = new Set<NameChange>();
      for (const change of [...this.#pendingNames].reverse()) {
        if (!touchesDirectory(change, dir) && !inodes.has(change.inode)) continue;
        committed.add(change);
        inodes.add(change.inode);
      }
      for (const change of this.#pendingNames) if (committed.has(change)) applyNameChange(this.#durableNames, change);
      this.#pendingNames = this.#pendingNames.filter((change) => !committed.has(change));
    });
  }

  // --- Crash -------------------------------------------------------------------------------------

  /**
   * Returns a new instance holding a possible disk after the crash; this instance and its handles
   * reject every later call. May be called again on the crashed instance (e.g. with another seed).
   */
  crash(how?: number | Rng | CrashOptions): SimFileSystem {
    const options: CrashOptions = typeof how === 'number' ? { seed: how } : how instanceof Rng ? { rng: how } : (how ?? {});
    const mode = options.mode ?? 'power';
    this.#crashed = true;
    if (mode === 'process') return this.#cloneForProcessCrash();
    // 'durable' mode draws nothing: it is the power cut that keeps no unsynced change.
    const rng = mode === 'durable' ? undefined : (options.rng ?? (options.seed === undefined ? undefined : new Rng(options.seed)));
    if (rng === undefined && mode === 'power') throw new TypeError('a power crash needs a seed or an rng');
    const names = new Map(this.#durableNames);
    if (rng !== undefined) {
      const policy = rng.pick(['keep', 'undo', 'each'] as const);
      for (const change of this.#pendingNames) {
        if (policy === 'keep' || (policy === 'each' && rng.chance(0.5))) applyNameChange(names, change);
      }
    }
    const next = new SimFileSystem(this.#options);
    next.#directories = new Set(this.#directories);
    next.#nextInodeId = this.#nextInodeId;
    const survivors = new Map<Inode, Inode>();
    for (const inode of [...new Set(names.values())].sort((a, b) => a.id - b.id)) {
      const image = rng === undefined ? inode.durable.copy() : crashFile(inode, rng);
      survivors.set(inode, new Inode(inode.id, image, image.copy()));
    }
    for (const [name, inode] of names) next.#names.set(name, survivors.get(inode) as Inode);
    next.#durableNames = new Map(next.#names);
    return next;
  }

  #cloneForProcessCrash(): SimFileSystem {
    const next = new SimFileSystem(this.#options);
    const clones = new Map<Inode, Inode>();
    const cloneOf = (inode: Inode): Inode => {
      let clone = clones.get(inode);
      if (clone === undefined) {
        clone = new Inode(inode.id, inode.durable.copy(), inode.current.copy());
        clone.pending = [...inode.pending];
        clones.set(inode, clone);
      }
      return clone;
    };
    next.#directories = new Set(this.#directories);
    next.#nextInodeId = this.#nextInodeId;
    for (const [name, inode] of this.#names) next.#names.set(name, cloneOf(inode));
    for (const [name, inode] of this.#durableNames) next.#durableNames.set(name, cloneOf(inode));
    next.#pendingNames = this.#pendingNames.map((change) => ({ ...change, inode: cloneOf(change.inode) }));
    return next;
  }

  // --- Test helpers (synchronous, not counted, no hooks or faults) --------------------------------

  /** The file's current content (what a read sees). */
  readFileSync(filePath: string): Buffer {
    const inode = this.#names.get(normalize(filePath));
    if (inode === undefined) throw fsError('ENOENT', 'open', filePath);
    return inode.current.toBuffer();
  }

  /** Creates or replaces a file (and missing directories); `durable` makes its name and bytes survive any crash. */
  writeFileSync(filePath: string, bytes: Uint8Array, options: { durable?: boolean } = {}): void {
    const file = normalize(filePath);
    this.#mkdirNow(path.posix.dirname(file));
    if (this.#directories.has(file)) throw fsError('EISDIR', 'open', filePath);
    const old = this.#names.get(file);
    const inode = new Inode(this.#nextInodeId++, new ByteImage(), new ByteImage(bytes));
    this.#names.set(file, inode);
    if (options.durable === true) {
      inode.durable = new ByteImage(bytes);
      this.#durableNames.set(file, inode);
      return;
    }
    if (old !== undefined) this.#pendingNames.push({ kind: 'unlink', path: file, inode: old });
    this.#pendingNames.push({ kind: 'create', path: file, inode });
    inode.pending.push({ kind: 'write', position: 0, bytes: Uint8Array.from(bytes) });
  }

  /** Every file's path, sorted. */
  listFiles(): string[] {
    return [...this.#names.keys()].sort();
  }

  /** Every file's current content by path, sorted by path; compare two disks with toEqual. */
  snapshot(): Map<string, Buffer> {
    return new Map(this.listFiles().map((file) => [file, this.readFileSync(file)]));
  }

  // --- Internals ---------------------------------------------------------------------------------

  async #run<T>(op: SimOperation, filePath: string, target: string | undefined, body: () => T): Promise<T> {
    if (this.#crashed) throw this.#crashError(op, filePath);
    const index = this.#counters.operations++;
    if (this.#crashAtOperation !== undefined && index >= this.#crashAtOperation) {
      this.#crashed = true;
      throw this.#crashError(op, filePath);
    }
    for (const hook of this.#hooks) hook({ op, path: filePath, target, index });
    const value = body();
    if (this.#options.settle === 'immediate') await new Promise((resolve) => setImmediate(resolve));
    return value;
  }

  #crashError(op: SimOperation, filePath: string): NodeJS.ErrnoException {
    const error = fsError('EIO', op, filePath);
    error.message += ' (simulated crash: this SimFileSystem is gone)';
    Object.defineProperty(error, SIMULATED_CRASH, { value: true });
    return error;
  }

  /** Decrements a fault countdown; true when this call is the one that fails. */
  #countDown(fault: 'datasyncFailsIn' | 'directorySyncFailsIn'): boolean {
    const left = this.faults[fault];
    if (left === undefined) return false;
    this.faults[fault] = left <= 1 ? undefined : left - 1;
    return left <= 1;
  }

  #requireDirectory(directory: string, syscall: string, filePath: string, target?: string): void {
    if (this.#directories.has(directory)) return;
    throw fsError(this.#names.has(directory) ? 'ENOTDIR' : 'ENOENT', syscall, filePath, target);
  }

  #mkdirNow(directory: string): void {
    const dir = normalize(directory);
    const chain: string[] = [];
    for (let p = dir; p !== '/'; p = path.posix.dirname(p)) chain.unshift(p);
    for (const p of chain) {
      if (this.#names.has(p)) throw fsError(p === dir ? 'EEXIST' : 'ENOTDIR', 'mkdir', directory);
      this.#directories.add(p);
    }
  }

  #handle(inode: Inode, file: string, mode: OpenMode): FileHandle {
    let closed = false;
    const requireOpen = (syscall: string): void => {
      if (closed) throw fsError('EBADF', syscall, file);
    };
    return {
      read: (buffer, offset, length, position) =>
        this.#run('read', file, undefined, () => {
          requireOpen('read');
          this.#counters.reads++;
          if (this.faults.readFails === true || this.faults.readFails === file) throw fsError('EIO', 'read', file);
          return inode.current.read(buffer, offset, length, position);
        }),
      writev: (buffers, position) =>
        this.#run('writev', file, undefined, () => {
          requireOpen('write');
          this.#counters.writevs++;
          if (mode === 'read') throw fsError('EBADF', 'write', file);
          if (!(position >= 0)) throw fsError('EINVAL', 'write', file);
          return this.#writeNow(inode, file, Buffer.concat(buffers), position);
        }),
      datasync: () =>
        this.#run('datasync', file, undefined, () => {
          requireOpen('fdatasync');
          this.#counters.datasyncs++;
          if (this.#countDown('datasyncFailsIn')) {
            // Linux marks the failed pages clean: they stay readable but will never be written back.
            inode.pending = [];
            throw fsError('EIO', 'fdatasync', file);
          }
          inode.pending.forEach((change) => applyFileChange(inode.durable, change));
          inode.pending = [];
        }),
      truncate: (length) =>
        this.#run('truncate', file, undefined, () => {
          requireOpen('ftruncate');
          if (mode === 'read' || !(length >= 0)) throw fsError('EINVAL', 'ftruncate', file);
          inode.current.truncate(length);
          inode.pending.push({ kind: 'truncate', length });
        }),
      size: () =>
        this.#run('size', file, undefined, () => {
          requireOpen('fstat');
          return inode.current.length;
        }),
      close: () =>
        this.#run('close', file, undefined, () => {
          requireOpen('close');
          closed = true;
        }),
    };
  }

  /** Applies the short-write and no-space faults, then writes what is left; returns the count. */
  #writeNow(inode: Inode, file: string, data: Buffer, position: number): number {
    let bytes: Uint8Array = data;
    const short = this.faults.shortWriteBytes;
    if (short !== undefined && bytes.length > 0) {
      this.faults.shortWriteBytes = undefined;
      bytes = bytes.subarray(0, short);
    }
    const room = this.faults.noSpaceAfterBytes;
    if (room !== undefined && bytes.length > 0) {
      if (room <= 0) throw fsError('ENOSPC', 'write', file);
      bytes = bytes.subarray(0, room);
      this.faults.noSpaceAfterBytes = room - bytes.length;
    }
    if (bytes.length === 0) return 0;
    inode.current.write(position, bytes);
    // `data` came from Buffer.concat, a private copy, so the pending change may keep a view of it.
    inode.pending.push({ kind: 'write', position, bytes });
    this.#counters.bytesWritten += bytes.length;
    return bytes.length;
  }
}
