// Hostile bytes on disk: random files and mutated valid segment files (bit flips, truncations,
// zeroed ranges, records spliced in from other logs, duplicated records, forged headers whose
// checksum holds but whose fields lie, removed files, random extra segments, a future format
// version) opened with Log.open on the simulated disk, with and without `repair`.
//
// Properties (fast-check; a failure prints its seed and the shrunk mutation list):
// - without repair, open either succeeds or throws CorruptionError: never another exception,
//   never a hang (bounded by a disk-operation budget and a timer), never an allocation larger
//   than the scan chunk or the file (a corrupt length field must not size a buffer);
// - what a successful open replays has strictly increasing LSNs and holds only records that
//   some valid log contained (or that the test forged whole); when the mutations only destroy
//   bytes, it is a prefix of the original replay; the opened log appends and reopens cleanly;
// - with repair, open always succeeds (except for a future format version), replays the same
//   kind of prefix, loses no byte (every original byte is in the kept file or a quarantine
//   file, except a reported torn tail or CLOSE marker), and the repaired log then opens
//   without repair to the same records;
// - the scanner returns the same records and the same damage whatever its chunk size.
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import { Log } from '../../src/engine/log.ts';
import { CorruptionError } from '../../src/errors.ts';
import { crc32 } from '../../src/engine/crc.ts';
import { decodeRecordHeader, encodeRecordHeader, RECORD_HEADER_SIZE, SEAL_PAYLOAD_SIZE } from '../../src/engine/record-format.ts';
import { decodeSegmentHeader, SEGMENT_HEADER_SIZE } from '../../src/engine/segment-header.ts';
import { DEFAULT_SCAN_CHUNK_BYTES, scanSegment } from '../../src/engine/segment-reader.ts';
import { segmentFileName } from '../../src/engine/file-names.ts';
import { SimFileSystem } from '../support/sim-fs.ts';
import { LOG_DIR, openAndReplay, taggedPayload, withinMs } from '../support/crash-oracle.ts';
import type { ReplayedRecord } from '../support/crash-oracle.ts';

const RUNS = Number(process.env['BLERO_FUZZ_RUNS'] ?? 200);
const SEGMENT_SIZE = 4096;
/** More disk operations than any open of these small logs needs: beyond it, open is looping. */
const OPERATION_BUDGET = 20_000;

type Files = Map<string, Buffer>;

interface Corpus {
  readonly name: string;
  readonly files: Files;
  /** What a clean open of the untouched files replays. */
  readonly replay: ReplayedRecord[];
}

const recordKey = (lsn: number, payload: Uint8Array): string => `${lsn}:${Buffer.from(payload).toString('hex')}`;

/** Builds a log on a fresh simulated disk with `work`, and returns its files as the disk holds them. */
async function buildCorpus(name: string, work: (log: Log) => Promise<void>, closeCleanly: boolean): Promise<Corpus> {
  const sim = new SimFileSystem();
  const log = await Log.open(LOG_DIR, { fileSystem: sim, segmentSize: SEGMENT_SIZE });
  await work(log);
  if (closeCleanly) await log.close();
  const disk = closeCleanly ? sim : sim.crash({ mode: 'process' });
  const files: Files = new Map(disk.listFiles().map((file) => [file.slice(LOG_DIR.length + 1), disk.readFileSync(file)]));
  const { log: reopened, records } = await openAndReplay(diskOf(files));
  await reopened.close();
  if (!closeCleanly) await log.close().catch(() => undefined);
  return { name, files, replay: records };
}

function diskOf(files: Files): SimFileSystem {
  const sim = new SimFileSystem();
  for (const [name, bytes] of files) sim.writeFileSync(`${LOG_DIR}/${name}`, bytes, { durable: true });
  return sim;
}

let corpora: Corpus[] = [];
/** Every record of every valid log: a replay may only ever show these (or records forged whole). */
const known = new Set<string>();

