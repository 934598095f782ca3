/**
 * Issue 17's faster setting: features projected on K directions of the batch before MSM
 * (`musc run --project K`, core/project.ts, EngineOptions.projectChannels); banks: test/bank.test.ts,
 * the cluster: test/cluster-merge.test.ts and test/cluster.test.ts.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { BasisAccumulator, jsMatMul, projectBank, projectionBasis, projectUnit } from '../src/core/project.js';
import { stagePasses, zeroShotVariant, type ScoringPlan } from '../src/core/plan.js';
import { projectKey, scorePlan } from '../src/core/score.js';
import type { MatMul } from '../src/core/kernel.js';
import { aggregateStage, layerNormImages, lnamdTarget } from '../src/core/lnamd.js';
import { DEFAULT_REPEAT_FILTER } from '../src/core/repeats.js';
import type { StageFeatures } from '../src/core/types.js';
import { generateSynthetic, mulberry32 } from '../src/demo/synthetic.js';
import { kernelFor } from '../src/scoring/tasks.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { ConfigError, mergeSettings, validateSettings } from '../src/config.js';
import { runDataset } from '../src/pipeline/run-dataset.js';
import { localScorer } from '../src/pipeline/local-scorer.js';
import { cliMain, tempDir } from './helpers/cli-env.js';
import { fakeBackbone, fakeLoader, spyScorer } from './helpers/cli-fakes.js';

after(shutdownCompute);

/** K orthonormal vectors [K, C] (Gram-Schmidt of random ones). */
function orthonormal(K: number, C: number, seed: number): Float64Array[] {
  const rnd = mulberry32(seed);
  const out: Float64Array[] = [];
  while (out.length < K) {
    const v = Float64Array.from({ length: C }, () => rnd() * 2 - 1);
    for (const u of out) {
      const a = v.reduce((s, x, c) => s + x * u[c]!, 0);
      for (let c = 0; c < C; c++) v[c]! -= a * u[c]!;
    }
    const n = Math.hypot(...v);
    out.push(v.map((x) => x / n));
  }
  return out;
}

/** rows unit vectors [rows, C]: normalise(sum_k coef_k dirs_k), coefficient 0 in [1, 2) (a common direction), the others from `spread`. */
function unitRows(rows: number, dirs: Float64Array[], spread: number[], seed: number): Float32Array {
  const rnd = mulberry32(seed);
  const C = dirs[0]!.length;
  const z = new Float32Array(rows * C);
  for (let i = 0; i < rows; i++) {
    const v = new Float64Array(C);
    dirs.forEach((d, k) => {
      const a = k === 0 ? 1 + rnd() : (rnd() * 2 - 1) * spread[k]!;
      for (let c = 0; c < C; c++) v[c]! += a * d[c]!;
    });
    const n = Math.hypot(...v);
    for (let c = 0; c < C; c++) z[i * C + c] = v[c]! / n;
  }
  return z;
}

const dist = (z: Float32Array, C: number, a: number, b: number) => {
  let s = 0;
  for (let c = 0; c < C; c++) s += (z[a * C + c]! - z[b * C + c]!) ** 2;
  return Math.sqrt(s);
};

test('projectionBasis: orthonormal rows, the first the mean direction; bad K refused', async () => {
  const C = 12,
    K = 5;
  const z = unitRows(200, orthonormal(C, C, 1), Array(C).fill(0.5), 2);
  const B = await projectionBasis(z, C, K);
  for (let a = 0; a < K; a++)
    for (let b = 0; b < K; b++) {
      let d = 0;
      for (let c = 0; c < C; c++) d += B[a * C + c]! * B[b * C + c]!;
      assert.ok(Math.abs(d - (a === b ? 1 : 0)) < 1e-6, `basis rows ${a}, ${b}: dot ${d}`);
    }
  const mean = new Float64Array(C);
  for (let i = 0; i < 200; i++) for (let c = 0; c < C; c++) mean[c]! += z[i * C + c]!;
  const norm = Math.hypot(...mean);
  for (let c = 0; c < C; c++) assert.ok(Math.abs(B[c]! - mean[c]! / norm) < 1e-6, 'row 0 is the mean direction');
  await assert.rejects(projectionBasis(z, C, 1), /K must be an integer 2\.\.12/);
  await assert.rejects(projectionBasis(z, C, 13), /K must be an integer 2\.\.12/);
  await assert.rejects(projectionBasis(z.subarray(0, 7), C, 3), /not rows of 12 channels/);
});

