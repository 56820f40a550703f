// Turns the rows of a run into the markdown report: the machine first, then one table per
// section, each figure beside its ratio to a reference measured in the same run (a disk limit or
// the SQLite baseline) and the target when there is one. Targets are reported, never
// asserted: a missed target is a finding, not a failure of the bench.
import * as os from 'node:os';
import type { BenchConfig, Row, Section, Target } from './scenario.ts';

/** Figures quoted from elsewhere, printed beside ours and never mistaken for a measurement. */
export const PUBLISHED_ROWS: readonly Row[] = [
  {
    section: 'queue',
    key: 'published.goblero.enqueue',
    label: 'Goblero enqueue (Go, Badger SyncWrites)',
    value: 6250,
    unit: 'jobs/s',
    detail: '159,942 ns/op',
    note: 'published, not measured: Goblero README, Core i5 laptop, SSD',
    status: 'published',
  },
  {
    section: 'queue',
    key: 'published.goblero.dequeue',
    label: 'Goblero dequeue (Go, Badger SyncWrites)',
    value: 361,
    unit: 'jobs/s',
    detail: '2,767,260 ns/op',
    note: 'published, not measured: Goblero README, Core i5 laptop, SSD',
    status: 'published',
  },
];

const SECTION_TITLES: Record<Section, string> = {
  disk: 'Disk: raw limits, measured in this run',
  engine: 'Engine (Log): ratios to the disk limits of this run',
  queue: 'Queue: ratios to the SQLite baseline of this run',
  sqlite: 'SQLite baseline: ratios to the disk limits of this run',
  compaction: 'Compaction: ratios to the disk limits of this run',
  published: 'Published figures, not measured',
};

const SECTION_ORDER: readonly Section[] = ['disk', 'engine', 'queue', 'sqlite', 'compaction', 'published'];

/** Short names of rows that others are compared with, as the ratio column shows them. */
const REFERENCE_NAMES: Readonly<Record<string, string>> = {
  'disk.append-sync': 'disk append+fdatasync',
  'disk.overwrite-sync': 'disk overwrite+fdatasync',
  'disk.batch-sync': 'disk 64 per fdatasync',
  'disk.sequential': 'disk sequential MB/s',
  'disk.interference': 'the raw disk beside compaction-shaped writes',
  'compaction.disk-sequential': 'disk sequential MB/s, measured beside',
  'sqlite.enqueue.1': 'SQLite',
  'sqlite.enqueue.64': 'SQLite',
  'sqlite.enqueue-batch': 'SQLite',
  'sqlite.drain.1': 'SQLite',
  'sqlite.drain.16': 'SQLite',
};

export interface Machine {
  readonly cpu: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly platform: string;
  readonly directory: string;
  /** 1-minute load averages when the run started and ended: other work on the machine skews every figure. */
  readonly loadAverage: { readonly start: number; readonly end: number };
}

export function describeMachine(directory: string, loadAverageAtStart: number): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: os.totalmem() / 1024 ** 3,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    directory,
    loadAverage: { start: loadAverageAtStart, end: os.loadavg()[0] ?? Number.NaN },
  };
}

