/**
 * Per-stage LNAMD degrees in the engine (ScoringPlan.stageRList, issue 17's eighth round): the
 * passes and their weights, and scorePlan's patch scores = the mean over stages of each stage's
 * mean over its degrees, composed from the passes of the full plan; the repeated-anomaly filter
 * links at stage 0's smallest r. Without stageRList the engine is unchanged (bit for bit).
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { planPasses, zeroShotVariant, type ScoringPlan } from '../src/core/plan.js';
import { scorePlan } from '../src/core/score.js';
import { DEFAULT_REPEAT_FILTER } from '../src/core/repeats.js';
import type { StageFeatures } from '../src/core/types.js';
import { mulberry32 } from '../src/demo/synthetic.js';
import { kernelFor } from '../src/scoring/tasks.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSynthetic } from '../src/demo/synthetic.js';
import { runDataset } from '../src/pipeline/run-dataset.js';
import { ConfigError, mergeSettings, validateSettings } from '../src/config.js';
import { stageRListArg } from '../src/cli/args.js';
import { localScorer } from '../src/pipeline/local-scorer.js';
import type { Scorer } from '../src/pipeline/types.js';
import { tempDir } from './helpers/cli-env.js';
import { fakeBackbone, fakeLoader, fakeMetrics } from './helpers/cli-fakes.js';

after(shutdownCompute);

const bytes = (a: Float64Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** Two random stages [n, 4, 4, 8]; with `repeated`, images 0..3 share one defect vector at stage 0's patch (0, 0). */
function stagesOf(n: number, seed: number, repeated = false): StageFeatures[] {
  const rnd = mulberry32(seed);
  const stages = [0, 1].map(() => ({ n, h: 4, w: 4, c: 8, data: Float32Array.from({ length: n * 4 * 4 * 8 }, () => rnd() * 2 - 1) }));
  if (repeated) {
    const defect = Float32Array.from({ length: 8 }, () => 8 * (rnd() * 2 - 1));
    for (let i = 0; i < 4; i++) for (let c = 0; c < 8; c++) stages[0]!.data[i * 16 * 8 + c] = defect[c]! + 0.01 * rnd();
  }
  return stages;
}

