// The simulated disk's own fault model (test/support/sim-fs.ts). Method: build a disk state once,
// then call crash() on it with many seeds and look at the set of outcomes. What must survive
// must survive on every seed; what may be lost must be lost on some seed and kept on another,
// or the crash tests built on the simulator would prove nothing.
import { describe, expect, it } from 'vitest';
import { isSimulatedCrash, SimFileSystem } from '../support/sim-fs.ts';
import { Rng } from '../support/rng.ts';

const SEEDS = Array.from({ length: 300 }, (_, i) => i);
const text = (value: string): Buffer => Buffer.from(value, 'latin1');

/** A disk with /d holding one fully durable file /d/base ('base'). */
function durableDisk(): SimFileSystem {
  const sim = new SimFileSystem();
  sim.writeFileSync('/d/base', text('base'), { durable: true });
  return sim;
}

/** What `describe` returns for the disk each seed's crash leaves, as a set of distinct strings. */
function outcomes(sim: SimFileSystem, describeDisk: (disk: SimFileSystem) => string): Set<string> {
  return new Set(SEEDS.map((seed) => describeDisk(sim.crash(seed))));
}

const contentOf = (disk: SimFileSystem, file: string): string =>
  disk.listFiles().includes(file) ? disk.readFileSync(file).toString('latin1') : '<absent>';

describe('SimFileSystem power crash', () => {
  it('keeps synced bytes and synced names on every seed, whatever happened after', async () => {
    const sim = durableDisk();
    const handle = await sim.open('/d/log', 'create');
    await handle.writev([text('synced-')], 0);
    await handle.datasync();
    await sim.syncDirectory('/d');
    await handle.writev([text('unsynced tail')], 7);
    await sim.rename('/d/base', '/d/base2');
    for (const seed of SEEDS) {
      const disk = sim.crash(seed);
      const log = disk.readFileSync('/d/log');
      expect(log.subarray(0, 7).toString('latin1'), `seed ${seed}`).toBe('synced-');
      expect([...disk.listFiles()].filter((f) => f.startsWith('/d/base')).length, `seed ${seed}`).toBe(1);
    }
  });

  it('loses, keeps, tears or zero-fills an unsynced write depending on the seed', async () => {
    const sim = durableDisk();
    const handle = await sim.open('/d/base', 'write');
    await handle.writev([Buffer.alloc(4096, 0xaa)], 4);
    const seen = new Set<string>();
    for (const seed of SEEDS) {
      const file = sim.crash(seed).readFileSync('/d/base');
      expect(file.subarray(0, 4).toString('latin1')).toBe('base');
      const tail = file.subarray(4);
      const written = tail.findIndex((byte) => byte !== 0xaa);
      const prefix = written === -1 ? tail.length : written;
      if (tail.length === 0) seen.add('lost');
      else if (prefix === 4096) seen.add('kept');
      else if (tail.length === prefix) seen.add((4 + prefix) % 512 === 0 ? 'sector-cut' : 'byte-cut');
      else if (tail.subarray(prefix).every((byte) => byte === 0)) seen.add('zero-filled');
      else seen.add('garbage');
    }
    expect([...seen].sort()).toEqual(['byte-cut', 'garbage', 'kept', 'lost', 'sector-cut', 'zero-filled']);
  });

  it('can keep a later unsynced write while losing an earlier one (holes)', async () => {
    const sim = new SimFileSystem();
    sim.writeFileSync('/d/f', text('........'), { durable: true });
    const handle = await sim.open('/d/f', 'write');
    await handle.writev([text('AA')], 0);
    await handle.writev([text('BB')], 6);
    const seen = outcomes(sim, (disk) => contentOf(disk, '/d/f'));
    expect(seen).toContain('......BB');
    expect(seen).toContain('AA......');
    expect(seen).toContain('AA....BB');
    expect(seen).toContain('........');
  });

  it('may lose an unsynced truncate', async () => {
    const sim = durableDisk();
    const handle = await sim.open('/d/base', 'write');
    await handle.truncate(2);
    expect(outcomes(sim, (disk) => contentOf(disk, '/d/base'))).toEqual(new Set(['ba', 'base']));
  });

  it('may undo a create whose directory was not synced, even when the data was', async () => {
    const sim = durableDisk();
    const handle = await sim.open('/d/new', 'create');
    await handle.writev([text('data')], 0);
    await handle.datasync();
    expect(outcomes(sim, (disk) => contentOf(disk, '/d/new'))).toEqual(new Set(['<absent>', 'data']));
  });

  it('may undo a rename not followed by syncDirectory, leaving the old name with the file', async () => {
    const sim = durableDisk();
    sim.writeFileSync('/d/live', text('old'), { durable: true });
    await sim.rename('/d/base', '/d/live');
    const seen = outcomes(sim, (disk) => disk.listFiles().map((f) => `${f}=${contentOf(disk, f)}`).join(' '));
    expect(seen).toEqual(new Set(['/d/base=base /d/live=old', '/d/live=base']));
  });

  it('never undoes a rename after syncDirectory', async () => {
    const sim = durableDisk();
    await sim.rename('/d/base', '/d/live');
    await sim.syncDirectory('/d');
    expect(outcomes(sim, (disk) => disk.listFiles().join(' '))).toEqual(new Set(['/d/live']));
  });

  it('drops a rename whose create was undone: the file is absent, at the old name, or at the new one', async () => {
    const sim = new SimFileSystem();
    await sim.mkdir('/d');
    const handle = await sim.open('/d/seg.tmp', 'create');
    await handle.writev([text('segment')], 0);
    await handle.datasync();
    await sim.rename('/d/seg.tmp', '/d/seg');
    expect(outcomes(sim, (disk) => disk.listFiles().join(' '))).toEqual(new Set(['', '/d/seg.tmp', '/d/seg']));
  });

  it('syncDirectory on the target directory also commits the earlier create in the source directory', async () => {
    const sim = new SimFileSystem();
    await sim.mkdir('/a');
    await sim.mkdir('/b');
    await (await sim.open('/a/x', 'create')).close();
    await sim.rename('/a/x', '/b/y');
    await sim.syncDirectory('/b');
    expect(outcomes(sim, (disk) => disk.listFiles().join(' '))).toEqual(new Set(['/b/y']));
  });

  it('may undo an unlink, bringing the file back with its durable content', async () => {
    const sim = durableDisk();
    await sim.unlink('/d/base');
    expect(outcomes(sim, (disk) => contentOf(disk, '/d/base'))).toEqual(new Set(['<absent>', 'base']));
  });

  it('gives the same disk for the same seed, and different disks across seeds', async () => {
    const sim = durableDisk();
    const handle = await sim.open('/d/w', 'create');
    const rng = new Rng(42);
    for (let i = 0; i < 20; i++) await handle.writev([rng.bytes(rng.range(1, 700))], rng.int(5000));
    await sim.rename('/d/base', '/d/b2');
    expect(sim.crash(7).snapshot()).toEqual(sim.crash(7).snapshot());
    expect(sim.crash(new Rng(7)).snapshot()).toEqual(sim.crash({ seed: 7 }).snapshot());
    const distinct = new Set(SEEDS.slice(0, 50).map((seed) => JSON.stringify([...sim.crash(seed).snapshot()])));
    expect(distinct.size).toBeGreaterThan(10);
  });

  it("crash({ mode: 'durable' }) keeps exactly what was synced", async () => {
    const sim = durableDisk();
    const handle = await sim.open('/d/base', 'write');
    await handle.writev([text('BASE')], 0);
    await (await sim.open('/d/other', 'create')).close();
    const disk = sim.crash({ mode: 'durable' });
    expect([...disk.snapshot()]).toEqual([['/d/base', text('base')]]);
  });

  it('makes the crashed instance and its handles reject every call with a simulated-crash EIO', async () => {
    const sim = durableDisk();
    const handle = await sim.open('/d/base', 'read');
    const disk = sim.crash(1);
    const error: unknown = await handle.read(Buffer.alloc(4), 0, 4, 0).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'EIO' });
    expect(isSimulatedCrash(error)).toBe(true);
    await expect(sim.readdir('/d')).rejects.toMatchObject({ code: 'EIO' });
    expect(sim.crashed).toBe(true);
    expect(await disk.readdir('/d')).toEqual(['base']);
  });
});

