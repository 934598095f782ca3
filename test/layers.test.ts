/**
 * The layout's rules, checked on the sources: the method core imports no runtime, pipeline or CLI
 * module, and no folder of src/ imports (even types) from a folder that imports it back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');
const IMPORT = /(?:import|export)\s[^'";]*?from\s+['"](\.[^'"]+)['"]/g;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** A folder of src/, or the file's own name for files at the top (index.ts is the public barrel: left out). */
const unitOf = (file: string): string => {
  const parts = relative(SRC, file).split(sep);
  return parts.length > 1 ? parts[0]! : parts[0]!.replace(/\.ts$/, '');
};

/** unit -> units it imports from, with one example import each */
function unitGraph(): Map<string, Map<string, string>> {
  const g = new Map<string, Map<string, string>>();
  for (const file of sources(SRC)) {
    const from = unitOf(file);
    if (from === 'index') continue;
    for (const m of readFileSync(file, 'utf8').matchAll(IMPORT)) {
      const to = unitOf(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
      if (to === from) continue;
      if (!g.has(from)) g.set(from, new Map());
      g.get(from)!.set(to, `${relative(SRC, file)} imports ${m[1]}`);
    }
  }
  return g;
}

test('src/core imports nothing from compute, pipeline, cli, scoring or the I/O-heavy layers', () => {
  const core = unitGraph().get('core') ?? new Map<string, string>();
  for (const banned of ['compute', 'pipeline', 'cli', 'scoring', 'features', 'outputs', 'backbones', 'service', 'cluster']) {
    assert.ok(!core.has(banned), core.get(banned));
  }
});

test('no folder-level import cycle in src/', () => {
  const g = unitGraph();
  const reach = (from: string, to: string, seen = new Set<string>()): string[] | null => {
    for (const [next] of g.get(from) ?? []) {
      if (next === to) return [from, to];
      if (seen.has(next)) continue;
      seen.add(next);
      const path = reach(next, to, seen);
      if (path) return [from, ...path];
    }
    return null;
  };
  for (const [unit, deps] of g) {
    for (const [dep, example] of deps) {
      const back = reach(dep, unit);
      assert.equal(back, null, `${unit} -> ${dep} (${example}) and back: ${back?.join(' -> ')}`);
    }
  }
});
