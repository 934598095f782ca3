/**
 * Locations of the shared golden data. The repository root is found by walking up from this
 * compiled file (dist/test/helpers/ or .build/<name>/test/helpers/) to the first directory that
 * holds package.json; the shared dir is `<root>/../shared`, or `$MUSC_SHARED` when set.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

export function sharedDir(): string {
  const env = process.env.MUSC_SHARED;
  return env !== undefined && env !== '' ? resolve(env) : resolve(repoRoot(), '../shared');
}

export function goldenPath(name: string): string {
  return join(sharedDir(), 'golden', name);
}

export function dataDir(): string {
  return join(sharedDir(), 'data');
}

/** ../shared/golden and ../shared/data */
export const GOLDEN = join(sharedDir(), 'golden');
export const DATA = dataDir();
