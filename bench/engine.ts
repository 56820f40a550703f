// The engine's bench (issue 2): Log appends per second and payload MB/s for 100-byte and 4 KiB
// records, one writer awaiting each append and 64 appends kept in flight, in each durability
// mode; then replay speed, the time Log.open() takes to hand every record of a closed log to
// onRecord. Each scenario gets a fresh log in its own directory, closed and removed afterwards.
//
// Ratios: 'sync' rows against the disk's fdatasync loops (one writer: append+fdatasync; 64 in
// flight: 64 records per fdatasync); 'interval' and 'none' rows, which do not wait for the disk,
// against its sequential bandwidth in MB/s; replay against the same bandwidth.
import { Log } from '../src/engine/log.ts';
import type { Durability } from '../src/engine/log.ts';
import { formatNumber } from './report.ts';
import type { BenchContext, Row, Target, Throughput } from './scenario.ts';
import { MB, ROUNDS, details, latencyText, nowNs, payloadOf, roundsText, runFor, secondsSince } from './scenario.ts';

const DURABILITIES: readonly Durability[] = ['sync', 'interval', 'none'];
const RECORD_SIZES = [100, 4096] as const;
const WRITER_COUNTS = [1, 64] as const;
/** Appends in flight while the replay scenario writes its log. */
const FILL_IN_FLIGHT = 1000;

type RecordSize = (typeof RECORD_SIZES)[number];
type Writers = (typeof WRITER_COUNTS)[number];

function sizeLabel(size: RecordSize): string {
  return size === 100 ? '100 B' : '4 KiB';
}

/** The targets, on the rows they name. */
function appendTarget(durability: Durability, size: RecordSize, writers: Writers): Target | undefined {
  if (size !== 100) return undefined;
  if (durability === 'sync' && writers === 1) return { of: 'ratio', atLeast: 1.0 };
  if (durability === 'sync' && writers === 64) return { of: 'value', atLeast: 150_000 };
  if (durability === 'none') return { of: 'value', atLeast: 1_000_000 };
  return undefined;
}

function appendReference(durability: Durability, writers: Writers, megabytesPerSecond: number): NonNullable<Row['ratio']> {
  if (durability !== 'sync') return { to: 'disk.sequential', value: megabytesPerSecond };
  return { to: writers === 1 ? 'disk.append-sync' : 'disk.batch-sync' };
}

async function appendRow(context: BenchContext, durability: Durability, size: RecordSize, writers: Writers): Promise<Row> {
  const label = `append ${sizeLabel(size)}, ${durability}, ${writers === 1 ? '1 writer awaited' : '64 in flight'}`;
  context.progress(`engine: ${label}`);
  const directory = await context.scratch(`engine-${durability}-${size}-${writers}`);
  const payload = payloadOf(size);
  const log = await Log.open(directory, { durability });
  let measured: Throughput;
  let syncs: number;
  try {
    const append = (): Promise<void> => log.append(payload);
    await runFor({ durationMs: context.config.warmupMs, concurrency: writers }, append);
    const before = log.stats();
    measured = await runFor({ durationMs: context.config.scenarioMs, concurrency: writers, latency: writers === 1, rounds: ROUNDS }, append);
    syncs = log.stats().syncs - before.syncs;
  } finally {
    await log.close();
    await context.discard(directory);
  }
  const megabytesPerSecond = (measured.rate * size) / MB;
  // In 'interval' and 'none' modes the few fdatasyncs come from the timer and from segment seals.
  const perSync = syncs > 0 ? `${formatNumber(measured.ops / syncs)} appends per fdatasync` : 'no fdatasync while measured';
  const target = appendTarget(durability, size, writers);
  return {
    section: 'engine',
    key: `engine.append.${durability}.${size}.${writers}`,
    label,
    value: measured.rate,
    unit: 'appends/s',
    detail: details(`${megabytesPerSecond.toFixed(1)} MB/s`, roundsText(measured), latencyText(measured), perSync),
    ratio: appendReference(durability, writers, megabytesPerSecond),
    ...(target === undefined ? {} : { target }),
    status: 'measured',
    data: { appends: measured.ops, seconds: measured.seconds, syncs, megabytesPerSecond },
  };
}

/** Writes `records` payloads of 100 B with 'none' durability (the fill is not what is measured). */
async function fillLog(directory: string, records: number): Promise<void> {
  const payload = payloadOf(100);
  const log = await Log.open(directory, { durability: 'none' });
  try {
    for (let written = 0; written < records; ) {
      const count = Math.min(FILL_IN_FLIGHT, records - written);
      const appends: Promise<void>[] = [];
      for (let i = 0; i < count; i++) appends.push(log.append(payload));
      await Promise.all(appends);
      written += count;
    }
  } finally {
    await log.close();
  }
}

async function replayRow(context: BenchContext): Promise<Row> {
  const records = context.config.replayRecords;
  context.progress(`engine: replay ${records.toLocaleString('en-US')} records of 100 B (writing them first)`);
  const directory = await context.scratch('engine-replay');
  try {
    await fillLog(directory, records);
    let replayed = 0;
    let payloadBytes = 0;
    const startNs = nowNs();
    const log = await Log.open(directory, {
      onRecord: (payload) => {
        replayed++;
        payloadBytes += payload.length;
      },
    });
    const seconds = secondsSince(startNs);
    const segments = log.stats().segments;
    await log.close();
    if (replayed !== records) throw new Error(`replay delivered ${replayed} records, expected ${records}`);
    const megabytesPerSecond = payloadBytes / MB / seconds;
    return {
      section: 'engine',
      key: 'engine.replay',
      label: `replay (Log.open) of ${records.toLocaleString('en-US')} records of 100 B`,
      value: replayed / seconds,
      unit: 'records/s',
      detail: `open took ${(seconds * 1000).toFixed(0)} ms, ${megabytesPerSecond.toFixed(1)} MB/s of payload, ${segments} segment${segments === 1 ? '' : 's'}, warm page cache`,
      ratio: { to: 'disk.sequential', value: megabytesPerSecond },
      target: { of: 'value', atLeast: 2_000_000 },
      status: 'measured',
      data: { records: replayed, seconds, segments },
    };
  } finally {
    await context.discard(directory);
  }
}

/** Every engine row, in a fixed order: sync first, so the fdatasync rows run on a quiet disk. */
export async function runEngineBench(context: BenchContext): Promise<Row[]> {
  const rows: Row[] = [];
  for (const durability of DURABILITIES) {
    for (const size of RECORD_SIZES) {
      for (const writers of WRITER_COUNTS) rows.push(await appendRow(context, durability, size, writers));
    }
  }
  rows.push(await replayRow(context));
  if (!context.config.full && context.config.replayRecords < 1_000_000) {
    context.note('engine', `Quick mode replays ${context.config.replayRecords.toLocaleString('en-US')} records, not the issue's 1,000,000 (use --full).`);
  }
  return rows;
}
