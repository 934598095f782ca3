/**
 * Issue 17: `musc run`'s accuracy defaults reach its outputs: the image score is the mean of the
 * top 2.5% of each map and RsCIN is off for a ResNet backbone; `--preset reference` gives the map
 * maximum and RsCIN with the dataset's windows. The repeated-anomaly filter (on by default) changes
 * image scores only: the maps are those of the run without it, the scores never lower.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import sharp from 'sharp';
import { join } from 'node:path';
import { generateSynthetic } from '../src/demo/synthetic.js';
import { runDataset } from '../src/pipeline/run-dataset.js';
import { mergeSettings, type Settings } from '../src/config.js';
import * as core from '../src/scoring/musc.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { readMaps } from '../src/outputs/maps.js';
import { parseScoresCsv } from '../src/outputs/scores.js';
import type { Scorer } from '../src/pipeline/types.js';
import { tempDir } from './helpers/cli-env.js';
import { fakeBackbone, fakeLoader } from './helpers/cli-fakes.js';
import { localScorer } from '../src/pipeline/local-scorer.js';

after(shutdownCompute);

const scorer: Scorer = localScorer;

/** mean of the top round(0.025 * pixels) values of each map, by sorting */
function topMean(maps: Float32Array, n: number, frac: number): number[] {
  const per = maps.length / n;
  return Array.from({ length: n }, (_, i) => {
    const v = Array.from(maps.subarray(i * per, (i + 1) * per)).sort((a, b) => b - a);
    const k = Math.max(1, Math.round(per * frac));
    return v.slice(0, k).reduce((a, b) => a + b, 0) / k;
  });
}

/** Moves good images `stems` to test/stain with a 12 px green square painted at (12, 12), and their masks. */
async function repeatDefect(cat: string, stems: string[]): Promise<void> {
  await mkdir(join(cat, 'test', 'stain'), { recursive: true });
  await mkdir(join(cat, 'ground_truth', 'stain'), { recursive: true });
  const green = await sharp(Buffer.from(Array.from({ length: 12 * 12 }, () => [20, 220, 40]).flat()), {
    raw: { width: 12, height: 12, channels: 3 },
  })
    .png()
    .toBuffer();
  const m = Buffer.alloc(48 * 48);
  for (let y = 12; y < 24; y++) m.fill(255, y * 48 + 12, y * 48 + 24);
  const mask = await sharp(m, { raw: { width: 48, height: 48, channels: 1 } })
    .png()
    .toBuffer();
  for (const s of stems) {
    const src = join(cat, 'test', 'good', `${s}.png`);
    await sharp(src)
      .composite([{ input: green, left: 12, top: 12 }])
      .toFile(join(cat, 'test', 'stain', `${s}.png`));
    await rm(src);
    await writeFile(join(cat, 'ground_truth', 'stain', `${s}_mask.png`), mask);
  }
}

/** A run with the fake backbone (RGB cell means on a grid x grid patch grid). */
async function runWith(root: string, out: string, flags: Partial<Settings>, log?: (line: string) => void, grid = 4) {
  const settings = mergeSettings({}, { heatmaps: 'none', ...flags });
  await runDataset({ data: root, out, settings, loadBackbone: fakeLoader(fakeBackbone(32, grid)), scorer, ...(log ? { log } : {}) });
  const m = await readMaps(join(out, 'surface', 'maps.safetensors'));
  const rows = parseScoresCsv(await readFile(join(out, 'surface', 'scores.csv'), 'utf8'));
  const run = JSON.parse(await readFile(join(out, 'surface', 'run.json'), 'utf8')) as {
    settings: Record<string, unknown>;
    repeat_filter: ({ images: number; excluded_pairs: number; left_out: Record<string, string[]> } | null)[];
  };
  return { m, rows, run };
}

test('musc run defaults: image score = top 2.5% mean of the map, RsCIN off for resnet50; --preset reference: max and RsCIN on', async () => {
  const { dir, cleanup } = await tempDir('accuracy');
  try {
    const set = await generateSynthetic(join(dir, 'data'), { size: 48, good: 7, defective: 4 });
    const d = await runWith(set.root, join(dir, 'default'), {});
    const n = d.m.n;
    assert.equal(d.rows.length, n);
    const top = topMean(d.m.maps, n, 0.025);
    for (let i = 0; i < n; i++) {
      assert.ok(Math.abs(d.rows[i]!.score - top[i]!) < 1e-6, `image ${i}: score ${d.rows[i]!.score} vs top mean ${top[i]}`);
      assert.equal(d.rows[i]!.score_rscin, d.rows[i]!.score); // RsCIN off (auto, ResNet backbone name)
    }
    assert.equal(d.run.settings.image_score, 'top:0.025');
    assert.deepEqual(d.run.settings.k_list, [0]);

    const r = await runWith(set.root, join(dir, 'reference'), { preset: 'reference' });
    const max = core.imageScoresFromMaps(r.m.maps, n);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(r.rows[i]!.score - max[i]!) < 1e-6, `image ${i}: ${r.rows[i]!.score} vs max ${max[i]}`);
    assert.ok(
      r.rows.some((row) => Math.abs(row.score_rscin - row.score) > 1e-9),
      'RsCIN re-scored the images',
    );
    assert.deepEqual(r.run.settings.k_list, [1, 2, 3]);
    // same features and patch scores: the maps of both runs are identical
    assert.deepEqual(Array.from(r.m.maps), Array.from(d.m.maps));
  } finally {
    await cleanup();
  }
});

