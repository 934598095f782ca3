/**
 * Issue 17: `musc run`'s accuracy defaults reach its outputs: the image score is the mean of the
 * top 2.5% of each map and RsCIN is off for a ResNet backbone; `--preset reference` gives the map
 * maximum and RsCIN with the dataset's windows.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
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

async function runWith(root: string, out: string, flags: Partial<Settings>) {
  const settings = mergeSettings({}, { heatmaps: 'none', ...flags });
  await runDataset({ data: root, out, settings, loadBackbone: fakeLoader(fakeBackbone(32, 4)), scorer });
  const m = await readMaps(join(out, 'surface', 'maps.safetensors'));
  const rows = parseScoresCsv(await readFile(join(out, 'surface', 'scores.csv'), 'utf8'));
  const run = JSON.parse(await readFile(join(out, 'surface', 'run.json'), 'utf8')) as { settings: Record<string, unknown> };
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
