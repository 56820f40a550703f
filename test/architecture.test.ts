// The layering rules, checked on the source: the engine never imports from the queue, the
// queue reaches the engine only through its public modules, and no import cycle exists.
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = path.resolve(import.meta.dirname, '../src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** Relative imports of a file, resolved to absolute paths (type-only imports included). */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(/(?:import|export)\s[^'";]*?from\s+'(\.{1,2}\/[^']+)'/g)) {
    found.push(path.resolve(path.dirname(file), match[1]!));
  }
  return found;
}

const files = sourceFiles(SRC);
const graph = new Map(files.map((file) => [file, importsOf(file)]));

describe('architecture', () => {
  it('finds the sources it checks', () => {
    expect(files.some((f) => f.endsWith(path.join('engine', 'log.ts')))).toBe(true);
    expect(files.some((f) => f.endsWith(path.join('queue', 'queue.ts')))).toBe(true);
  });

  it('the engine never imports from the queue', () => {
    const offenders = files
      .filter((file) => file.includes(`${path.sep}engine${path.sep}`))
      .flatMap((file) => graph.get(file)!.filter((target) => target.includes(`${path.sep}queue${path.sep}`)).map((t) => `${file} -> ${t}`));
    expect(offenders).toEqual([]);
  });

  it('every relative import resolves to a source file', () => {
    const missing = [...graph].flatMap(([file, targets]) => targets.filter((t) => !graph.has(t)).map((t) => `${file} -> ${t}`));
    expect(missing).toEqual([]);
  });

  it('has no import cycles', () => {
    const state = new Map<string, 'visiting' | 'done'>();
    const cycles: string[] = [];
    const visit = (file: string, trail: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'visiting') {
        cycles.push([...trail.slice(trail.indexOf(file)), file].map((f) => path.relative(SRC, f)).join(' -> '));
        return;
      }
      state.set(file, 'visiting');
      for (const target of graph.get(file) ?? []) visit(target, [...trail, file]);
      state.set(file, 'done');
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });
});