beforeAll(async () => {
  let tag = 0;
  const appendSome = async (log: Log, count: number, maxSize: number): Promise<void> => {
    for (let i = 0; i < count; i++) {
      tag++;
      if (tag % 5 === 0) await log.appendGroup([taggedPayload(tag * 10, tag % maxSize), taggedPayload(tag * 10 + 1, 3), taggedPayload(tag * 10 + 2, 40)]);
      else await log.append(taggedPayload(tag * 10, (tag * 37) % maxSize));
    }
  };
  corpora = [
    await buildCorpus('one segment, clean close', (log) => appendSome(log, 12, 300), true),
    await buildCorpus('several segments, crashed', (log) => appendSome(log, 25, 700), false),
    await buildCorpus('rewritten, then more segments, crashed', async (log) => {
      await appendSome(log, 15, 600);
      const cut = log.cut();
      await log.rewrite(cut, async (out) => {
        for (let i = 0; i < 4; i++) await out.write(taggedPayload(900_000 + i, 100 + i));
      });
      await appendSome(log, 12, 600);
    }, false),
    await buildCorpus('rewritten, clean close', async (log) => {
      await appendSome(log, 8, 900);
      const cut = log.cut();
      await log.rewrite(cut, async (out) => {
        await out.write(taggedPayload(800_000, 10));
      });
      await appendSome(log, 3, 100);
    }, true),
  ];
  for (const corpus of corpora) for (const record of corpus.replay) known.add(recordKey(record.lsn, record.payload));
});

afterEach(() => {
  vi.restoreAllMocks();
});

// --- Mutations ------------------------------------------------------------------------------

type Mutation =
  | { readonly kind: 'flip'; readonly file: number; readonly at: number; readonly mask: number }
  | { readonly kind: 'truncate'; readonly file: number; readonly at: number }
  | { readonly kind: 'zero'; readonly file: number; readonly at: number; readonly length: number }
  | { readonly kind: 'remove'; readonly file: number }
  | { readonly kind: 'duplicate-record'; readonly file: number; readonly record: number; readonly before: number }
  | { readonly kind: 'splice-record'; readonly file: number; readonly donor: number; readonly donorFile: number; readonly record: number; readonly at: number; readonly overwrite: boolean }
  | { readonly kind: 'forge-header'; readonly file: number; readonly at: number; readonly fields: ForgedFields }
  | { readonly kind: 'forge-record'; readonly file: number; readonly at: number; readonly lsnDelta: number; readonly size: number; readonly durableBack: number }
  | { readonly kind: 'random-segment'; readonly baseLsn: number; readonly bytes: Uint8Array }
  | { readonly kind: 'random-temp'; readonly bytes: Uint8Array }
  | { readonly kind: 'future-version'; readonly file: number };

interface ForgedFields {
  readonly type: number;
  readonly flags: number;
  readonly lsn: number;
  readonly durableBack: number;
  readonly payloadLength: number;
  readonly payloadCrc: number;
}

/**
 * Mutations that only destroy or remove bytes: after them a replay must be a prefix of the
 * original. Insertions of real records (duplicates, splices, forgeries) can make a compaction
 * output, whose LSNs are not dense, validly start later: those only get the subset check.
 */
const DESTRUCTIVE = new Set<Mutation['kind']>(['flip', 'truncate', 'zero', 'remove', 'forge-header', 'random-temp', 'future-version']);

