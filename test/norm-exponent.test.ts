/**
 * Issue 17, twelfth round: LNAMD's norm exponent B (core/lnamd.ts AggregateOptions.normExponent;
 * `--norm-exponent`). Each patch keeps (|z| / rho)^(1 - B) of its energy relative to its image; MSM
 * distances of such rows are Euclidean, computed through the pair kernel's largest dot product on
 * augmented rows (core/msm.ts floatBlock). Banks: format 4 (test/bank.test.ts has the rest of
 * the bank contract); the cluster's block jobs: the same bits as one process.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runBlockJob } from '../src/cluster/block.js';
import { collectScores, putPlan, reduceJobs, rowBlocks, runReduceJob } from '../src/cluster/reduce.js';
import { planBlockJobs } from '../src/cluster/scorer.js';
import { DirStore } from '../src/cluster/store.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { ConfigError, mergeSettings } from '../src/config.js';
import { FUSED_NORM_EXPONENT, resolveNormExponent } from '../src/core/defaults.js';
import { aggregateStage, checkNormExponent, layerNormImages, lnamdTarget } from '../src/core/lnamd.js';
import { allPairs, nearestDistanceTable, tableRows } from '../src/core/msm.js';
import { projectionBasis, projectRows, projectUnit } from '../src/core/project.js';
import { type ScoringPlan, zeroShotVariant } from '../src/core/plan.js';
import { scorePlan } from '../src/core/score.js';
import type { StageFeatures } from '../src/core/types.js';
import { mulberry32 } from '../src/demo/synthetic.js';
import { kernelFor } from '../src/scoring/tasks.js';
import { spawnSync } from 'node:child_process';
import { cliMain, tempDir } from './helpers/cli-env.js';

after(shutdownCompute);

/** Random stage features [n, h, w, c] with patch energies that differ within each image. */
function stage(n: number, h: number, w: number, c: number, seed: number): StageFeatures {
  const rnd = mulberry32(seed);
  const data = new Float32Array(n * h * w * c);
  for (let t = 0; t < n * h * w; t++) {
    const energy = 0.2 + 2 * rnd();
    for (let k = 0; k < c; k++) data[t * c + k] = (rnd() * 2 - 1) * energy;
  }
  return { n, h, w, c, data };
}

/** Brute force: the Euclidean distance from row t of Z [N, p, c] to its nearest row in image j. */
function nearest(z: Float32Array, p: number, c: number, t: number, j: number): number {
  let best = Infinity;
  for (let s = 0; s < p; s++) {
    let d2 = 0;
    for (let k = 0; k < c; k++) d2 += (z[t * c + k]! - z[(j * p + s) * c + k]!) ** 2;
    best = Math.min(best, d2);
  }
  return Math.sqrt(best);
}

const rowNorm = (z: Float32Array, t: number, c: number): number => Math.hypot(...z.subarray(t * c, (t + 1) * c));

test('norm exponent 1 gives the unit rows of before, bit for bit; B keeps (|z| / rho)^(1 - B) of each patch', () => {
  const st = stage(3, 4, 4, 6, 1);
  const normed = layerNormImages(st);
  const base = lnamdTarget([st]);
  const unit = aggregateStage(st, normed, 3, base);
  assert.deepEqual(lnamdTarget([st], undefined, undefined, 1), base, 'B = 1: the same target object (and cluster keys)');
  assert.ok(Buffer.from(aggregateStage(st, normed, 3, { ...base, normExponent: 1 }).buffer).equals(Buffer.from(unit.buffer)));
  const raw = aggregateStage(st, normed, 3, { ...base, skipL2: true });
  const half = aggregateStage(st, normed, 3, lnamdTarget([st], undefined, undefined, 0.5));
  const P = 16,
    c = 6;
  for (let i = 0; i < 3; i++) {
    let s2 = 0;
    for (let p = 0; p < P; p++) s2 += rowNorm(raw, i * P + p, c) ** 2;
    const rho = Math.sqrt(s2 / P);
    for (let p = 0; p < P; p++) {
      const t = i * P + p;
      const want = Math.sqrt(rowNorm(raw, t, c) / rho); // |u| = (|z| / rho)^(1 - 0.5)
      assert.ok(Math.abs(rowNorm(half, t, c) - want) < 1e-5, `image ${i} patch ${p}: norm ${rowNorm(half, t, c)}, want ${want}`);
      for (let k = 0; k < c; k++) assert.ok(Math.abs(half[t * c + k]! / want - unit[t * c + k]!) < 1e-5, 'the direction is the unit row');
    }
  }
  assert.throws(() => lnamdTarget([st], undefined, undefined, 1.5), /norm exponent must be in \[0, 1\]/);
});

