/** Test paths for the ViT backbone tests (repo root, shared data and golden folders). */
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** the nearest folder above the compiled test holding package.json (dist/test or .build/NAME/test) */
function findRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    d = resolve(d, '..');
    if (existsSync(resolve(d, 'package.json'))) return d;
  }
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
}

export const REPO_ROOT = findRoot();
export const SHARED = process.env.MUSC_SHARED ?? resolve(REPO_ROOT, '../shared');
export const GOLDEN = resolve(SHARED, 'golden');
export const DATA = resolve(SHARED, 'data');