describe('SimFileSystem process crash', () => {
  it('keeps everything written, closes the handles, and leaves unsynced data still losable', async () => {
    const sim = durableDisk();
    const handle = await sim.open('/d/new', 'create');
    await handle.writev([text('unsynced')], 0);
    const disk = sim.crash({ mode: 'process' });
    await expect(handle.size()).rejects.toMatchObject({ code: 'EIO' });
    expect([...disk.snapshot()]).toEqual([['/d/base', text('base')], ['/d/new', text('unsynced')]]);
    expect(disk.crash({ mode: 'durable' }).listFiles()).toEqual(['/d/base']);
  });
});

describe('SimFileSystem injected faults', () => {
  it('fails the k-th datasync with EIO and drops its data: a retry succeeds but a crash loses it', async () => {
    const sim = durableDisk();
    const handle = await sim.open('/d/base', 'write');
    sim.failDatasync(2);
    await handle.datasync();
    await handle.writev([text('-lost')], 4);
    await expect(handle.datasync()).rejects.toMatchObject({ code: 'EIO' });
    await handle.datasync();
    expect(sim.readFileSync('/d/base').toString('latin1')).toBe('base-lost');
    expect(outcomes(sim, (disk) => contentOf(disk, '/d/base'))).toEqual(new Set(['base']));
  });

  it('writes the prefix that fits and resolves with the short count, then rejects the next writev with ENOSPC', async () => {
    const sim = new SimFileSystem();
    await sim.mkdir('/d');
    const handle = await sim.open('/d/f', 'create');
    sim.failNoSpaceAfter(10);
    expect(await handle.writev([text('123456')], 0)).toBe(6);
    expect(await handle.writev([text('78'), text('9ABCDE')], 6)).toBe(4);
    await expect(handle.writev([text('x')], 10)).rejects.toMatchObject({ code: 'ENOSPC' });
    expect(sim.readFileSync('/d/f').toString('latin1')).toBe('123456789A');
    sim.clearFaults();
    expect(await handle.writev([text('x')], 10)).toBe(1);
  });

  it('makes the next writev short when asked, once', async () => {
    const sim = new SimFileSystem();
    await sim.mkdir('/d');
    const handle = await sim.open('/d/f', 'create');
    sim.shortWrite(3);
    expect(await handle.writev([text('abcdef')], 0)).toBe(3);
    expect(await handle.writev([text('defg')], 3)).toBe(4);
    expect(sim.readFileSync('/d/f').toString('latin1')).toBe('abcdefg');
  });

  it('fails reads with EIO for one path only, until cleared', async () => {
    const sim = durableDisk();
    sim.writeFileSync('/d/other', text('ok'), { durable: true });
    sim.failReads('/d/base');
    const [base, other] = [await sim.open('/d/base', 'read'), await sim.open('/d/other', 'read')];
    await expect(base.read(Buffer.alloc(4), 0, 4, 0)).rejects.toMatchObject({ code: 'EIO' });
    expect(await other.read(Buffer.alloc(2), 0, 2, 0)).toBe(2);
    sim.faults.readFails = false;
    expect(await base.read(Buffer.alloc(4), 0, 4, 0)).toBe(4);
  });

  it('fails the k-th syncDirectory with EIO and leaves its changes undoable', async () => {
    const sim = durableDisk();
    await sim.rename('/d/base', '/d/live');
    sim.failDirectorySync();
    await expect(sim.syncDirectory('/d')).rejects.toMatchObject({ code: 'EIO' });
    expect(outcomes(sim, (disk) => disk.listFiles().join(' '))).toEqual(new Set(['/d/base', '/d/live']));
  });

  it('counts datasyncs, directory syncs, writevs and bytes written', async () => {
    const sim = new SimFileSystem();
    await sim.mkdir('/d');
    const handle = await sim.open('/d/f', 'create');
    const before = sim.counters;
    await handle.writev([text('ab'), text('cd')], 0);
    await handle.writev([text('e')], 4);
    await handle.datasync();
    await sim.syncDirectory('/d');
    const after = sim.counters;
    expect(after.writevs - before.writevs).toBe(2);
    expect(after.bytesWritten - before.bytesWritten).toBe(5);
    expect(after.datasyncs - before.datasyncs).toBe(1);
    expect(after.directorySyncs - before.directorySyncs).toBe(1);
    expect(after.operations - before.operations).toBe(4);
  });
});