test('planPasses: stage-major passes and weights; errors name the stage', () => {
  const all = planPasses({ rList: [1, 3, 5] }, 2);
  assert.deepEqual(
    all.map((p) => [p.l, p.ri]),
    [
      [0, 0],
      [0, 1],
      [0, 2],
      [1, 0],
      [1, 1],
      [1, 2],
    ],
  );
  assert.ok(all.every((p) => p.w === 1 / 6));
  const per = planPasses(
    {
      rList: [1, 3, 5, 7],
      stageRList: [
        [3, 1],
        [1, 5, 7],
      ],
    },
    2,
  );
  assert.deepEqual(
    per.map((p) => [p.l, p.ri, p.w]),
    [
      [0, 0, 1 / 4],
      [0, 1, 1 / 4],
      [1, 0, 1 / 6],
      [1, 2, 1 / 6],
      [1, 3, 1 / 6],
    ],
  );
  assert.throws(() => planPasses({ rList: [1, 3], stageRList: [[1]] }, 2), /for 1 stages, the features have 2/);
  assert.throws(() => planPasses({ rList: [1, 3], stageRList: [[1], [5]] }, 2), /stage 1: r = 5 is not in the plan's r list 1,3/);
  assert.throws(() => planPasses({ rList: [1, 3], stageRList: [[1], []] }, 2), /stage 1: its r list must be non-empty/);
  assert.throws(() => planPasses({ rList: [1, 3], stageRList: [[1, 1], [3]] }, 2), /stage 0: .* without repeats/);
});

test('scorePlan with per-stage degrees = each stage mean over its r, then the mean over stages', async () => {
  const n = 8;
  const stages = stagesOf(n, 3);
  const kernel = await kernelFor('cpu', 'exact');
  const full: ScoringPlan = { n, rList: [1, 3, 5], variants: [zeroShotVariant(n, [0, 0.3])] };
  const res = await scorePlan(stages, full, kernel, { keepPasses: true });
  const passes = res.variants[0]!.passes!;
  const sp = passes.length / (res.R * res.L);
  const pass = (l: number, ri: number, k: number): number => passes[(ri * res.L + l) * sp + k]!;
  const per = await scorePlan(
    stages,
    {
      ...full,
      stageRList: [
        [1, 3],
        [1, 5],
      ],
    },
    kernel,
  );
  const got = per.variants[0]!.patch;
  for (let k = 0; k < sp; k++) {
    const want = ((pass(0, 0, k) + pass(0, 1, k)) / 2 + (pass(1, 0, k) + pass(1, 2, k)) / 2) / 2;
    assert.ok(Math.abs(got[k]! - want) < 1e-12, `patch ${k}: ${got[k]} against ${want}`);
  }
  // every stage at the whole list = no stageRList, bit for bit
  const same = await scorePlan(
    stages,
    {
      ...full,
      stageRList: [
        [1, 3, 5],
        [1, 3, 5],
      ],
    },
    kernel,
  );
  assert.ok(bytes(same.variants[0]!.patch).equals(bytes(res.variants[0]!.patch)));
});

test('the repeated-anomaly filter links at stage 0 smallest r of its own list', async () => {
  const n = 20;
  const stages = stagesOf(n, 5, true);
  const kernel = await kernelFor('cpu', 'exact');
  const variants = [zeroShotVariant(n, [0, 0.3] as [number, number])];
  const plan = (rList: number[], stageRList?: number[][]): ScoringPlan => ({
    n,
    rList,
    ...(stageRList ? { stageRList } : {}),
    variants,
    repeatFilter: DEFAULT_REPEAT_FILTER,
  });
  // stage lists without r = 1 over an r list with it: the same as a plan of r = 3 alone
  const per = await scorePlan(stages, plan([1, 3], [[3], [3]]), kernel);
  const only3 = await scorePlan(stages, plan([3]), kernel);
  const only1 = await scorePlan(stages, plan([1]), kernel);
  assert.ok(per.filtered && only3.filtered && only1.filtered);
  assert.ok(bytes(per.variants[0]!.patch).equals(bytes(only3.variants[0]!.patch)));
  assert.ok(bytes(per.filtered.patch).equals(bytes(only3.filtered.patch)));
  assert.deepEqual(per.filtered.summary, only3.filtered.summary);
  // the planted defect: r = 1 links images 0..3 with each other, r = 3 otherwise (so the link r matters here)
  assert.deepEqual(only1.filtered.summary.leftOut.slice(0, 4), [
    [1, 2, 3],
    [0, 2, 3],
    [0, 1, 3],
    [0, 1, 2],
  ]);
  assert.notDeepEqual(only3.filtered.summary.leftOut, only1.filtered.summary.leftOut);
});

test('--stage-r-list and stage_r_list: parsed and checked; a run passes them to the scorer, records them, refuses a wrong stage count', async () => {
  assert.deepEqual(stageRListArg('1,3/1,5,7'), [
    [1, 3],
    [1, 5, 7],
  ]);
  assert.throws(() => stageRListArg('1,2/3'), /--stage-r-list \(stage 1\) must be odd integers/);
  assert.throws(() => stageRListArg('1,1/3'), /--stage-r-list \(stage 1\) repeats a degree: 1,1/);
  assert.deepEqual(validateSettings({ stage_r_list: [[1, 3], [5]] }, 'c.yaml').stage_r_list, [[1, 3], [5]]);
  assert.throws(() => validateSettings({ stage_r_list: [[1, 4]] }, 'c.yaml'), /c.yaml: 'stage_r_list' \(stage 1\) must be odd/);
  const { dir, cleanup } = await tempDir('stage-r');
  try {
    const set = await generateSynthetic(join(dir, 'data'), { size: 48, good: 5, defective: 3 });
    const seen: (number[][] | undefined)[] = [];
    const spy: Scorer = {
      ...localScorer,
      scorePatches: (stages, o) => {
        seen.push(o.stageRList);
        return localScorer.scorePatches(stages, o);
      },
    };
    const run = (out: string, stage_r_list: number[][]) =>
      runDataset({
        data: set.root,
        out: join(dir, out),
        settings: mergeSettings({}, { heatmaps: 'none', stage_r_list }),
        loadBackbone: fakeLoader(fakeBackbone(32, 4)), // one stage
        scorer: spy,
        metrics: fakeMetrics([]),
      });
    await run('o1', [[3, 1]]);
    assert.deepEqual(seen, [[[3, 1]]]);
    const meta = JSON.parse(await readFile(join(dir, 'o1', 'surface', 'run.json'), 'utf8'));
    assert.deepEqual(meta.settings.stage_r_list, [[3, 1]]);
    assert.deepEqual(meta.settings.r_list, [1, 3]); // their union
    assert.match(await readFile(join(dir, 'o1', 'metrics.md'), 'utf8'), /, r 3,1\n/);
    await assert.rejects(
      run('o2', [[1], [3]]),
      (e: Error) => e instanceof ConfigError && /2 lists, the backbone has 1 stages/.test(e.message),
    );
  } finally {
    await cleanup();
  }
});
