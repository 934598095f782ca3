/** Paths for the cli branch's tests: repo root, shared data, temp folders. */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';

/** compiled tests live two levels below the repo root (dist/test or .build/NAME/test) */
export const buildRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** the nearest folder above the build with a package.json */
export const repoRoot = ((): string => {
  let d = dirname(buildRoot);
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return d;
})();
export const sharedDir = process.env.MUSC_SHARED ?? resolve(repoRoot, '../shared');
export const cliMain = join(buildRoot, 'src', 'cli', 'main.js');

export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `musc-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Writes a small RGB PNG filled with a value (plus a gradient so images differ). */
export async function writePng(file: string, w: number, h: number, value: number, channels: 1 | 3 = 3): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dirname(file), { recursive: true });
  const data = new Uint8Array(w * h * channels);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let c = 0; c < channels; c++) data[(y * w + x) * channels + c] = Math.min(255, value + ((x + y) % 7));
  await sharp(data, { raw: { width: w, height: h, channels } })
    .png()
    .toFile(file);
}

/** Writes a 0/255 mask PNG with a filled rectangle [x0, x1) x [y0, y1). */
export async function writeMask(file: string, w: number, h: number, rect: [number, number, number, number]): Promise<void> {
  const { mkdir } = await import('node:fs/promises');
  await mkdir(dirname(file), { recursive: true });
  const data = new Uint8Array(w * h);
  const [x0, y0, x1, y1] = rect;
  for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) data[y * w + x] = 255;
  await sharp(data, { raw: { width: w, height: h, channels: 1 } })
    .png()
    .toFile(file);
}