/** Which segment a mutation hits: -1 is the last one (where torn tails are legal), else an index modulo the count. */
const fileIndex = fc.oneof(fc.constant(-1), fc.nat(1000));
const mutationArbitrary: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), file: fileIndex, at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), file: fileIndex, at: fc.nat() }),
  fc.record({ kind: fc.constant('zero' as const), file: fileIndex, at: fc.nat(), length: fc.integer({ min: 1, max: 600 }) }),
  fc.record({ kind: fc.constant('remove' as const), file: fileIndex }),
  fc.record({ kind: fc.constant('duplicate-record' as const), file: fileIndex, record: fc.nat(), before: fc.nat() }),
  fc.record({
    kind: fc.constant('splice-record' as const), file: fileIndex, donor: fc.nat(), donorFile: fc.nat(), record: fc.nat(), at: fc.nat(), overwrite: fc.boolean(),
  }),
  fc.record({
    kind: fc.constant('forge-header' as const), file: fileIndex, at: fc.nat(),
    fields: fc.record({
      type: fc.integer({ min: 1, max: 3 }),
      flags: fc.integer({ min: 0, max: 1 }),
      lsn: fc.integer({ min: 0, max: 2 ** 40 }),
      durableBack: fc.nat(100),
      payloadLength: fc.oneof(fc.nat(64), fc.integer({ min: 0, max: 256 * 1024 * 1024 })),
      payloadCrc: fc.nat(),
    }),
  }),
  fc.record({
    kind: fc.constant('forge-record' as const), file: fileIndex, at: fc.nat(), lsnDelta: fc.integer({ min: -3, max: 3 }), size: fc.nat(200), durableBack: fc.nat(50),
  }),
  fc.record({ kind: fc.constant('random-segment' as const), baseLsn: fc.integer({ min: 1, max: 80 }), bytes: fc.uint8Array({ maxLength: 300 }) }),
  fc.record({ kind: fc.constant('random-temp' as const), bytes: fc.uint8Array({ maxLength: 100 }) }),
  fc.record({ kind: fc.constant('future-version' as const), file: fileIndex }),
);

/** Offsets where records start in a valid segment file (walking its headers), the file end last. */
function recordOffsets(bytes: Buffer): number[] {
  const offsets: number[] = [];
  let at = SEGMENT_HEADER_SIZE;
  while (at + RECORD_HEADER_SIZE <= bytes.length) {
    const header = decodeRecordHeader(bytes, at);
    if (header === undefined) break;
    offsets.push(at);
    at += RECORD_HEADER_SIZE + header.payloadLength;
  }
  offsets.push(Math.min(at, bytes.length));
  return offsets;
}

function segmentNames(files: Files): string[] {
  return [...files.keys()].filter((name) => name.endsWith('.log')).sort();
}

function insertAt(bytes: Buffer, at: number, extra: Uint8Array, overwrite: boolean): Buffer {
  if (!overwrite) return Buffer.concat([bytes.subarray(0, at), extra, bytes.subarray(at)]);
  const out = Buffer.from(bytes);
  const end = Math.min(out.length, at + extra.length);
  out.set(extra.subarray(0, end - at), at);
  return end - at < extra.length ? Buffer.concat([out, extra.subarray(end - at)]) : out;
}