test('Euclidean tables through the pair kernel = brute-force nearest distances of rows that are not unit', async () => {
  const n = 5,
    p = 7,
    c = 9;
  const rnd = mulberry32(7);
  const z = Float32Array.from({ length: n * p * c }, () => (rnd() * 2 - 1) * (0.3 + rnd()));
  const t = await nearestDistanceTable(z, n, p, c, await kernelFor('cpu', 'fast'), { euclidean: true, blockImages: 2, colImages: 2 });
  let worst = 0;
  for (let i = 0; i < n; i++)
    for (let q = 0; q < p; q++)
      for (let j = 0; j < n; j++) {
        if (j !== i) worst = Math.max(worst, Math.abs(t[(i * p + q) * n + j]! - nearest(z, p, c, i * p + q, j)));
      }
  assert.ok(worst < 1e-4, `largest difference ${worst}`);
  // the unit form would be wrong here: the test can fail
  const unitForm = await nearestDistanceTable(z, n, p, c, await kernelFor('cpu', 'fast'), { need: allPairs(n) });
  assert.ok(
    unitForm.some((v, k) => Math.abs(v - t[k]!) > 0.01),
    'the 2 - 2 a.b form differs on rows that are not unit',
  );
});

test('what needs unit rows refuses another norm exponent: exact, int8 (projection takes it)', async () => {
  assert.throws(() => checkNormExponent(0.5, 'exact'), /needs the 'fast' MSM precision, not 'exact'/);
  assert.throws(() => checkNormExponent(0.5, 'int8'), /not 'int8'/);
  checkNormExponent(0.5, 'fast');
  checkNormExponent(1, 'int8');
  const st = [stage(4, 3, 3, 4, 2)];
  const plan: ScoringPlan = { n: 4, rList: [1], variants: [zeroShotVariant(4, [0, 0.3])] };
  await assert.rejects(scorePlan(st, plan, await kernelFor('cpu', 'int8'), { normExponent: 0.5 }), /not 'int8'/);
  assert.throws(
    () => mergeSettings({}, { norm_exponent: 0.5, msm_precision: 'exact' }),
    (e: unknown) => e instanceof ConfigError && /norm_exponent/.test((e as Error).message),
  );
  assert.equal(mergeSettings({}, { norm_exponent: 0.5, project: 64 }).project, 64);
  assert.equal(mergeSettings({}, { norm_exponent: 0.5 }).norm_exponent, 0.5);
});

test('the default norm exponent: 0.5 for a backbone that fuses sizes with fast MSM (projected or not), else 1; an explicit one wins', () => {
  const fused = { fuseSizes: [320] },
    one = { fuseSizes: [] };
  assert.equal(resolveNormExponent(fused, undefined, 'fast'), FUSED_NORM_EXPONENT);
  assert.equal(FUSED_NORM_EXPONENT, 0.5);
  assert.equal(resolveNormExponent(one, undefined, 'fast'), 1);
  assert.equal(resolveNormExponent({}, undefined, 'fast'), 1);
  assert.equal(resolveNormExponent(fused, undefined, 'int8'), 1);
  assert.equal(resolveNormExponent(fused, undefined, 'exact'), 1);
  assert.equal(resolveNormExponent(one, 0.25, 'fast'), 0.25);
  assert.equal(resolveNormExponent(fused, 1, 'fast'), 1);
  assert.equal(mergeSettings({}, { preset: 'reference' }).norm_exponent, 1, 'the reference preset keeps unit vectors');
});

test('the engine with B = 0.5 = the brute-force MSM of the B = 0.5 rows (and differs from B = 1)', async () => {
  const n = 6;
  const st = [stage(n, 4, 4, 8, 3)];
  const plan: ScoringPlan = { n, rList: [1, 3], variants: [zeroShotVariant(n, [0, 0.5])] };
  const kernel = await kernelFor('cpu', 'fast');
  const got = (await scorePlan(st, plan, kernel, { normExponent: 0.5 })).variants[0]!.patch;
  const normed = layerNormImages(st[0]!);
  const P = 16,
    C = 8;
  const want = new Float64Array(n * P);
  for (const r of [1, 3]) {
    const z = aggregateStage(st[0]!, normed, r, lnamdTarget(st, undefined, undefined, 0.5));
    for (let i = 0; i < n; i++)
      for (let q = 0; q < P; q++) {
        const d = [];
        for (let j = 0; j < n; j++) {
          if (j !== i) d.push(nearest(z, P, C, i * P + q, j));
        }
        d.sort((a, b) => a - b);
        const kHi = Math.floor((n - 1) * 0.5); // the interval [0, 0.5) of 5 others: the 2 nearest
        want[i * P + q]! += d.slice(0, kHi).reduce((a, v) => a + v, 0) / kHi / 2;
      }
  }
  let worst = 0;
  for (let k = 0; k < want.length; k++) worst = Math.max(worst, Math.abs(got[k]! - want[k]!));
  assert.ok(worst < 1e-4, `largest difference ${worst}`);
  const unit = (await scorePlan(st, plan, kernel)).variants[0]!.patch;
  assert.ok(
    unit.some((v, k) => Math.abs(v - got[k]!) > 1e-3),
    'B = 1 scores differ',
  );
});