test('projection: features in a K-dimensional subspace keep every distance; the largest variance directions are the ones kept', async () => {
  const C = 16,
    K = 4,
    rows = 150;
  // data spanning 4 directions: projected to 4, every pairwise distance is the same
  const dirs = orthonormal(K, C, 3);
  const z = unitRows(rows, dirs, [0, 0.8, 0.5, 0.3], 4);
  const y = await projectBank(z, C, K);
  let worst = 0;
  for (let a = 0; a < rows; a += 7)
    for (let b = 0; b < rows; b += 5) worst = Math.max(worst, Math.abs(dist(z, C, a, b) - dist(y, K, a, b)));
  assert.ok(worst < 1e-5, `distance changed by ${worst}`);
  // two strong directions among weak ones: K = 3 keeps the mean and those two
  const all = orthonormal(C, C, 5);
  const spread = all.map((_, k) => (k === 1 || k === 2 ? 1 : 0.02));
  const w = unitRows(400, all, spread, 6);
  const B = await projectionBasis(w, C, 3);
  for (const k of [1, 2]) {
    let captured = 0;
    for (let r = 0; r < 3; r++) {
      let d = 0;
      for (let c = 0; c < C; c++) d += B[r * C + c]! * all[k]![c]!;
      captured += d * d;
    }
    assert.ok(captured > 0.99, `direction ${k}: ${captured} of it in the basis`);
  }
  // projected rows are unit
  const u = await projectUnit(w, C, B);
  for (let i = 0; i < 400; i++) assert.ok(Math.abs(Math.hypot(...u.subarray(i * 3, i * 3 + 3)) - 1) < 1e-5);
});

test('a warm start (the basis of nearly the same rows) finds the same directions in fewer steps; a start of another shape is refused', async () => {
  const C = 12;
  const all = orthonormal(C, C, 21);
  const spread = all.map((_, k) => (k >= 1 && k <= 3 ? 1 - 0.2 * k : 0.01));
  const z = unitRows(600, all, spread, 22);
  const cold = await projectionBasis(z, C, 4);
  // start from the basis of other rows of a rotated product: the strong directions mixed with weak ones
  const other = await projectionBasis(unitRows(600, orthonormal(C, C, 23), spread, 24), C, 4);
  const warm = await new BasisAccumulator(600, C).add(z).basis(4, jsMatMul, other);
  // the same subspace: each row of one basis lies in the span of the other's
  for (let r = 0; r < 4; r++) {
    let inSpan = 0;
    for (let q = 0; q < 4; q++) {
      let d = 0;
      for (let c = 0; c < C; c++) d += warm[r * C + c]! * cold[q * C + c]!;
      inSpan += d * d;
    }
    assert.ok(inSpan > 0.999, `warm direction ${r}: ${inSpan} of it in the cold basis`);
  }
  // where the directions are not well apart (random rows), where it starts shows: the start is used
  const rnd = mulberry32(25);
  const flat = Float32Array.from({ length: 200 * C }, () => rnd() - 0.5);
  const fromStart = await new BasisAccumulator(200, C).add(flat).basis(4, jsMatMul, other);
  const fromSeed = await projectionBasis(flat, C, 4);
  assert.ok(
    fromStart.some((v, k) => Math.abs(v - fromSeed[k]!) > 1e-3),
    'the start changed nothing',
  );
  await assert.rejects(
    new BasisAccumulator(600, C).add(z).basis(4, jsMatMul, other.subarray(C)),
    /a start basis of 36 values, not \[4, 12\]/,
  );
});

test("the kernel's product (ONNX Runtime Gemm) = jsMatMul, with and without transA; the projection through either agrees", async () => {
  const kernel = await kernelFor('cpu', 'fast');
  const rnd = mulberry32(11);
  const [m, k, n] = [37, 19, 23];
  const a = Float32Array.from({ length: m * k }, () => rnd() - 0.5);
  const b = Float32Array.from({ length: k * n }, () => rnd() - 0.5);
  const at = Float32Array.from({ length: k * m }, (_, x) => a[(x % m) * k + Math.floor(x / m)]!); // a^T [k, m]
  const want = await jsMatMul(a, b, m, k, n, false);
  for (const got of [
    await kernel.matMul(a, b, m, k, n, false),
    await kernel.matMul(at, b, m, k, n, true),
    await jsMatMul(at, b, m, k, n, true),
  ]) {
    assert.equal(got.length, m * n);
    assert.ok(got.every((v, x) => Math.abs(v - want[x]!) < 1e-5));
  }
  const C = 24;
  const z = unitRows(300, orthonormal(C, C, 12), Array(C).fill(0.4), 13);
  const viaOrt = await projectBank(z, C, 6, kernel.matMul);
  const viaJs = await projectBank(z, C, 6);
  // the same subspace (its own sign per direction): every distance agrees
  let worst = 0;
  for (let x = 0; x < 300; x += 11)
    for (let y = 0; y < 300; y += 13) worst = Math.max(worst, Math.abs(dist(viaOrt, 6, x, y) - dist(viaJs, 6, x, y)));
  assert.ok(worst < 1e-3, `distances differ by ${worst}`);
});

