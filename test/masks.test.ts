/** Issue 16: ground-truth masks that are not 0/255 (blurred, scaled to 127, coloured) and empty masks. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadMask, MaskNotes, isNonBinary } from '../src/datasets/masks.js';
import { tempDir, writeMask } from './helpers/cli-env.js';
import { pngOf } from './helpers/corpus.js';
import { musc } from './helpers/robust-cli.js';

/** A w x h mask PNG with `channels` channels: the rectangle [8, 24) x [8, 24) holds `value` per channel. */
async function maskPng(file: string, value: number[], w = 32, h = 32, blur = false): Promise<void> {
  const c = value.length;
  const data = new Uint8Array(w * h * c);
  for (let y = 8; y < 24; y++) for (let x = 8; x < 24; x++) for (let k = 0; k < c; k++) data[(y * w + x) * c + k] = value[k]!;
  let img = sharp(data, { raw: { width: w, height: h, channels: c as 1 | 3 | 4 } });
  if (blur) img = img.blur(2);
  await img.png().toFile(file);
}

const count = (m: Uint8Array): number => m.reduce((a, v) => a + v, 0);

test('non-binary masks use the any-nonzero rule, with a note; 0/255 masks keep the reference rule; empty masks are noted', async () => {
  const { dir, cleanup } = await tempDir('masks');
  try {
    const cases: [string, number[], boolean][] = [
      ['scaled127.png', [127], false],
      ['one.png', [1], false],
      ['blurred.png', [255], true],
      ['red-rgba.png', [200, 30, 30, 255], false],
      ['binary.png', [255], false],
    ];
    const got: Record<string, number> = {};
    const notes = new MaskNotes();
    for (const [name, v, blur] of cases) {
      const f = join(dir, name);
      await maskPng(f, v, 32, 32, blur);
      got[name] = count(await loadMask([f], 32, 'reference', 'mvtec', undefined, notes));
    }
    assert.equal(got['binary.png'], 256, 'a 0/255 mask: the reference rule');
    for (const n of ['scaled127.png', 'one.png', 'red-rgba.png']) assert.equal(got[n], 256, `${n}: the defect region, not empty`);
    assert.ok(got['blurred.png']! >= 256, 'blurred: at least the region');
    assert.deepEqual(notes.nonBinary.map((f) => f.slice(dir.length + 1)).sort(), [
      'blurred.png',
      'one.png',
      'red-rgba.png',
      'scaled127.png',
    ]);
    assert.deepEqual(notes.empty, []);
    // an all-zero mask of a defective image
    const empty = join(dir, 'empty.png');
    await maskPng(empty, [0]);
    assert.equal(count(await loadMask([empty], 32, 'reference', 'mvtec', undefined, notes)), 0);
    assert.deepEqual(notes.empty, [empty]);
    const w = notes.warnings();
    assert.equal(w.length, 2);
    assert.match(w[0]!, /4 ground-truth masks are not 0\/255 .*any-nonzero rule/);
    assert.match(w[1]!, /1 ground-truth mask is empty after binarisation/);
    assert.equal(isNonBinary(Uint8Array.from([0, 255, 0])), false);
    assert.equal(isNonBinary(Uint8Array.from([0, 254])), true);
  } finally {
    await cleanup();
  }
});

test('a run with masks scaled to 127: pixel metrics computed, the note in run.json', async () => {
  const { dir, cleanup } = await tempDir('masks-run');
  try {
    const data = join(dir, 'data');
    const cat = join(data, 'part');
    mkdirSync(join(cat, 'test', 'good'), { recursive: true });
    mkdirSync(join(cat, 'test', 'dent'), { recursive: true });
    mkdirSync(join(cat, 'ground_truth', 'dent'), { recursive: true });
    for (let i = 0; i < 6; i++) writeFileSync(join(cat, 'test', 'good', `${i}.png`), await pngOf(32, 32, 300 + i));
    for (let i = 0; i < 3; i++) {
      writeFileSync(join(cat, 'test', 'dent', `${i}.png`), await pngOf(32, 32, 400 + i, true));
      if (i < 2) await maskPng(join(cat, 'ground_truth', 'dent', `${i}_mask.png`), [127]);
      else await writeMask(join(cat, 'ground_truth', 'dent', `${i}_mask.png`), 32, 32, [0, 0, 0, 0]); // empty
    }
    const out = join(dir, 'out');
    const r = musc([
      'run',
      '--data',
      data,
      '--out',
      out,
      '--dataset',
      'mvtec',
      '--image-size',
      '64',
      '--r-list',
      '1',
      '--heatmaps',
      'none',
      '--no-report',
      '--quiet',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /2 ground-truth masks are not 0\/255/);
    assert.match(r.stderr, /1 ground-truth mask is empty after binarisation/);
    const run = JSON.parse(readFileSync(join(out, 'part', 'run.json'), 'utf8')) as { warnings: string[] };
    assert.ok(run.warnings.some((w) => /not 0\/255/.test(w)));
    const metrics = JSON.parse(readFileSync(join(out, 'part', 'metrics.json'), 'utf8')) as { pixel_auroc: number | null };
    assert.equal(typeof metrics.pixel_auroc, 'number', 'pixel metrics computed from the 127 masks');
  } finally {
    await cleanup();
  }
});