/** Applies `mutation` to a copy of `files`; forged whole records are added to `forged`. */
function applyMutation(files: Files, mutation: Mutation, forged: Set<string>): Files {
  const out: Files = new Map(files);
  const names = segmentNames(out);
  if (mutation.kind === 'random-segment') {
    out.set(segmentFileName(mutation.baseLsn, 0), Buffer.from(mutation.bytes));
    return out;
  }
  if (mutation.kind === 'random-temp') {
    out.set(`${segmentFileName(1, 9)}.tmp`, Buffer.from(mutation.bytes));
    return out;
  }
  if (names.length === 0) return out;
  const name = names[mutation.file < 0 ? names.length - 1 : mutation.file % names.length]!;
  const bytes = out.get(name)!;
  const offsets = recordOffsets(bytes);
  const pickOffset = (n: number): number => offsets[n % offsets.length]!;
  switch (mutation.kind) {
    case 'flip': {
      if (bytes.length === 0) return out;
      const copy = Buffer.from(bytes);
      const at = mutation.at % copy.length;
      copy[at] = copy[at]! ^ mutation.mask;
      out.set(name, copy);
      return out;
    }
    case 'truncate':
      out.set(name, bytes.subarray(0, mutation.at % (bytes.length + 1)));
      return out;
    case 'zero': {
      const copy = Buffer.from(bytes);
      const at = mutation.at % (copy.length + 1);
      copy.fill(0, at, Math.min(copy.length, at + mutation.length));
      out.set(name, copy);
      return out;
    }
    case 'remove':
      out.delete(name);
      return out;
    case 'duplicate-record': {
      if (offsets.length < 2) return out;
      const i = mutation.record % (offsets.length - 1);
      const record = bytes.subarray(offsets[i]!, offsets[i + 1]!);
      out.set(name, insertAt(bytes, pickOffset(mutation.before), record, false));
      return out;
    }
    case 'splice-record': {
      const donor = corpora[mutation.donor % corpora.length]!;
      const donorNames = segmentNames(donor.files);
      const donorBytes = donor.files.get(donorNames[mutation.donorFile % donorNames.length]!)!;
      const donorOffsets = recordOffsets(donorBytes);
      if (donorOffsets.length < 2) return out;
      const i = mutation.record % (donorOffsets.length - 1);
      const record = donorBytes.subarray(donorOffsets[i]!, donorOffsets[i + 1]!);
      out.set(name, insertAt(bytes, pickOffset(mutation.at), record, mutation.overwrite));
      return out;
    }
    case 'forge-header': {
      const { type, flags, lsn, durableBack, payloadLength, payloadCrc } = mutation.fields;
      const header = Buffer.alloc(RECORD_HEADER_SIZE);
      // crc32 of an empty payload is 0: keep a forged empty record invalid, so this mutation only destroys.
      const crc = payloadLength === 0 ? payloadCrc | 1 : payloadCrc;
      encodeRecordHeader(header, 0, type as 1, flags, lsn, Math.max(0, lsn - durableBack), payloadLength, crc);
      out.set(name, insertAt(bytes, pickOffset(mutation.at), header, true));
      return out;
    }
    case 'forge-record': {
      // A whole valid record with an LSN near the one the position expects.
      const at = pickOffset(mutation.at);
      const previous = offsets.filter((o) => o < at).pop();
      const previousLsn = previous === undefined ? 0 : (decodeRecordHeader(bytes, previous)?.lsn ?? 0);
      const lsn = Math.max(0, previousLsn + 1 + mutation.lsnDelta);
      const payload = taggedPayload(lsn * 1000 + mutation.size, mutation.size);
      const record = Buffer.alloc(RECORD_HEADER_SIZE + payload.length);
      encodeRecordHeader(record, 0, 1, 0, lsn, Math.max(0, lsn - mutation.durableBack), payload.length, crc32(payload));
      record.set(payload, RECORD_HEADER_SIZE);
      forged.add(recordKey(lsn, payload));
      out.set(name, insertAt(bytes, at, record, false));
      return out;
    }
    case 'future-version': {
      if (bytes.length < SEGMENT_HEADER_SIZE) return out;
      const copy = Buffer.from(bytes);
      copy.writeUInt16LE(2, 4);
      copy.writeUInt32LE(crc32(copy.subarray(0, 28)), 28);
      out.set(name, copy);
      return out;
    }
  }
}

// --- Opening hostile directories ------------------------------------------------------------

interface OpenOutcome {
  readonly error: unknown;
  readonly records: ReplayedRecord[];
  readonly log: Log | undefined;
  readonly sim: SimFileSystem;
  readonly maxAllocation: number;
}

/** Opens `files` on a fresh disk, bounding operations and time and recording the largest buffer allocated. */
async function openHostile(files: Files, repair: boolean, context: string): Promise<OpenOutcome> {
  const sim = diskOf(files);
  sim.onOperation((event) => {
    if (event.index > OPERATION_BUDGET) throw new Error(`${context}: open exceeded ${OPERATION_BUDGET} disk operations (a loop)`);
  });
  let maxAllocation = 0;
  const track = <F extends (size: number, ...rest: never[]) => Buffer>(name: 'alloc' | 'allocUnsafe' | 'allocUnsafeSlow'): void => {
    const original = Buffer[name].bind(Buffer) as unknown as F;
    vi.spyOn(Buffer, name).mockImplementation(((size: number, ...rest: never[]) => {
      maxAllocation = Math.max(maxAllocation, size);
      return original(size, ...rest);
    }) as never);
  };
  track('alloc');
  track('allocUnsafe');
  track('allocUnsafeSlow');
  try {
    const { log, records } = await withinMs(openAndReplay(sim, { repair, segmentSize: SEGMENT_SIZE }), 10_000, context);
    return { error: undefined, records, log, sim, maxAllocation };
  } catch (error) {
    return { error, records: [], log: undefined, sim, maxAllocation };
  } finally {
    vi.restoreAllMocks();
    counts.largestAllocation = Math.max(counts.largestAllocation, maxAllocation);
  }
}