/** n random images: stage 0 [5 x 5 x 8], stage 1 [3 x 3 x 8]. */
function stagesOf(n: number, seed: number): StageFeatures[] {
  const rnd = mulberry32(seed);
  return [5, 3].map((s) => ({ n, h: s, w: s, c: 8, data: Float32Array.from({ length: n * s * s * 8 }, () => rnd() * 2 - 1) }));
}

test('engine: projectChannels = C is a rotation (the same scores, the filter too); fewer channels change them; more are refused', async () => {
  const n = 20;
  const stages = stagesOf(n, 7);
  const kernel = await kernelFor('cpu', 'fast');
  const plan: ScoringPlan = {
    n,
    rList: [1, 3],
    stageRList: [[1, 3], [1]],
    variants: [zeroShotVariant(n, [0, 0.3])],
    repeatFilter: DEFAULT_REPEAT_FILTER,
  };
  const plain = await scorePlan(stages, plan, kernel);
  const rotated = await scorePlan(stages, plan, kernel, { projectChannels: 8 });
  const maxDiff = (a: Float64Array, b: Float64Array) => a.reduce((m, v, k) => Math.max(m, Math.abs(v - b[k]!)), 0);
  assert.ok(maxDiff(plain.variants[0]!.patch, rotated.variants[0]!.patch) < 1e-5);
  assert.ok(plain.filtered && rotated.filtered, 'the filter ran (20 images)');
  assert.ok(maxDiff(plain.filtered.patch, rotated.filtered.patch) < 1e-5);
  const fewer = await scorePlan(stages, plan, kernel, { projectChannels: 3 });
  assert.deepEqual([fewer.h, fewer.w], [plain.h, plain.w]);
  assert.ok(maxDiff(plain.variants[0]!.patch, fewer.variants[0]!.patch) > 1e-3, '3 of 8 channels gave the same scores');
  await assert.rejects(
    scorePlan(stages, plan, kernel, { projectChannels: 9 }),
    /project: 9 directions for features of 8 LNAMD channels \(give 2\.\.8\)/,
  );
});

/**
 * Bases [K, C] by projectKey of every (stage, r) pass, from the LNAMD rows of the images outside
 * [i0, i1) (a copy, with the engine's MatMul), iterated from the whole batch's bases `start`.
 */
function heldOutBases(
  stages: StageFeatures[],
  plan: ScoringPlan,
  K: number,
  normExponent: number,
  [i0, i1]: readonly [number, number],
  mm: MatMul,
  start: Record<string, Float32Array>,
) {
  const target = lnamdTarget(stages, undefined, undefined, normExponent);
  const out: Record<string, Float32Array> = {};
  return (async () => {
    for (const [l, passes] of stagePasses(plan, stages.length).entries()) {
      const normed = layerNormImages(stages[l]!);
      for (const { ri } of passes) {
        const z = aggregateStage(stages[l]!, normed, plan.rList[ri]!, target);
        const perImage = z.length / plan.n;
        const kept = new Float32Array(z.length - (i1 - i0) * perImage);
        kept.set(z.subarray(0, i0 * perImage));
        kept.set(z.subarray(i1 * perImage), i0 * perImage);
        const key = projectKey(l, plan.rList[ri]!);
        out[key] = await new BasisAccumulator(kept.length / target.channels, target.channels).add(kept).basis(K, mm, start[key]);
      }
    }
    return out;
  })();
}

