/**
 * Issue 17: the score grid (`musc run --score-grid G`, EngineOptions.targetGrid): LNAMD aggregates
 * each stage on its own grid, resizes it to G x G, and MSM scores those patches, so a larger input's
 * features are scored at the cost of the G x G grid.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { zeroShotVariant, type ScoringPlan } from '../src/core/plan.js';
import { reduceTable, scorePlan } from '../src/core/score.js';
import { aggregateStage, layerNormImages, lnamdTarget } from '../src/core/lnamd.js';
import { nearestDistanceTable } from '../src/core/msm.js';
import type { StageFeatures } from '../src/core/types.js';
import { generateSynthetic, mulberry32 } from '../src/demo/synthetic.js';
import { kernelFor } from '../src/scoring/tasks.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { mergeSettings, SETTINGS_SCHEMA } from '../src/config.js';
import { runDataset } from '../src/pipeline/run-dataset.js';
import { localScorer } from '../src/pipeline/local-scorer.js';
import { readMaps } from '../src/outputs/maps.js';
import type { Scorer } from '../src/pipeline/types.js';
import type { PatchScores, ScoreOptions } from '../src/scoring/musc.js';
import { tempDir } from './helpers/cli-env.js';
import { fakeBackbone, fakeLoader } from './helpers/cli-fakes.js';

after(shutdownCompute);

/** n random images: stage 0 [6 x 6 x 8], stage 1 [3 x 3 x 16]. */
function stagesOf(n: number, seed: number): StageFeatures[] {
  const rnd = mulberry32(seed);
  return [
    [6, 8],
    [3, 16],
  ].map(([s, c]) => ({ n, h: s!, w: s!, c: c!, data: Float32Array.from({ length: n * s! * s! * c! }, () => rnd() * 2 - 1) }));
}

test('engine: targetGrid G = every stage aggregated on its own grid, resized to G x G, then MSM; the default is the first stage grid', async () => {
  const n = 7;
  const stages = stagesOf(n, 3);
  const kernel = await kernelFor('cpu', 'fast');
  const plan: ScoringPlan = { n, rList: [1, 3], variants: [zeroShotVariant(n, [0, 0.3])] };
  const G = 4;
  const got = await scorePlan(stages, plan, kernel, { targetGrid: G });
  assert.deepEqual([got.h, got.w], [G, G]);
  // by hand: the same steps with the target grid G x G
  const target = lnamdTarget(stages, undefined, G);
  const P = G * G;
  const want = new Float64Array(n * P);
  for (const st of stages)
    for (const r of plan.rList) {
      const z = aggregateStage(st, layerNormImages(st), r, target);
      const s = reduceTable(await nearestDistanceTable(z, n, P, target.channels, kernel), n, P, plan.variants)[0]!;
      for (let k = 0; k < s.length; k++) want[k] += s[k]! / (stages.length * plan.rList.length);
    }
  let worst = 0;
  for (let k = 0; k < want.length; k++) worst = Math.max(worst, Math.abs(got.variants[0]!.patch[k]! - want[k]!));
  assert.ok(worst < 1e-9, `max difference ${worst}`);
  const plain = await scorePlan(stages, plan, kernel);
  assert.deepEqual([plain.h, plain.w], [6, 6]);
  assert.throws(() => lnamdTarget(stages, undefined, 0), /score grid must be a positive integer/);
});

test('musc run --score-grid: the scorer gets the grid, patch scores are G x G, maps at the input size; settings record it', async () => {
  const { dir, cleanup } = await tempDir('score-grid');
  try {
    const set = await generateSynthetic(join(dir, 'data'), { size: 48, good: 8, defective: 3 });
    const seen: { o: ScoreOptions; ps: PatchScores }[] = [];
    const spy: Scorer = {
      ...localScorer,
      scorePatches: async (stages, o) => {
        const ps = await localScorer.scorePatches(stages, o);
        seen.push({ o, ps });
        return ps;
      },
    };
    const run = async (out: string, flags: Record<string, unknown>) => {
      const settings = mergeSettings({}, { heatmaps: 'none', ...flags });
      await runDataset({ data: set.root, out, settings, loadBackbone: fakeLoader(fakeBackbone(32, 8)), scorer: spy });
      const json = JSON.parse(await readFile(join(out, 'surface', 'run.json'), 'utf8')) as { settings: Record<string, unknown> };
      return { maps: await readMaps(join(out, 'surface', 'maps.safetensors')), settings: json.settings };
    };
    const plain = await run(join(dir, 'plain'), {});
    assert.deepEqual([seen[0]!.ps.h, seen[0]!.ps.w], [8, 8]);
    assert.equal(seen[0]!.o.targetGrid, undefined);
    const grid = await run(join(dir, 'grid'), { score_grid: 4 });
    assert.equal(seen[1]!.o.targetGrid, 4);
    assert.deepEqual([seen[1]!.ps.h, seen[1]!.ps.w], [4, 4]);
    assert.equal(grid.maps.size, 32, 'maps stay at the input size');
    assert.equal(grid.settings.score_grid, 4);
    assert.ok(
      grid.maps.maps.some((v, k) => Math.abs(v - plain.maps.maps[k]!) > 1e-6),
      'the 4 x 4 scores gave the same maps as the 8 x 8 ones',
    );
    assert.deepEqual((SETTINGS_SCHEMA.properties as Record<string, unknown>).score_grid, { type: 'integer', minimum: 1, maximum: 512 });
  } finally {
    await cleanup();
  }
});