test("musc run: the repeated-anomaly filter (default on) raises image scores of images sharing a defect; maps unchanged; off = the maps' scores", async () => {
  const { dir, cleanup } = await tempDir('repeat-filter');
  try {
    // 24 images; 4 of them share one defect: the same green square at the same place, 2 x 2 patches
    // of the 8 x 8 grid (the links come from r = 1: on a 4 x 4 grid of 3-channel features one patch
    // of 16 is too few for the burnout test's statistics)
    const set = await generateSynthetic(join(dir, 'data'), { size: 48, good: 20, defective: 4 });
    await repeatDefect(join(set.root, set.category), ['000', '001', '002', '003']);
    const lines: string[] = [];
    const on = await runWith(set.root, join(dir, 'on'), {}, (l) => lines.push(l), 8);
    const off = await runWith(set.root, join(dir, 'off'), { repeat_filter: 'off' }, undefined, 8);
    assert.equal(on.run.settings.repeat_filter, 'on');
    assert.equal(off.run.settings.repeat_filter, 'off');
    assert.deepEqual(Array.from(on.m.maps), Array.from(off.m.maps), 'the filter changed the maps');
    const n = on.m.n;
    const top = topMean(off.m.maps, n, 0.025);
    for (let i = 0; i < n; i++) assert.ok(Math.abs(off.rows[i]!.score - top[i]!) < 1e-6, `off, image ${i}: not the map's score`);
    for (let i = 0; i < n; i++) assert.ok(on.rows[i]!.score >= off.rows[i]!.score - 1e-9, `image ${i}: lower with the filter`);
    const line = lines.find((l) => l.includes('repeated-anomaly filter'));
    assert.ok(line, `no filter line in the log:\n${lines.join('\n')}`);
    const [, images, pairs] = /filter: (\d+) of \d+ images .*\((\d+) pairs\)/.exec(line)!;
    const raised = on.rows.filter((r, i) => r.score > off.rows[i]!.score + 1e-9).length;
    assert.ok(Number(pairs) > 0 && raised > 0, `${line}; ${raised} images raised`);
    assert.ok(raised <= Number(images), `${raised} images raised, ${images} had images left out`);
    // run.json records what the filter left out, per subset (the log line's numbers); off: null
    const rf = on.run.repeat_filter[0]!;
    assert.deepEqual({ images: rf.images, excluded_pairs: rf.excluded_pairs }, { images: Number(images), excluded_pairs: Number(pairs) });
    assert.deepEqual(off.run.repeat_filter, [null]);
    // ... and which images: left_out names every image with images left out, by its scores.csv path
    const paths = new Set(on.rows.map((r) => r.path));
    assert.equal(Object.keys(rf.left_out).length, rf.images);
    assert.equal(Object.values(rf.left_out).flat().length, rf.excluded_pairs);
    for (const [p, out] of Object.entries(rf.left_out)) for (const q of [p, ...out]) assert.ok(paths.has(q), `left_out names ${q}`);
    const stain = on.rows.flatMap((r, i) => (r.defect === 'stain' ? [i] : []));
    assert.equal(stain.length, 4);
    // each image with the repeated defect was scored without at least one other image that has it
    const stainPaths = new Set(stain.map((i) => on.rows[i]!.path));
    for (const i of stain) {
      const p = on.rows[i]!.path;
      assert.ok(
        (rf.left_out[p] ?? []).some((q) => q !== p && stainPaths.has(q)),
        `${p}: left out ${JSON.stringify(rf.left_out[p])}, none with the same defect`,
      );
    }
    for (const i of stain) assert.ok(on.rows[i]!.score > off.rows[i]!.score * 1.01, `${on.rows[i]!.path}: the repeated defect not raised`);
    const ref = await runWith(set.root, join(dir, 'reference'), { preset: 'reference' });
    assert.equal(ref.run.settings.repeat_filter, 'off');
  } finally {
    await cleanup();
  }
});
