/** Opened golden files and array comparison for the parity tests. */
import { existsSync } from 'node:fs';
import { SafetensorsFile } from '../../src/io/safetensors.js';
import { goldenPath } from './paths.js';

export const hasGolden = existsSync(goldenPath('README.md'));

const open = new Map<string, SafetensorsFile>();
export function golden(file: string): SafetensorsFile {
  let f = open.get(file);
  if (!f) {
    f = SafetensorsFile.open(goldenPath(file));
    open.set(file, f);
  }
  return f;
}

/** Max |a - b| over two arrays of equal length (NaN counts as infinitely far). */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}