/** Numbers as a reader wants them: grouped integers for large figures, 3 significant digits for small ones. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return '—';
  const magnitude = Math.abs(value);
  if (magnitude >= 100) return Math.round(value).toLocaleString('en-US');
  if (magnitude >= 1) return value.toFixed(magnitude >= 10 ? 1 : 2);
  if (magnitude === 0) return '0';
  return value.toPrecision(3);
}

function formatRatio(ratio: number): string {
  if (!Number.isFinite(ratio)) return '—';
  return `${ratio >= 10 ? ratio.toFixed(1) : ratio.toFixed(2)}×`;
}

function ratioOf(row: Row, byKey: ReadonlyMap<string, Row>): { value: number; text: string } | undefined {
  if (row.ratio === undefined) return undefined;
  const reference = byKey.get(row.ratio.to);
  const name = REFERENCE_NAMES[row.ratio.to] ?? row.ratio.to;
  if (reference === undefined || !Number.isFinite(reference.value)) return { value: Number.NaN, text: `— (${name} not measured)` };
  const value = (row.ratio.value ?? row.value) / reference.value;
  return { value, text: `${formatRatio(value)} ${name}` };
}

function targetText(target: Target | undefined, row: Row, ratio: number | undefined): string {
  if (target === undefined) return '';
  const bound = target.atLeast !== undefined ? `≥ ${formatBound(target.atLeast, target)}` : `≤ ${formatBound(target.atMost ?? Number.NaN, target)}`;
  const figure = target.of === 'ratio' ? ratio : row.value;
  if (figure === undefined || !Number.isFinite(figure)) return bound;
  const met = (target.atLeast === undefined || figure >= target.atLeast) && (target.atMost === undefined || figure <= target.atMost);
  return `${bound} ${met ? '✓' : '✗'}`;
}

function formatBound(value: number, target: Target): string {
  return target.of === 'ratio' ? formatRatio(value) : formatNumber(value);
}

function escapeCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

function resultText(row: Row): string {
  switch (row.status) {
    case 'skipped':
      return 'skipped';
    case 'failed':
      return '**failed**';
    default:
      return `${formatNumber(row.value)} ${row.unit}`;
  }
}

function renderSection(section: Section, rows: readonly Row[], byKey: ReadonlyMap<string, Row>, notes: readonly string[]): string {
  const lines = [`## ${SECTION_TITLES[section]}`, ''];
  for (const note of notes) lines.push(`- ${note}`);
  if (rows.length === 0) return lines.join('\n').trimEnd();
  if (notes.length > 0) lines.push('');
  lines.push('| Scenario | Result | Details | Ratio | Target |', '|---|---:|---|---|---|');
  for (const row of rows) {
    const ratio = ratioOf(row, byKey);
    const details = [row.detail, row.note].filter((part) => part !== undefined && part !== '').join('; ');
    const cells = [row.label, resultText(row), details, ratio?.text ?? '', targetText(row.target, row, ratio?.value)];
    lines.push(`| ${cells.map(escapeCell).join(' | ')} |`);
  }
  return lines.join('\n');
}

export interface ReportInput {
  readonly machine: Machine;
  readonly config: BenchConfig;
  readonly rows: readonly Row[];
  readonly notes: ReadonlyMap<Section, readonly string[]>;
  readonly wallSeconds: number;
  /** Git commit of the code measured, when known. */
  readonly revision: string | undefined;
}

export function renderReport(input: ReportInput): string {
  const { machine, config } = input;
  const byKey = new Map(input.rows.map((row) => [row.key, row]));
  const parts = [
    `# blero bench (${config.full ? 'full' : 'quick'} mode)`,
    '',
    `- Machine: ${machine.cores} × ${machine.cpu}, ${machine.memoryGiB.toFixed(1)} GiB RAM, ${machine.platform}`,
    `- Node ${machine.node}; blero at ${input.revision ?? 'an unknown revision'}; temp dir under ${machine.directory} (removed afterwards)`,
    `- Load average (1 min): ${machine.loadAverage.start.toFixed(2)} at start, ${machine.loadAverage.end.toFixed(2)} at the end; the bench shares the disk and cores with anything else running`,
    `- Each throughput scenario: ${config.warmupMs} ms warm-up, then ${config.scenarioMs} ms measured; MB = 10^6 bytes of payload`,
    `- Wall time: ${input.wallSeconds.toFixed(1)} s`,
  ];
  for (const section of SECTION_ORDER) {
    const rows = input.rows.filter((row) => row.section === section);
    const notes = input.notes.get(section) ?? [];
    if (rows.length === 0 && notes.length === 0) continue;
    parts.push('', renderSection(section, rows, byKey, notes));
  }
  return `${parts.join('\n')}\n`;
}
