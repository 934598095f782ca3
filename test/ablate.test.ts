/**
 * musc ablate: one set of distance tables reduced per row must give what separate scoreStages
 * runs give (pools, r subsets, intervals, references, MuSc+); min/max/mean by brute force; rows.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { scoreStages, scorePlanTask } from '../src/scoring/tasks.js';
import { composePasses, composeR } from '../src/core/score.js';
import { upsampleAlignCorners } from '../src/core/maps.js';
import { planPasses, reductionBounds, type PoolVariant } from '../src/core/plan.js';
import { studyRows, parseStudies, R_COMBOS, MSM_VARIANTS, SHOT_COUNTS } from '../src/ablate/studies.js';
import { runAblation, shotSplit, ablationMarkdown } from '../src/ablate/run.js';
import { evenlySpaced } from '../src/cli/ablate.js';
import { shutdownCompute } from '../src/compute/worker.js';
import type { StageFeatures } from '../src/core/types.js';
import type { DatasetItem } from '../src/datasets/types.js';
import { fakeMetrics } from './helpers/cli-fakes.js';
import { maxAbsDiff as maxDiff } from './helpers/core-golden.js';
import { pickImages } from './helpers/msm.js';
import { cliMain } from './helpers/cli-env.js';
import { lcgSigned } from './helpers/lcg.js';

after(shutdownCompute);

const rng = lcgSigned;
/** two stages of n images on a 4x4 grid */
function stages(n: number, seed: number): StageFeatures[] {
  const r = rng(seed);
  return [
    { n, h: 4, w: 4, c: 6, data: new Float32Array(n * 16 * 6).map(r) },
    { n, h: 2, w: 2, c: 8, data: new Float32Array(n * 4 * 8).map(r) },
  ];
}
/** the images `idx` of every stage, in that order */
const pick = (st: StageFeatures[], idx: number[]): StageFeatures[] => st.map((s) => pickImages(s, idx));
const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

test('one table set, many variants: equal to separate scoreStages runs (pools, r subsets, references, MuSc+)', async () => {
  const N = 9;
  const st = stages(N, 3);
  const all = range(0, N);
  const test7 = range(0, 7); // images 7, 8 act as references
  const variants: PoolVariant[] = [
    { scored: all, pools: [all], poolOf: all.map(() => 0), reduce: { kind: 'interval', interval: [0, 0.3] } },
    {
      scored: all,
      pools: [
        [0, 2, 4, 6, 8],
        [1, 3, 5, 7],
      ],
      poolOf: all.map((i) => i % 2),
      reduce: { kind: 'interval', interval: [0, 0.5] },
    },
    { scored: test7, pools: [all], poolOf: test7.map(() => 0), reduce: { kind: 'interval', interval: [0, 0.3] } },
    { scored: test7, pools: [[7, 8]], poolOf: test7.map(() => 0), reduce: { kind: 'min' } },
  ];
  const res = await scorePlanTask(st, { n: N, rList: [1, 3, 5], variants }, { keepPasses: true });
  assert.deepEqual([res.h, res.w, res.L, res.R], [4, 4, 2, 3]);
  const P = 16;
  // whole pool, every r subset
  for (const combo of [[1], [3, 5], [1, 3, 5]]) {
    const direct = await scoreStages(st, { rList: combo, interval: [0, 0.3] });
    const composed = composeR(
      res,
      0,
      combo.map((r) => [1, 3, 5].indexOf(r)),
    );
    assert.ok(maxDiff(composed, direct.patch) < 1e-6, `r=${combo}: ${maxDiff(composed, direct.patch)}`);
  }
  // two subsets scored separately (like --divide)
  for (const sub of [
    [0, 2, 4, 6, 8],
    [1, 3, 5, 7],
  ]) {
    const direct = await scoreStages(pick(st, sub), { rList: [1, 3, 5], interval: [0, 0.5] });
    const composed = composeR(res, 1, [0, 1, 2]);
    const mine = new Float64Array(sub.length * P);
    sub.forEach((i, k) => mine.set(composed.subarray(i * P, (i + 1) * P), k * P));
    assert.ok(maxDiff(mine, direct.patch) < 1e-6);
  }
  // references in the pool; MuSc+
  const withRefs = await scoreStages(st, { rList: [1, 3, 5], references: 2 });
  assert.ok(maxDiff(composeR(res, 2, [0, 1, 2]), withRefs.patch) < 1e-6);
  const plus = await scoreStages(st, { rList: [1, 3, 5], references: 2, mode: 'musc-plus' });
  assert.ok(maxDiff(composeR(res, 3, [0, 1, 2]), plus.patch) < 1e-6);
  // per-stage degrees from the same passes (the r study's row of a backbone's per-stage default)
  const stageRList = [[1, 3], [5]];
  const direct = await scoreStages(st, { rList: [1, 3, 5], stageRList, interval: [0, 0.3] });
  const composed = composePasses(res, 0, planPasses({ rList: [1, 3, 5], stageRList }, 2));
  assert.ok(maxDiff(composed, direct.patch) < 1e-6, `stage lists: ${maxDiff(composed, direct.patch)}`);
  assert.ok(maxDiff(composed, composeR(res, 0, [0, 1, 2])) > 1e-3, 'stage lists = every stage at 1,3,5');
});

