/**
 * One scoring engine: an ablation row is the same computation as a `musc run` with the same
 * settings (default precision, same features), and scoring works again after a cancelled call.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { generateSynthetic } from '../src/demo/synthetic.js';
import { runDataset } from '../src/pipeline/run-dataset.js';
import { mergeSettings } from '../src/config.js';
import { openDataset } from '../src/datasets/index.js';
import { loadMask } from '../src/datasets/masks.js';
import { decodeRgb } from '../src/image/decode.js';
import { toFloat16 } from '../src/io/float16.js';
import { runAblation } from '../src/ablate/run.js';
import { studyRows } from '../src/ablate/studies.js';
import { ComputeWorker, shutdownCompute } from '../src/compute/worker.js';
import { TASKS_MODULE } from '../src/scoring/tasks.js';
import type { StageFeatures } from '../src/core/types.js';
import type { MetricsInput, Scorer } from '../src/pipeline/types.js';
import { tempDir } from './helpers/cli-env.js';
import { fakeBackbone, fakeLoader, fakeMetrics } from './helpers/cli-fakes.js';
import { maxAbsDiff as maxDiff } from './helpers/core-golden.js';
import { localScorer } from '../src/pipeline/local-scorer.js';

after(shutdownCompute);

const scorer: Scorer = localScorer;

/** one stage [N, G, G, 3] (float16 storage, as musc run and musc ablate keep it) and tokens [N, 3] of the fake backbone */
async function features(paths: string[], size: number, grid: number) {
  const bb = fakeBackbone(size, grid);
  const per = grid * grid * 3;
  const stage: StageFeatures<Uint16Array> = { n: paths.length, h: grid, w: grid, c: 3, data: new Uint16Array(paths.length * per) };
  const tokens = { n: paths.length, d: 3, data: new Float32Array(paths.length * 3) };
  for (const [i, p] of paths.entries()) {
    const f = await bb.extract(await bb.preprocess(await decodeRgb(p)), 1);
    stage.data.set(toFloat16(f.stages[0]!.data), i * per);
    tokens.data.set(f.imageTokens.data, i * 3);
  }
  return { stages: [stage], tokens };
}

test('an ablation row equals musc run with the same settings (zero-shot and --divide 2, default precision, 1e-6)', async () => {
  const { dir, cleanup } = await tempDir('engine');
  try {
    const set = await generateSynthetic(join(dir, 'data'), { size: 48, good: 7, defective: 4 });
    const kList = [1, 2];
    const runOf = async (divide: number) => {
      const rec: MetricsInput[] = [];
      const settings = mergeSettings({}, { heatmaps: 'none', k_list: kList, divide_num: divide, seed: 7 });
      await runDataset({
        data: set.root,
        out: join(dir, `o${divide}`),
        settings,
        loadBackbone: fakeLoader(fakeBackbone(32, 4)),
        scorer,
        metrics: fakeMetrics(rec),
      });
      return rec[0]!;
    };
    const ds = await openDataset(set.root);
    const cat = await ds.load('surface');
    const feats = await features(
      cat.items.map((it) => it.path),
      32,
      4,
    );
    const rows = studyRows(['r', 'divide'], kList).filter((r) => r.rList.length === 3 && r.divide <= 2);
    const masks = new Uint8Array(cat.items.length * 32 * 32);
    for (const [k, it] of cat.items.entries()) masks.set(await loadMask(it.masks, 32, 'reference', ds.kind), k * 32 * 32);
    const rec: MetricsInput[] = [];
    const res = await runAblation({
      items: cat.items,
      stages: feats.stages,
      tokens: feats.tokens,
      external: 0,
      masks,
      size: 32,
      rows,
      metrics: fakeMetrics(rec),
      seed: 7,
    });
    assert.equal(res.rows.length, 3); // r={1,3,5}, 1 subset, 2 subsets
    for (const [k, divide] of [
      [0, 1],
      [1, 1],
      [2, 2],
    ] as const) {
      const run = await runOf(divide);
      const row = rec[k]!;
      const dScores = maxDiff(row.imageScores, run.imageScores);
      assert.ok(dScores < 1e-6, `row ${rows[k]!.setting}: image scores differ by ${dScores}`);
      assert.ok(maxDiff(row.maps!, run.maps!) < 1e-6, `row ${rows[k]!.setting}: maps differ`);
    }
  } finally {
    await cleanup();
  }
});

test('a second scoring call after a cancelled one works (cancel is not sticky)', async () => {
  const w = new ComputeWorker();
  try {
    const n = 40,
      h = 14,
      c = 256;
    const stage: StageFeatures = { n, h, w: h, c, data: new Float32Array(n * h * h * c).map((_, k) => Math.sin(k * 0.61)) };
    const p = w.call(TASKS_MODULE, 'scoreStages', [[stage], { rList: [1, 3, 5], maxRows: 196 }]);
    setTimeout(() => w.cancel(), 300);
    await assert.rejects(p, (e: Error) => e.name === 'InterruptedError');
    const small: StageFeatures = { n: 5, h: 3, w: 3, c: 4, data: new Float32Array(5 * 9 * 4).map((_, k) => Math.cos(k * 0.37)) };
    const again = await w.call<{ patch: Float64Array }>(TASKS_MODULE, 'scoreStages', [[small], { rList: [1] }]);
    assert.equal(again.patch.length, 5 * 9);
    assert.ok(again.patch.every((v) => Number.isFinite(v) && v >= 0));
  } finally {
    await w.terminate();
  }
});