describe('SimFileSystem operation hooks', () => {
  it('calls onOperation before each call, and a throwing hook fails that call without effect', async () => {
    const sim = new SimFileSystem();
    const events: string[] = [];
    const unsubscribe = sim.onOperation(({ op, path, index }) => {
      events.push(`${index}:${op}:${path}`);
      if (op === 'unlink') throw new Error('injected');
    });
    await sim.mkdir('/d');
    await (await sim.open('/d/f', 'create')).close();
    await expect(sim.unlink('/d/f')).rejects.toThrow('injected');
    unsubscribe();
    await sim.rename('/d/f', '/d/g');
    expect(events).toEqual(['0:mkdir:/d', '1:open:/d/f', '2:close:/d/f', '3:unlink:/d/f']);
    expect(sim.listFiles()).toEqual(['/d/g']);
  });

  it('crashAfterOperations lets a test crash at every step of a protocol', async () => {
    // Write-aside then rename: at every crash point, the live name holds all of 'v2' or all of 'v1'.
    async function replaceFile(sim: SimFileSystem): Promise<void> {
      const handle = await sim.open('/d/live.tmp', 'create');
      await handle.writev([text('v2')], 0);
      await handle.datasync();
      await handle.close();
      await sim.rename('/d/live.tmp', '/d/live');
      await sim.syncDirectory('/d');
    }
    const steps = 6;
    for (let crashAt = 0; crashAt <= steps; crashAt++) {
      const sim = new SimFileSystem();
      sim.writeFileSync('/d/live', text('v1'), { durable: true });
      sim.crashAfterOperations(crashAt);
      const error: unknown = await replaceFile(sim).then(() => undefined, (e: unknown) => e);
      expect(error === undefined ? crashAt >= steps : isSimulatedCrash(error)).toBe(true);
      for (const seed of SEEDS.slice(0, 40)) {
        const live = contentOf(sim.crash(seed), '/d/live');
        expect(crashAt === steps ? ['v2'] : ['v1', 'v2'], `crash at ${crashAt}, seed ${seed}`).toContain(live);
      }
    }
  });
});
