// The checked-in fixtures (fixtures/<case>/) against their table (fixtures/expected.json): each
// case is copied to a temp directory (the checked-in bytes are never opened by the Log), opened,
// and the exact outcome is compared with the table: replayed LSNs and payload ids, the cut tail,
// removed leftovers, or the CorruptionError's code, reason, file and offset; for repairable
// damage, what `repair: true` keeps and moves into quarantine files. A last test reruns the
// generator into a temp directory and requires byte-identical output, so the generator, the
// table and the checked-in bytes cannot drift apart.
import { describe, expect } from 'vitest';
import { copyFile, readdir, readFile, rm } from 'node:fs/promises';
import * as path from 'node:path';
import { Log } from '../../src/engine/log.ts';
import type { LogOptions } from '../../src/engine/log.ts';
import { RECOVERY_RULES } from '../../src/engine/recovery.ts';
import type { RecoveryCase } from '../../src/engine/recovery.ts';
import { CorruptionError } from '../../src/errors.ts';
import { EXPECTED_FILE_NAME, FIXTURES_DIR, generateFixtures, readExpectations } from '../../fixtures/generate.ts';
import type { ExpectedCorruption, ExpectedRepair, ExpectedReplay, FixtureExpectation } from '../../fixtures/generate.ts';
import { makeTempDir, test } from '../support/temp-dir.ts';

const expectations = await readExpectations(FIXTURES_DIR);
/** Files in fixtures/ that the generator does not write. */
const NOT_GENERATED = new Set(['README.md', 'generate.ts', '.gitattributes']);

async function copyFixture(fixture: FixtureExpectation, dir: string): Promise<void> {
  for (const name of fixture.files) await copyFile(path.join(FIXTURES_DIR, fixture.name, name), path.join(dir, name));
}