test('min / max / mean reductions: brute force over the per-pass scores', async () => {
  const N = 6;
  const st = [stages(N, 8)[0]!];
  const all = range(0, N);
  const mk = (kind: 'min' | 'max' | 'mean'): PoolVariant => ({ scored: all, pools: [all], poolOf: all.map(() => 0), reduce: { kind } });
  const res = await scorePlanTask(st, { n: N, rList: [1], variants: [mk('min'), mk('max'), mk('mean')] });
  // per-image nearest distances from scoreStages with absolute-count intervals:
  // rank k alone = interval [k, k+1] (counts >= 1), so min = [0,1]; the mean over all = average of ranks
  const byRank: Float64Array[] = [];
  for (let k = 0; k < N - 1; k++) byRank.push((await scoreStages(st, { rList: [1], interval: k === 0 ? [0, 1] : [k, k + 1] })).patch);
  for (let q = 0; q < N * 16; q++) {
    const vals = byRank.map((a) => a[q]!);
    assert.ok(Math.abs(res.variants[0]!.patch[q]! - vals[0]!) < 1e-6);
    assert.ok(Math.abs(res.variants[1]!.patch[q]! - vals[N - 2]!) < 1e-6);
    assert.ok(Math.abs(res.variants[2]!.patch[q]! - vals.reduce((a, b) => a + b, 0) / (N - 1)) < 1e-6);
    for (let k = 1; k < vals.length; k++) assert.ok(vals[k]! >= vals[k - 1]! - 1e-7, 'ranks ascend');
  }
  assert.deepEqual(reductionBounds(10, { kind: 'max' }), [9, 10]);
  assert.deepEqual(reductionBounds(10, { kind: 'interval', interval: [0.1, 0.3] }), [1, 3]);
});

const item = (i: number, label: 0 | 1): DatasetItem => ({
  path: `/d/${label ? 'bad' : 'good'}/${i}.png`,
  rel: `${label ? 'bad' : 'good'}/${i}.png`,
  defect: label ? 'bad' : 'good',
  label,
  masks: null,
});

test('rows of the studies; --study parsing; held-out references; evenly spaced --quick subset', () => {
  const rows = studyRows(parseStudies('all'), [1, 2, 3]);
  const count = (s: string) => rows.filter((r) => r.study === s).length;
  assert.equal(count('r'), R_COMBOS.length);
  assert.equal(count('msm'), MSM_VARIANTS.length);
  assert.deepEqual(
    rows.filter((r) => r.study === 'rscin').map((r) => r.setting),
    ['off', 'k={2}', 'k={3}', 'k={1,2,3}'],
  );
  // a baseline with RsCIN off (--rscin auto with a ResNet) still measures the dataset's windows
  const offBase = studyRows(['rscin'], [0], SHOT_COUNTS, [1, 2, 3]);
  assert.deepEqual(
    offBase.map((r) => [r.setting, r.kList]),
    [
      ['off', []],
      ['k={2}', [2]],
      ['k={3}', [3]],
      ['k={1,2,3}', [1, 2, 3]],
    ],
  );
  assert.deepEqual(
    studyRows(['rscin'], [0]).map((r) => r.setting),
    ['off'],
  );
  assert.equal(count('divide'), 3);
  assert.deepEqual(
    rows.filter((r) => r.study === 'shots').map((r) => r.setting),
    ['0-shot MuSc', '1-shot MuSc', '1-shot MuSc+', '2-shot MuSc', '2-shot MuSc+', '4-shot MuSc', '4-shot MuSc+'],
  );
  assert.deepEqual(parseStudies('r,msm,r'), ['r', 'msm']);
  assert.throws(() => parseStudies('foo'), /unknown study 'foo'/);
  const items = [item(0, 1), item(1, 0), item(2, 1), item(3, 0), item(4, 0)];
  assert.deepEqual(shotSplit(items, 0, 2), { refs: [3, 4], test: [0, 1, 2] });
  assert.deepEqual(shotSplit(items, 2, 2), { refs: [5, 6], test: [0, 1, 2, 3, 4] });
  assert.deepEqual(evenlySpaced(range(0, 10), 4), [0, 2, 5, 7]);
});

