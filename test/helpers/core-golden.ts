/** Access to ../shared/golden for the core's parity tests. */
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { SafetensorsFile } from '../../src/io/safetensors.js';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const sharedDir = process.env.MUSC_SHARED ?? resolve(repoRoot, '../shared');
export const goldenDir = resolve(sharedDir, 'golden');
export const hasGolden = existsSync(resolve(goldenDir, 'README.md'));

const open = new Map<string, SafetensorsFile>();
export function golden(file: string): SafetensorsFile {
  let f = open.get(file);
  if (!f) {
    f = SafetensorsFile.open(resolve(goldenDir, file));
    open.set(file, f);
  }
  return f;
}

/** Max |a - b| over two arrays of equal length. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