/** Every file of a directory (recursively), by relative path. */
async function snapshot(dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    files.set(path.relative(dir, full), await readFile(full));
  }
  return new Map([...files].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

async function replayOpen(dir: string, options: LogOptions = {}) {
  const lsns: number[] = [];
  const ids: number[] = [];
  const log = await Log.open(dir, {
    ...options,
    onRecord: (payload, lsn) => {
      lsns.push(lsn);
      ids.push(payload.readUInt32LE(0));
    },
  });
  const recovery = log.recovery;
  await log.close();
  return { lsns, ids, recovery };
}

async function failedOpen(dir: string, options: LogOptions = {}): Promise<CorruptionError> {
  const error = await Log.open(dir, options).then(
    async (log) => {
      await log.close();
      return new Error('open succeeded');
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CorruptionError);
  return error as CorruptionError;
}

function expectCorruption(error: CorruptionError, dir: string, expected: ExpectedCorruption): void {
  expect({ code: error.code, reason: error.reason, file: error.file, offset: error.offset }).toEqual({
    code: expected.code,
    reason: expected.reason,
    file: path.join(dir, expected.file),
    offset: expected.offset,
  });
}

/** A reopen after recovery finds a clean log: whatever was cut is cut on disk, and close wrote CLOSE. */
async function expectCleanReopen(dir: string, lsns: readonly number[], ids: readonly number[]): Promise<void> {
  const again = await replayOpen(dir);
  expect(again.lsns).toEqual(lsns);
  expect(again.ids).toEqual(ids);
  expect(again.recovery.cleanShutdown).toBe(true);
  expect(again.recovery.truncated).toBeUndefined();
  expect(again.recovery.quarantined).toBeUndefined();
  expect(again.recovery.removedFiles).toEqual([]);
}

async function checkReplay(fixture: FixtureExpectation, expected: ExpectedReplay, dir: string): Promise<void> {
  const before = await snapshot(dir);
  const { lsns, ids, recovery } = await replayOpen(dir);
  expect(lsns).toEqual(expected.lsns);
  expect(ids).toEqual(expected.ids);
  expect(recovery.records).toBe(expected.lsns.length);
  expect(recovery.cleanShutdown).toBe(expected.cleanShutdown);
  expect(recovery.quarantined).toBeUndefined();
  expect([...recovery.removedFiles].sort()).toEqual(expected.removedFiles);
  if (expected.truncated === null) {
    expect(recovery.truncated).toBeUndefined();
  } else {
    expect(RECOVERY_RULES[expected.truncated.case]).toBe('truncate-and-report');
    expect(recovery.truncated).toEqual({ ...expected.truncated, file: path.join(dir, expected.truncated.file) });
  }
  const after = await snapshot(dir);
  for (const name of expected.removedFiles) expect(after.has(name), `${name} removed`).toBe(false);
  for (const name of expected.untouchedFiles) expect(after.get(name), `${name} untouched`).toEqual(before.get(name));
  expect(fixture.rule === null).toBe(expected.truncated === null);
  await expectCleanReopen(dir, expected.lsns, expected.ids);
}

async function checkCorruption(fixture: FixtureExpectation, expected: ExpectedCorruption, dir: string): Promise<void> {
  expect(fixture.rule).toBe(expected.reason);
  expect(RECOVERY_RULES[expected.reason]).not.toBe('truncate-and-report');
  // repair is offered exactly where the rules allow it.
  expect(fixture.repair !== null).toBe(RECOVERY_RULES[expected.reason] === 'quarantine-if-repair');
  const before = await snapshot(dir);
  expectCorruption(await failedOpen(dir), dir, expected);
  // A refused open destroys no evidence: every file is as it was.
  expect(await snapshot(dir)).toEqual(before);
  if (RECOVERY_RULES[expected.reason] === 'fail') {
    expectCorruption(await failedOpen(dir, { repair: true }), dir, expected);
    expect(await snapshot(dir)).toEqual(before);
  }
}

async function checkRepair(expected: ExpectedRepair, dir: string): Promise<void> {
  const before = await snapshot(dir);
  const { lsns, ids, recovery } = await replayOpen(dir, { repair: true });
  expect(lsns).toEqual(expected.lsns);
  expect(ids).toEqual(expected.ids);
  const quarantined = recovery.quarantined;
  expect(quarantined).toBeDefined();
  expect({ file: quarantined!.file, offset: quarantined!.offset, case: quarantined!.case }).toEqual({
    file: path.join(dir, expected.quarantined.file),
    offset: expected.quarantined.offset,
    case: expected.quarantined.case,
  });
  // Nothing is deleted: each quarantine file holds the named segment's bytes from the cut on.
  expect(quarantined!.files).toHaveLength(expected.quarantined.files.length);
  const names = (await readdir(dir)).filter((name) => name.startsWith('quarantine-')).sort();
  expect(names).toEqual([...quarantined!.files].sort());
  for (const [i, want] of expected.quarantined.files.entries()) {
    const name = quarantined!.files[i]!;
    expect(name).toMatch(/^quarantine-\d+-/);
    expect(name.replace(/^quarantine-\d+-/, '')).toBe(want.segment);
    const original = before.get(want.segment);
    expect(original, `${want.segment} was in the fixture`).toBeDefined();
    expect(await readFile(path.join(dir, name))).toEqual(original!.subarray(want.fromOffset));
  }
  // The repaired log opens without repair and keeps exactly what repair kept.
  await expectCleanReopen(dir, expected.lsns, expected.ids);
}

function describeLsns(lsns: readonly number[]): string {
  if (lsns.length === 0) return 'no record';
  const first = lsns[0]!;
  const last = lsns[lsns.length - 1]!;
  return last - first + 1 === lsns.length ? `LSNs ${first}-${last}` : `LSNs ${lsns.join(', ')}`;
}

describe('recovery fixtures', () => {
  test('every RECOVERY_RULES case has a fixture', () => {
    const covered = new Set(expectations.map((f) => f.rule));
    for (const key of Object.keys(RECOVERY_RULES) as RecoveryCase[]) expect(covered.has(key), key).toBe(true);
  });

  for (const fixture of expectations) {
    test(`${fixture.name}: ${fixture.description}`, async ({ dir }) => {
      await copyFixture(fixture, dir);
      if (fixture.open.outcome === 'replay') await checkReplay(fixture, fixture.open, dir);
      else await checkCorruption(fixture, fixture.open, dir);
    });
  }

  for (const fixture of expectations) {
    const repair = fixture.repair;
    if (repair === null) continue;
    test(`${fixture.name}: repair keeps ${describeLsns(repair.lsns)} and quarantines the rest`, async ({ dir }) => {
      await copyFixture(fixture, dir);
      await checkRepair(repair, dir);
    });
  }

  test('the generator reproduces the checked-in fixtures byte for byte', async () => {
    const target = await makeTempDir('blero-fixtures-');
    try {
      const generated = await generateFixtures(target);
      expect(generated).toEqual(expectations);
      const checkedIn = await snapshot(FIXTURES_DIR);
      for (const name of NOT_GENERATED) checkedIn.delete(name);
      const fresh = await snapshot(target);
      expect([...checkedIn.keys()]).toEqual([...fresh.keys()]);
      for (const [name, bytes] of fresh) expect(checkedIn.get(name)?.equals(bytes), name).toBe(true);
      // And the table lists each fixture directory's files exactly (the test copies from the list).
      for (const fixture of expectations) {
        const inDir = [...fresh.keys()].filter((name) => path.dirname(name) === fixture.name).map((name) => path.basename(name));
        expect(inDir.sort()).toEqual(fixture.files);
      }
      expect(fresh.has(EXPECTED_FILE_NAME)).toBe(true);
    } finally {
      await rm(target, { recursive: true, force: true });
    }
  });
});