function describeMutations(corpus: Corpus, mutations: readonly Mutation[]): string {
  return `${corpus.name}; mutations ${JSON.stringify(mutations, (_, v: unknown) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v))}`;
}

/** The replay holds only known records in LSN order; after destructive mutations only, a prefix of the original. */
function checkReplay(records: readonly ReplayedRecord[], corpus: Corpus, mutations: readonly Mutation[], forged: Set<string>, context: string): void {
  for (let i = 1; i < records.length; i++) {
    expect(records[i]!.lsn, `${context}: LSNs not increasing at ${i}`).toBeGreaterThan(records[i - 1]!.lsn);
  }
  for (const record of records) {
    const key = recordKey(record.lsn, record.payload);
    expect(known.has(key) || forged.has(key), `${context}: replayed a record no log contained (LSN ${record.lsn})`).toBe(true);
  }
  if (mutations.every((m) => DESTRUCTIVE.has(m.kind))) {
    const original = corpus.replay.slice(0, records.length);
    expect(records.map((r) => recordKey(r.lsn, r.payload)), `${context}: not a prefix of the original replay`).toEqual(
      original.map((r) => recordKey(r.lsn, r.payload)),
    );
  }
}

/** The opened log takes an append and reopens, without repair, to the same records plus it. */
async function checkUsable(outcome: OpenOutcome, context: string): Promise<void> {
  const log = outcome.log!;
  const payload = Buffer.from('after the fuzzed open');
  await log.append(payload);
  const lsn = log.lastLsn;
  await log.close();
  const again = await openAndReplay(outcome.sim);
  expect(again.records.map((r) => r.lsn), `${context}: replay after append + reopen`).toEqual([...outcome.records.map((r) => r.lsn), lsn]);
  await again.log.close();
}

function allocationBound(files: Files): number {
  let largest = 0;
  for (const bytes of files.values()) largest = Math.max(largest, bytes.length);
  return Math.max(DEFAULT_SCAN_CHUNK_BYTES, largest);
}

const counts = { opens: 0, corruptionErrors: 0, succeeded: 0, repaired: 0, quarantined: 0, largestAllocation: 0 };

const caseArbitrary = fc.record({
  corpus: fc.nat(),
  mutations: fc.array(mutationArbitrary, { minLength: 1, maxLength: 3 }),
});

/** Every byte of every original segment is in its kept file or its quarantine file, except a reported torn tail or CLOSE marker. */
function checkNoByteLost(before: Files, outcome: OpenOutcome, context: string): void {
  const log = outcome.log!;
  const after = new Map(outcome.sim.listFiles().map((f) => [f.slice(LOG_DIR.length + 1), outcome.sim.readFileSync(f)]));
  const removed = new Set(log.recovery.removedFiles);
  const originals = segmentNames(before);
  const lastOriginal = originals[originals.length - 1];
  for (const name of originals) {
    const bytes = before.get(name)!;
    const quarantine = [...after.entries()].filter(([n]) => new RegExp(`^quarantine-\\d+-${name.replace(/\./g, '\\.')}$`).test(n));
    expect(quarantine.length, `${context}: ${name} has several quarantine files`).toBeLessThanOrEqual(1);
    const moved = quarantine[0]?.[1];
    const kept = after.get(name);
    if (kept === undefined) {
      if (removed.has(name)) continue;
      expect(moved?.equals(bytes), `${context}: ${name} vanished without a full quarantine copy`).toBe(true);
      continue;
    }
    if (moved !== undefined && moved.length === bytes.length && kept.length === SEGMENT_HEADER_SIZE) {
      // Moved whole into quarantine; open then created an empty successor under the same name.
      expect(moved.equals(bytes), `${context}: ${name}: quarantine copy differs`).toBe(true);
      continue;
    }
    if (moved !== undefined) {
      const cut = bytes.length - moved.length;
      expect(moved.equals(bytes.subarray(cut)), `${context}: ${name}: quarantine holds other bytes than the cut-off part`).toBe(true);
      expect(kept.subarray(0, cut).equals(bytes.subarray(0, cut)), `${context}: ${name}: kept head changed`).toBe(true);
      // A cut compaction output is re-sealed: one SEAL record more.
      expect([cut, cut + RECORD_HEADER_SIZE + SEAL_PAYLOAD_SIZE], `${context}: ${name}: kept length`).toContain(kept.length);
      continue;
    }
    const truncated = log.recovery.truncated;
    if (truncated !== undefined && truncated.file.endsWith(`/${name}`)) {
      expect(kept.equals(bytes.subarray(0, truncated.offset)), `${context}: ${name}: torn tail cut elsewhere`).toBe(true);
      expect(truncated.bytes, `${context}: ${name}: reported torn bytes`).toBe(bytes.length - truncated.offset);
      continue;
    }
    if (log.recovery.cleanShutdown && name === lastOriginal && kept.length === bytes.length - RECORD_HEADER_SIZE) {
      expect(kept.equals(bytes.subarray(0, kept.length)), `${context}: ${name}: CLOSE marker removal changed other bytes`).toBe(true);
      continue;
    }
    expect(kept.equals(bytes), `${context}: ${name} changed without a quarantine file or a report`).toBe(true);
  }
  for (const [name, bytes] of after) {
    if (before.has(name) || name.startsWith('quarantine-')) continue;
    // The only new file a recovery may create is an empty successor segment.
    expect(bytes.length, `${context}: new file ${name}`).toBe(SEGMENT_HEADER_SIZE);
  }
}