test('projection with B = 0.5: rows keep their norm; K = C (a rotation) gives the unprojected scores; K < C differs from the unit projection', async () => {
  const n = 6,
    C = 8;
  const st = [stage(n, 4, 4, C, 21)];
  const t = lnamdTarget(st, undefined, undefined, 0.5);
  const z = aggregateStage(st[0]!, layerNormImages(st[0]!), 3, t); // [n, 16, C], norms (|z| / rho)^0.5
  const basis = await projectionBasis(z, C, 3);
  const y = await projectRows(z, C, basis, undefined, true); // [n, 16, 3]
  const norms = (a: Float32Array, c: number) =>
    Array.from({ length: a.length / c }, (_, i) => Math.hypot(...a.subarray(i * c, (i + 1) * c)));
  const nz = norms(z, C),
    ny = norms(y, 3);
  assert.ok(Math.max(...nz) - Math.min(...nz) > 0.1, 'the rows have energies that differ');
  assert.ok(
    nz.every((v, i) => Math.abs(v - ny[i]!) <= 1e-5 * v),
    'every projected row keeps its norm',
  );
  assert.ok(
    norms(await projectUnit(z, C, basis), 3).every((v) => Math.abs(v - 1) <= 1e-5),
    'projectUnit: unit rows',
  );
  const plan: ScoringPlan = { n, rList: [1, 3], variants: [zeroShotVariant(n, [0, 0.3])] };
  const kernel = await kernelFor('cpu', 'fast');
  const energy = (await scorePlan(st, plan, kernel, { normExponent: 0.5 })).variants[0]!.patch;
  const rotated = (await scorePlan(st, plan, kernel, { normExponent: 0.5, projectChannels: C })).variants[0]!.patch;
  const worst = Math.max(...energy.map((v, k) => Math.abs(v - rotated[k]!)));
  assert.ok(worst <= 1e-4, `K = C: largest difference ${worst}`);
  const half = (await scorePlan(st, plan, kernel, { normExponent: 0.5, projectChannels: 4 })).variants[0]!.patch;
  const unitHalf = (await scorePlan(st, plan, kernel, { projectChannels: 4 })).variants[0]!.patch;
  assert.ok(
    half.some((v, k) => Math.abs(v - energy[k]!) > 1e-3),
    'K = 4 of 8 changes the scores',
  );
  assert.ok(
    half.some((v, k) => Math.abs(v - unitHalf[k]!) > 1e-3),
    'the energy is kept: not the unit projection',
  );
});

test('B = 0.5 on the cluster: block jobs carry it in their target; the merge = the one-process engine, bit for bit', async () => {
  const { dir, cleanup } = await tempDir('cluster-norm');
  try {
    const n = 8;
    const stages = [stage(n, 4, 4, 6, 11), stage(n, 2, 2, 6, 12)];
    const plan: ScoringPlan = { n, rList: [1, 3], variants: [zeroShotVariant(n, [0, 0.3])] };
    const one = await scorePlan(stages, plan, await kernelFor('cpu', 'fast'), { normExponent: 0.5 });
    const store = new DirStore(join(dir, 'store'));
    const p = await planBlockJobs(
      stages,
      plan,
      { precision: 'fast', normExponent: 0.5 },
      { blockImages: 3, colImages: 5 },
      store,
      'norm-test',
    );
    assert.equal(p.target.normExponent, 0.5);
    for (const job of p.jobs.flat(2)) await runBlockJob(store, job);
    const rbs = rowBlocks(tableRows(plan.n, p.need), p.rowImages);
    const jobs = reduceJobs(await putPlan(store, plan), p.tiling, p.jobs, rbs);
    for (const j of jobs.flat(2)) await runReduceJob(store, j);
    const [merged] = await collectScores(store, plan, p.P, jobs, rbs);
    const a = one.variants[0]!.patch;
    assert.ok(Buffer.from(merged!.buffer).equals(Buffer.from(a.buffer)), 'the cluster differs from scorePlan');
  } finally {
    await cleanup();
  }
});

test('musc run: --norm-exponent outside [0, 1] or with int8 is a usage error (exit 2) before any image is read', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [cliMain, 'run', ...args], { encoding: 'utf8', timeout: 60_000 });
  const base = ['--data', '/nonexistent-data', '--out', '/tmp/musc-norm-none'];
  const range = run([...base, '--norm-exponent', '2']);
  assert.equal(range.status, 2, range.stderr);
  assert.match(range.stderr, /--norm-exponent must be a number from 0 to 1, got '2'/);
  const int8 = run([...base, '--norm-exponent', '0.5', '--msm-precision', 'int8']);
  assert.equal(int8.status, 2, int8.stderr);
  assert.match(int8.stderr, /'norm_exponent' \(--norm-exponent\) 0\.5 needs the 'fast' MSM precision, not 'int8'/);
});
