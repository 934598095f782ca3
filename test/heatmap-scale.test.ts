/** Heatmap colour scales on the synthetic demo data (src/outputs/heatmaps.ts, colour.ts). */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { runPixelScale } from '../src/bank/run-where.js';
import { mergeSettings } from '../src/config.js';
import { generateSynthetic } from '../src/demo/synthetic.js';
import { decodeRgb } from '../src/image/decode.js';
import { BAR, colourIndex, jet, LABELS } from '../src/outputs/colour.js';
import { minMax } from '../src/outputs/heatmaps.js';
import { readMaps } from '../src/outputs/maps.js';
import { parseScoresCsv } from '../src/outputs/scores.js';
import type { Decisions } from '../src/threshold.js';
import { cliMain, tempDir } from './helpers/cli-env.js';

test('heatmaps on the synthetic demo data: the default category scale keeps good images cool, defects hot; a colour bar', async () => {
  const { dir, cleanup } = await tempDir('hmscale');
  try {
    const set = await generateSynthetic(join(dir, 'data')); // the demo's set
    const out = join(dir, 'out');
    assert.equal(mergeSettings({}, {}).norm, 'category');
    // the real backbone (resnet50, bundled) and scoring, at 128 px to keep the test short
    const args = ['run', '--data', set.root, '--out', out, '--image-size', '128', '--heatmaps', 'all', '-q', '--no-cache', '--no-report'];
    const r = spawnSync(process.execPath, [cliMain, ...args], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const cat = join(out, 'surface');
    const { maps, n, size, paths } = await readMaps(join(cat, 'maps.safetensors'));
    const plane = size * size;
    // the run's pixel threshold and scale (the masks' too), from its outputs: maps and the decision column
    const rows = parseScoresCsv(await readFile(join(cat, 'scores.csv'), 'utf8'));
    const imageScores = Float64Array.from(rows, (row) => row.score);
    const decisions = { decisions: rows.map((row) => row.decision) } as Decisions;
    const scale = runPixelScale({ maps, imageScores, decisions, size });
    assert.ok(scale.lo < scale.threshold && scale.threshold < scale.hi);
    const HOT = 192; // jet from 0.75 up: orange to red
    const hottest = (i: number, lo: number, hi: number): number => {
      let q = 0;
      for (const v of maps.subarray(i * plane, (i + 1) * plane)) q = Math.max(q, colourIndex(v, lo, hi));
      return q;
    };
    const good = paths.map((p, i) => [p, i] as const).filter(([p]) => p.includes('/good/'));
    const bad = paths.map((p, i) => [p, i] as const).filter(([p]) => !p.includes('/good/'));
    assert.ok(good.length > 0 && bad.length > 0 && good.length + bad.length === n);
    for (const [p, i] of good) assert.ok(hottest(i, scale.lo, scale.hi) < HOT, `${p}: a hot pixel on a good image`);
    for (const [p, i] of bad) assert.ok(hottest(i, scale.lo, scale.hi) >= HOT, `${p}: the defect does not reach the hot end`);
    // per-image min-max (the old default) puts a hot spot on every image, good ones included
    for (const [, i] of good) {
      const [lo, hi] = minMax(maps.subarray(i * plane, (i + 1) * plane));
      assert.equal(hottest(i, lo, hi), 255);
    }
    // the PNG: the image beside a colour bar (jet from blue at the bottom to red at the top)
    const png = await decodeRgb(join(cat, 'heatmaps', 'good', (await readdir(join(cat, 'heatmaps', 'good')))[0]!));
    assert.equal(png.height, size);
    assert.equal(png.width, size + 4 + BAR + LABELS);
    const px = (x: number, y: number): number[] => Array.from(png.data.subarray((y * png.width + x) * 3, (y * png.width + x) * 3 + 3));
    const barX = size + 4 + (BAR >> 1);
    assert.deepEqual(px(barX, 0), jet(1));
    assert.deepEqual(px(barX, size - 1), jet(0));
  } finally {
    await cleanup();
  }
});