describe('Log.open on hostile segment files', () => {
  it('opens or throws CorruptionError, never anything else, and replays only a legal prefix', async () => {
    await fc.assert(
      fc.asyncProperty(caseArbitrary, async ({ corpus: corpusIndex, mutations }) => {
        const corpus = corpora[corpusIndex % corpora.length]!;
        const forged = new Set<string>();
        const files = mutations.reduce((current, m) => applyMutation(current, m, forged), corpus.files);
        const context = describeMutations(corpus, mutations);
        const outcome = await openHostile(files, false, context);
        counts.opens++;
        expect(outcome.maxAllocation, `${context}: allocation`).toBeLessThanOrEqual(allocationBound(files));
        if (outcome.error !== undefined) {
          expect(outcome.error, `${context}: open threw ${String(outcome.error)}`).toBeInstanceOf(CorruptionError);
          expect((outcome.error as CorruptionError).code).toBe('ERR_BLERO_CORRUPT');
          counts.corruptionErrors++;
          return;
        }
        counts.succeeded++;
        checkReplay(outcome.records, corpus, mutations, forged, context);
        await checkUsable(outcome, context);
      }),
      { numRuns: RUNS },
    );
  });

  it('with repair: always opens (except a future format version), keeps a legal prefix and loses no byte', async () => {
    await fc.assert(
      fc.asyncProperty(caseArbitrary, async ({ corpus: corpusIndex, mutations }) => {
        const corpus = corpora[corpusIndex % corpora.length]!;
        const forged = new Set<string>();
        const files = mutations.reduce((current, m) => applyMutation(current, m, forged), corpus.files);
        const context = `repair: ${describeMutations(corpus, mutations)}`;
        const outcome = await openHostile(files, true, context);
        counts.opens++;
        expect(outcome.maxAllocation, `${context}: allocation`).toBeLessThanOrEqual(allocationBound(files));
        if (outcome.error !== undefined) {
          expect(outcome.error, `${context}: repair open threw ${String(outcome.error)}`).toBeInstanceOf(CorruptionError);
          expect((outcome.error as CorruptionError).reason, `${context}: repair refused`).toBe('future-format-version');
          return;
        }
        counts.repaired++;
        if (outcome.log!.recovery.quarantined !== undefined) counts.quarantined++;
        checkReplay(outcome.records, corpus, mutations, forged, context);
        checkNoByteLost(files, outcome, context);
        await checkUsable(outcome, context);
      }),
      { numRuns: RUNS },
    );
  });

  it('opens directories of random files without crashing', async () => {
    const names = fc.constantFrom(segmentFileName(1, 0), segmentFileName(2, 0), segmentFileName(1, 1), `${segmentFileName(3, 0)}.tmp`, 'quarantine-1-x', 'LOCK', 'other');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(names, fc.uint8Array({ maxLength: 200 })), { maxLength: 4 }), fc.boolean(), async (entries, repair) => {
        const files: Files = new Map(entries.map(([name, bytes]) => [name, Buffer.from(bytes)]));
        const context = `random files ${JSON.stringify(entries.map(([n, b]) => [n, b.length]))}, repair ${repair}`;
        const outcome = await openHostile(files, repair, context);
        counts.opens++;
        expect(outcome.maxAllocation, `${context}: allocation`).toBeLessThanOrEqual(allocationBound(files));
        if (outcome.error !== undefined) {
          expect(outcome.error, `${context}: open threw ${String(outcome.error)}`).toBeInstanceOf(CorruptionError);
          if (repair) expect((outcome.error as CorruptionError).reason).toBe('future-format-version');
          return;
        }
        // Random bytes cannot carry a valid record (two CRC-32s would have to match).
        expect(outcome.records, context).toEqual([]);
        await checkUsable(outcome, context);
      }),
      { numRuns: RUNS },
    );
  });

  it('a forged future format version fails even with repair', async () => {
    const forged = new Set<string>();
    const files = applyMutation(corpora[1]!.files, { kind: 'future-version', file: 1 }, forged);
    for (const repair of [false, true]) {
      const outcome = await openHostile(files, repair, `future version, repair ${repair}`);
      expect(outcome.error).toBeInstanceOf(CorruptionError);
      expect((outcome.error as CorruptionError).reason).toBe('future-format-version');
    }
  });

  it('reports what it checked', () => {
    console.log(
      `engine fuzz: ${counts.opens} hostile opens (${counts.succeeded} opened, ${counts.corruptionErrors} CorruptionError), ` +
        `${counts.repaired} repair opens (${counts.quarantined} quarantined); largest buffer allocated ${counts.largestAllocation} bytes`,
    );
    // The allocation spy saw the engine's buffers (so the bound above was really checked).
    expect(counts.largestAllocation).toBeGreaterThan(0);
    expect(counts.corruptionErrors).toBeGreaterThan(0);
    expect(counts.quarantined).toBeGreaterThan(0);
  });
});