test('runAblation: every row scored, shots rows on the held-out test set, table printed', async () => {
  const N = 10;
  const items = range(0, N).map((i) => item(i, i < 4 ? 1 : 0));
  const st = stages(N, 21);
  const tokens = { n: N, d: 3, data: new Float32Array(N * 3).map(rng(4)) };
  const rows = studyRows(['r', 'shots'], [1, 2, 3], [0, 2], [1, 2, 3], [[[1, 3], [5]]]);
  const rec: import('../src/pipeline/types.js').MetricsInput[] = [];
  const res = await runAblation({ items, stages: st, tokens, external: 0, masks: null, size: 8, rows, metrics: fakeMetrics(rec) });
  assert.equal(res.rows.length, R_COMBOS.length + 1 + 3);
  assert.ok(res.rows.some((r) => r.setting === 'r={1,5}')); // musc run's default with fused sizes at other stages
  const perStage = res.rows.find((r) => r.setting === 'r={1,3 / 5}')!; // a backbone's per-stage default
  assert.deepEqual(
    [perStage.rList, perStage.stageRList],
    [
      [1, 3, 5],
      [[1, 3], [5]],
    ],
  );
  assert.deepEqual(res.references, [8, 9]);
  for (const r of res.rows) {
    if (r.study === 'shots') assert.equal(r.nTest, 8);
    else assert.equal(r.nTest, 10);
    assert.equal(typeof r.metrics.image_auroc, 'number');
  }
  assert.deepEqual(
    res.rows.filter((r) => r.study === 'shots').map((r) => r.nRef),
    [0, 2, 2],
  );
  // the r={1,3,5} row of the r study = the full pipeline: image scores by the default rule, then RsCIN
  assert.equal(rec.length, R_COMBOS.length + 1 + 3);
  const md = ablationMarkdown('t', res.rows);
  assert.match(md, /\| shots \| 2-shot MuSc\+ \| 8 \+ 2 ref \|/);
});

test('runAblation with a norm exponent: its r = 1,3,5 row = scoreStages with the same exponent, not the unit one', async () => {
  const N = 8;
  const items = range(0, N).map((i) => item(i, i < 3 ? 1 : 0));
  const st = stages(N, 31);
  const tokens = { n: N, d: 3, data: new Float32Array(N * 3).map(rng(5)) };
  const rows = studyRows(['r'], [0], [0], [0], []).filter((r) => r.setting === 'r={1,3,5}');
  const rec: import('../src/pipeline/types.js').MetricsInput[] = [];
  const masks = new Uint8Array(N * 64).map((_, k) => (k < 3 * 64 && k % 64 < 8 ? 1 : 0)); // a row of defect pixels in images 0-2
  await runAblation({ items, stages: st, tokens, external: 0, masks, size: 8, rows, metrics: fakeMetrics(rec), normExponent: 0.5 });
  const one = await scoreStages(st, { rList: [1, 3, 5], normExponent: 0.5 });
  const unit = await scoreStages(st, { rList: [1, 3, 5] });
  const want = upsampleAlignCorners(one.patch, N, 4, 4, 8, 8); // the row's maps [N, 8, 8]
  assert.ok(maxDiff(rec[0]!.maps!, want) < 1e-5, `maps differ by ${maxDiff(rec[0]!.maps!, want)}`);
  assert.ok(maxDiff(one.patch, unit.patch) > 1e-3, 'the exponent changed nothing');
});

test('musc ablate CLI: usage errors exit 2, plain folders and several categories exit 3', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [cliMain, 'ablate', ...args], { encoding: 'utf8', timeout: 60_000 });
  let r = run(['--data', '/tmp', '--study', 'bogus']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /unknown study 'bogus'/);
  r = run(['--data', '/nonexistent-musc-data']);
  assert.equal(r.status, 3);
  assert.match(r.stderr, /data folder not found/);
  r = run(['--help']);
  assert.equal(r.status, 0);
  for (const f of ['--study', '--quick', '--reference-dir', '--shots', '--out']) assert.ok(r.stdout.includes(f), f);
});