test("engine: projectFolds scores each fold on the bases of the other folds; the bases kept are the whole batch's; refused where it means nothing", async () => {
  const n = 7,
    K = 4,
    B = 0.5;
  const stages = stagesOf(n, 11);
  const kernel = await kernelFor('cpu', 'fast');
  const plan: ScoringPlan = { n, rList: [1, 3], stageRList: [[1, 3], [1]], variants: [zeroShotVariant(n, [0, 0.3])] };
  const opts = { projectChannels: K, normExponent: B };
  const whole = await scorePlan(stages, plan, kernel, opts);
  const folded = await scorePlan(stages, plan, kernel, { ...opts, projectFolds: 3 });
  assert.deepEqual(Object.keys(folded.bases!).sort(), Object.keys(whole.bases!).sort());
  for (const [key, b] of Object.entries(whole.bases!)) assert.deepEqual(folded.bases![key], b, key);
  const P = folded.h * folded.w;
  let moved = 0;
  for (const [i0, i1] of [
    [0, 2],
    [2, 4],
    [4, 7],
  ] as const) {
    const given = await heldOutBases(stages, plan, K, B, [i0, i1], kernel.matMul, whole.bases!);
    const expected = (await scorePlan(stages, plan, kernel, { ...opts, projectBases: given })).variants[0]!.patch;
    for (let k = i0 * P; k < i1 * P; k++) {
      const got = folded.variants[0]!.patch[k]!;
      assert.ok(Math.abs(got - expected[k]!) < 1e-6, `image ${Math.floor(k / P)} patch ${k % P}: ${got} vs ${expected[k]}`);
      moved = Math.max(moved, Math.abs(got - whole.variants[0]!.patch[k]!));
    }
  }
  assert.ok(moved > 1e-4, "held-out bases gave the whole batch's scores");
  await assert.rejects(scorePlan(stages, plan, kernel, { ...opts, projectFolds: 1 }), /projectFolds: give an integer of at least 2, got 1/);
  await assert.rejects(scorePlan(stages, plan, kernel, { normExponent: B, projectFolds: 3 }), /projectFolds: needs projectChannels/);
  await assert.rejects(scorePlan(stages, plan, kernel, { ...opts, projectBases: whole.bases!, projectFolds: 3 }), /no projectBases/);
  await assert.rejects(
    scorePlan(stages, { ...plan, repeatFilter: DEFAULT_REPEAT_FILTER }, kernel, { ...opts, projectFolds: 3 }),
    /not with the repeated-anomaly filter/,
  );
});

test('musc run with project: the scorer gets it, run.json and metrics.md record it; the schema bounds it', async () => {
  const { dir, cleanup } = await tempDir('project');
  try {
    const set = await generateSynthetic(join(dir, 'data'), { size: 48, good: 8, defective: 3 });
    const { scorer: spy, seen } = spyScorer();
    const out = join(dir, 'out');
    const settings = mergeSettings({}, { heatmaps: 'none', project: 2 });
    await runDataset({ data: set.root, out, settings, loadBackbone: fakeLoader(fakeBackbone(32, 8)), scorer: spy });
    assert.equal(seen[0]!.projectChannels, 2);
    const json = JSON.parse(await readFile(join(out, 'surface', 'run.json'), 'utf8')) as { settings: Record<string, unknown> };
    assert.equal(json.settings.project, 2);
    assert.match(await readFile(join(out, 'metrics.md'), 'utf8'), /features projected to 2 channels/);
    assert.throws(() => validateSettings({ project: 1 }, 'test config'), /project/);
    assert.deepEqual(validateSettings({ project: 128 }, 'test config'), { project: 128 });
  } finally {
    await cleanup();
  }
});

test('musc run with project above the first stage channels: a usage error after the backbone loads, before any image is extracted', async () => {
  const { dir, cleanup } = await tempDir('project-bound');
  try {
    const set = await generateSynthetic(join(dir, 'data'), { size: 48, good: 4, defective: 1 });
    const bb = { ...fakeBackbone(32, 8), stageChannels: [3] };
    let disposed = 0;
    const backbone = { ...bb, dispose: async () => void disposed++ };
    const run = (project: number) =>
      runDataset({
        data: set.root,
        out: join(dir, `out${project}`),
        settings: mergeSettings({}, { heatmaps: 'none', project }),
        loadBackbone: fakeLoader(backbone),
        scorer: localScorer,
      });
    await assert.rejects(run(4), (e: Error) => {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(e.message, /'project' \(--project\) 4 is more than the 3 channels of the backbone's first stage/);
      return true;
    });
    assert.deepEqual(bb.calls, [], 'images were extracted before the check');
    assert.equal(disposed, 1, 'the backbone was not released');
    await run(3); // = the channels: allowed
    assert.ok(bb.calls.length > 0);
  } finally {
    await cleanup();
  }
});

test('musc run --project: bounds of the flag', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [cliMain, 'run', ...args], { encoding: 'utf8', timeout: 60_000 });
  const bad = run(['--data', '/nonexistent-data', '--out', '/tmp/musc-project-none', '--project', '1']);
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /--project must be an integer from 2 to 4096/);
});