describe('scanSegment and the header decoders on hostile bytes', () => {
  it('the scanner gives the same records and damage whatever its chunk size', async () => {
    await fc.assert(
      fc.asyncProperty(caseArbitrary, fc.integer({ min: 1, max: 300 }), async ({ corpus: corpusIndex, mutations }, chunkBytes) => {
        const corpus = corpora[corpusIndex % corpora.length]!;
        const files = mutations.reduce((current, m) => applyMutation(current, m, new Set()), corpus.files);
        const sim = diskOf(files);
        for (const name of segmentNames(files)) {
          const handle = await sim.open(`${LOG_DIR}/${name}`, 'read');
          const size = await handle.size();
          const scan = async (chunk: number | undefined) => {
            const seen: string[] = [];
            const result = await scanSegment(handle, size, SEGMENT_HEADER_SIZE, (header, payload, offset) => {
              seen.push(`${offset}:${header.type}:${header.lsn}:${Buffer.from(payload).toString('hex')}`);
            }, chunk);
            expect(result.endOffset).toBeLessThanOrEqual(Math.max(size, SEGMENT_HEADER_SIZE));
            return { seen, endOffset: result.endOffset, damage: result.damage };
          };
          expect(await scan(chunkBytes), `${describeMutations(corpus, mutations)}, ${name}, chunk ${chunkBytes}`).toEqual(await scan(undefined));
          await handle.close();
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('decodeRecordHeader and decodeSegmentHeader never throw on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 64 }), fc.nat(32), (bytes, at) => {
        const offset = Math.min(at, bytes.length - RECORD_HEADER_SIZE);
        const header = decodeRecordHeader(bytes, offset);
        if (header !== undefined) expect(header.durableLsn).toBeLessThanOrEqual(header.lsn);
        decodeSegmentHeader(bytes);
      }),
      { numRuns: RUNS * 10 },
    );
  });
});
