/**
 * Repository root for tests: the first folder above the compiled test file that holds
 * package.json (compiled tests live in dist/test or .build/NAME/test).
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export function repoRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(d, 'package.json')) && existsSync(join(d, 'test'))) return d;
    const up = dirname(d);
    if (up === d) return resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
    d = up;
  }
}
