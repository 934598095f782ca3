/**
 * Issue 17, sixteenth round: reference-density normalisation of MSM distances (core/density.ts,
 * EngineOptions.densityExponent, `musc run --density-exponent`). The fast kernel's indexed graph
 * gives each nearest patch's index (compute/msm-kernel.ts buildIndexedGraph); each distance is
 * divided by (that reference patch's own MSM score / the table's median)^A.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runBlockJob } from '../src/cluster/block.js';
import type { ClusterJob, LinksJobData, ReduceJobData } from '../src/cluster/jobs.js';
import { collectScores, putPlan, reduceJobs, rowBlocks, runDensityJob, runLinksJob, runReduceJob } from '../src/cluster/reduce.js';
import { densityOnWorkers, planBlockJobs, repeatFilterOnWorkers } from '../src/cluster/scorer.js';
import { DirStore } from '../src/cluster/store.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { mergeSettings, validateSettings } from '../src/config.js';
import { densityExponentWarning, densityNormalised, densityWeights, normaliseHeldOut } from '../src/core/density.js';
import { aggregateStage, layerNormImages, lnamdTarget } from '../src/core/lnamd.js';
import { nearestDistanceTable, nearestTableWithIndices, tableRows } from '../src/core/msm.js';
import { referenceVariant, type ScoringPlan, stagePasses, subsetsVariant, zeroShotVariant } from '../src/core/plan.js';
import { DEFAULT_REPEAT_FILTER } from '../src/core/repeats.js';
import { reduceTable, scorePlan } from '../src/core/score.js';
import type { StageFeatures } from '../src/core/types.js';
import { generateSynthetic, mulberry32 } from '../src/demo/synthetic.js';
import { estimateSubsetBytes } from '../src/scoring/memory.js';
import { runDataset } from '../src/pipeline/run-dataset.js';
import { kernelFor } from '../src/scoring/tasks.js';
import { cliMain, tempDir } from './helpers/cli-env.js';
import { fakeBackbone, fakeLoader, spyScorer } from './helpers/cli-fakes.js';

after(shutdownCompute);

/** Rows [T, C], random; unit when `unit`, else with norms spread over 0.5..2. */
function rows(T: number, C: number, seed: number, unit: boolean): Float32Array {
  const rnd = mulberry32(seed);
  const z = Float32Array.from({ length: T * C }, () => rnd() * 2 - 1);
  for (let t = 0; t < T; t++) {
    const s = Math.hypot(...z.subarray(t * C, (t + 1) * C));
    const scale = (unit ? 1 : 0.5 + 1.5 * rnd()) / s;
    for (let c = 0; c < C; c++) z[t * C + c]! *= scale;
  }
  return z;
}

const dist = (z: Float32Array, a: number, b: number, C: number): number => {
  let s = 0;
  for (let c = 0; c < C; c++) s += (z[a * C + c]! - z[b * C + c]!) ** 2;
  return Math.sqrt(s);
};

test("the indexed kernel: the fast kernel's distances to the bit, and each index a nearest patch (both directions, unit and Euclidean rows)", async () => {
  const kernel = await kernelFor('cpu', 'fast');
  const n = 7,
    P = 12,
    C = 6;
  for (const unit of [true, false]) {
    const z = rows(n * P, C, unit ? 3 : 4, unit);
    const opts = { euclidean: !unit, blockImages: 2, colImages: 3 };
    const plain = await nearestDistanceTable(z, n, P, C, kernel, opts);
    const { table, index } = await nearestTableWithIndices(z, n, P, C, kernel, opts);
    assert.deepEqual(table, plain, 'the same distances as nearestDistanceTable');
    for (let i = 0; i < n; i++)
      for (let p = 0; p < P; p++)
        for (let j = 0; j < n; j++) {
          if (i === j) continue;
          const q = index[(i * P + p) * n + j]!;
          const d = dist(z, i * P + p, j * P + q, C);
          let best = Infinity;
          for (let k = 0; k < P; k++) best = Math.min(best, dist(z, i * P + p, j * P + k, C));
          assert.ok(Math.abs(d - best) <= 1e-5, `(${i}, ${p}, ${j}): index ${q} at ${d}, nearest ${best}`);
          assert.ok(Math.abs(d - table[(i * P + p) * n + j]!) <= 2e-3, `(${i}, ${p}, ${j}): the table's distance`);
        }
  }
  const exact = await kernelFor('cpu', 'exact');
  await assert.rejects(nearestTableWithIndices(rows(2 * P, C, 5, true), 2, P, C, exact), /'fast' MSM precision, not 'exact'/);
});

test('densityNormalised: each distance over (its reference patch rho / the median)^A, computed by hand', () => {
  // n = 3 images of P = 2 patches; index says which patch of j is nearest
  const n = 3,
    P = 2;
  const table = Float32Array.from({ length: n * P * n }, (_, k) => 1 + (k % 5) / 10);
  const index = Uint16Array.from({ length: n * P * n }, (_, k) => k % 2);
  const rho = Float64Array.of(1, 2, 4, 0.5, 2, 8); // [N, P]; median 2
  const A = 0.5;
  const out = densityNormalised(table, index, n, P, A, rho);
  for (let i = 0; i < n; i++)
    for (let p = 0; p < P; p++)
      for (let j = 0; j < n; j++) {
        const k = (i * P + p) * n + j;
        const want = i === j ? table[k]! : table[k]! * (rho[j * P + index[k]!]! / 2) ** -A; // the diagonal as it is
        assert.ok(Math.abs(out[k]! - want) <= 1e-6 * want, `entry ${k}: ${out[k]} against ${want}`);
      }
  assert.deepEqual(Array.from(densityWeights(Float64Array.of(0, 0, 0), 1)), [1, 1, 1], 'all rho 0: no normalisation');
  assert.throws(() => densityNormalised(table, index, n, P, 0, rho), /positive/);
  assert.throws(() => densityNormalised(table, index, n, P, 1, rho.subarray(1)), /rho \[N, P\]/);
});

test("normaliseHeldOut: each image's rows on the densities of the table without it (reduced again by hand), ties and an interval off the start", () => {
  const n = 6,
    P = 5,
    A = 0.75;
  const rnd = mulberry32(17);
  const table = Float32Array.from({ length: n * P * n }, () => 0.5 + Math.round(rnd() * 6) / 4); // few values: ties
  const index = Uint16Array.from({ length: n * P * n }, () => Math.floor(rnd() * P));
  for (const interval of [
    [0, 0.3],
    [0.25, 0.75],
  ] as [number, number][]) {
    const got = table.slice();
    normaliseHeldOut(got, index, n, P, A, interval);
    for (let i = 0; i < n; i++) {
      const keep = [...Array(n).keys()].filter((j) => j !== i);
      const sub = new Float32Array((n - 1) * P * (n - 1)); // the table of the images other than i
      keep.forEach((a, x) => {
        for (let p = 0; p < P; p++) keep.forEach((b, y) => (sub[(x * P + p) * (n - 1) + y] = table[(a * P + p) * n + b]!));
      });
      const rho = reduceTable(sub, n - 1, P, [zeroShotVariant(n - 1, interval)])[0]!;
      const w = densityWeights(rho, A); // [n - 1, P]
      for (let p = 0; p < P; p++)
        keep.forEach((j, y) => {
          const k = (i * P + p) * n + j;
          const want = table[k]! * w[y * P + index[k]!]!;
          assert.ok(Math.abs(got[k]! - want) <= 1e-6 * want, `[${interval}] image ${i}, entry ${k}: ${got[k]} against ${want}`);
        });
    }
  }
  assert.throws(() => normaliseHeldOut(table.slice(0, 2 * P * 2), index, 2, P, A, [0, 0.3]), /at least 3 images/);
});

function stagesOf(n: number, seed: number): StageFeatures[] {
  const rnd = mulberry32(seed);
  return [5, 3].map((s) => ({ n, h: s, w: s, c: 8, data: Float32Array.from({ length: n * s * s * 8 }, () => rnd() * 2 - 1) }));
}

/**
 * The engine's patch scores with densityExponent A, computed independently: each pass's bank by
 * LNAMD, the table and brute-force nearest indices, rho = the table's zero-shot scores, the
 * normalised table reduced, summed with the pass weights.
 */
async function byHand(stages: StageFeatures[], plan: ScoringPlan, A: number | number[], normExponent?: number): Promise<Float64Array> {
  const kernel = await kernelFor('cpu', 'fast');
  const target = lnamdTarget(stages, undefined, undefined, normExponent);
  const n = plan.n,
    P = target.gridH * target.gridW,
    C = target.channels;
  const out = new Float64Array(n * P);
  for (const [l, passes] of stagePasses(plan, stages.length).entries())
    for (const { ri, w } of passes) {
      const z = aggregateStage(stages[l]!, layerNormImages(stages[l]!), plan.rList[ri]!, target);
      const table = await nearestDistanceTable(z, n, P, C, kernel, { euclidean: normExponent !== undefined });
      const index = new Uint16Array(table.length);
      for (let i = 0; i < n; i++)
        for (let p = 0; p < P; p++)
          for (let j = 0; j < n; j++) {
            if (i === j) continue;
            let best = Infinity;
            for (let q = 0; q < P; q++) {
              const d = dist(z, i * P + p, j * P + q, C);
              if (d < best) [best, index[(i * P + p) * n + j]] = [d, q];
            }
          }
      const rho = reduceTable(table, n, P, [plan.variants[0]!])[0]!;
      const a = typeof A === 'number' ? A : A[l]!; // 0: that stage's tables as MSM's
      const s = reduceTable(a > 0 ? densityNormalised(table, index, n, P, a, rho) : table, n, P, [plan.variants[0]!])[0]!;
      for (let k = 0; k < s.length; k++) out[k]! += s[k]! * w;
    }
  return out;
}

test('engine: densityExponent = the normalisation computed by hand (unit rows and patch energy); the filter links on MSM distances', async () => {
  const n = 12;
  const stages = stagesOf(n, 11);
  const kernel = await kernelFor('cpu', 'fast');
  const plan: ScoringPlan = { n, rList: [1, 3], stageRList: [[1, 3], [1]], variants: [zeroShotVariant(n, [0, 0.3])] };
  for (const normExponent of [undefined, 0.5]) {
    const res = await scorePlan(stages, plan, kernel, { densityExponent: 0.5, ...(normExponent ? { normExponent } : {}) });
    const want = await byHand(stages, plan, 0.5, normExponent);
    const worst = Math.max(...res.variants[0]!.patch.map((v, k) => Math.abs(v - want[k]!)));
    assert.ok(worst <= 2e-4, `norm exponent ${normExponent ?? 1}: largest difference ${worst}`);
    const msm = await scorePlan(stages, plan, kernel, normExponent ? { normExponent } : {});
    assert.ok(
      msm.variants[0]!.patch.some((v, k) => Math.abs(v - res.variants[0]!.patch[k]!) > 1e-3),
      'the normalisation changes the scores',
    );
  }
  // with the repeated-anomaly filter: the same links (the filter's test reads MSM's own distances)
  const big = 24;
  const st = stagesOf(big, 5);
  const fplan: ScoringPlan = { n: big, rList: [1, 3], variants: [zeroShotVariant(big, [0, 0.3])], repeatFilter: DEFAULT_REPEAT_FILTER };
  const plain = await scorePlan(st, fplan, kernel);
  const dens = await scorePlan(st, fplan, kernel, { densityExponent: 0.25 });
  assert.deepEqual(dens.filtered?.summary, plain.filtered?.summary);
  const want = await byHand(st, { ...fplan, repeatFilter: undefined }, 0.25);
  const worst = Math.max(...dens.variants[0]!.patch.map((v, k) => Math.abs(v - want[k]!)));
  assert.ok(worst <= 2e-4, `with the filter: largest difference ${worst}`);
  // one exponent per stage: layer 0's tables as MSM's, layer 1's normalised
  const per = await scorePlan(st, fplan, kernel, { densityExponent: [0, 0.5] });
  assert.deepEqual(per.filtered?.summary, plain.filtered?.summary);
  const wantPer = await byHand(st, { ...fplan, repeatFilter: undefined }, [0, 0.5]);
  const worstPer = Math.max(...per.variants[0]!.patch.map((v, k) => Math.abs(v - wantPer[k]!)));
  assert.ok(worstPer <= 2e-4, `per stage: largest difference ${worstPer}`);
  assert.deepEqual(
    (await scorePlan(st, fplan, kernel, { densityExponent: [0, 0] })).variants[0]!.patch,
    plain.variants[0]!.patch,
    'every exponent 0: MSM',
  );
});

test("engine: densityScope 'image': the plan's variants (the maps) keep MSM's scores, the filter's (or, without it, PlanScores.image) are the normalised ones", async () => {
  const kernel = await kernelFor('cpu', 'fast');
  const big = 24;
  const st = stagesOf(big, 9);
  const fplan: ScoringPlan = {
    n: big,
    rList: [1, 3],
    stageRList: [[1, 3], [1]],
    variants: [zeroShotVariant(big, [0, 0.3])],
    repeatFilter: DEFAULT_REPEAT_FILTER,
  };
  for (const densityExponent of [[0, 1], 0.5]) {
    const plain = await scorePlan(st, fplan, kernel);
    const all = await scorePlan(st, fplan, kernel, { densityExponent });
    const image = await scorePlan(st, fplan, kernel, { densityExponent, densityScope: 'image' });
    assert.deepEqual(image.variants[0]!.patch, plain.variants[0]!.patch, `${densityExponent}: the maps are MSM's`);
    assert.deepEqual(image.filtered!.patch, all.filtered!.patch, `${densityExponent}: the image scores' are normalised`);
    assert.deepEqual(image.filtered!.summary, plain.filtered!.summary);
    assert.ok(
      image.filtered!.patch.some((v, k) => Math.abs(v - plain.filtered!.patch[k]!) > 1e-3),
      'normalisation changed nothing',
    );
    assert.equal(image.image, undefined, 'with the filter, its scores are the image scores');
  }
  // without the filter: variant 0 once more, from the normalised tables
  const plan: ScoringPlan = { ...fplan, repeatFilter: undefined };
  const plain = await scorePlan(st, plan, kernel);
  const all = await scorePlan(st, plan, kernel, { densityExponent: [0, 1] });
  const image = await scorePlan(st, plan, kernel, { densityExponent: [0, 1], densityScope: 'image' });
  assert.deepEqual(image.variants[0]!.patch, plain.variants[0]!.patch);
  assert.deepEqual(image.image!.patch, all.variants[0]!.patch);
  assert.equal(image.variants.length, 1);
  assert.equal(
    (await scorePlan(st, plan, kernel, { densityExponent: 0, densityScope: 'image' })).image,
    undefined,
    'exponent 0: nothing to scope',
  );
  const bad = { densityExponent: 1, densityScope: 'maps' } as unknown as Parameters<typeof scorePlan>[3];
  await assert.rejects(scorePlan(st, plan, kernel, bad), /densityScope: 'all' or 'image', got 'maps'/);
  // held-out densities (a bank's leave-one-out) scope the same way
  const held = await scorePlan(st, plan, kernel, { densityExponent: 1, densityHeldOut: true });
  const heldImage = await scorePlan(st, plan, kernel, { densityExponent: 1, densityHeldOut: true, densityScope: 'image' });
  assert.deepEqual(heldImage.variants[0]!.patch, plain.variants[0]!.patch);
  assert.deepEqual(heldImage.image!.patch, held.variants[0]!.patch);
});

test('engine: densityExponent refused where its densities are not defined (int8 / exact, references, subsets, held-out folds); 0 is MSM', async () => {
  const n = 8;
  const stages = stagesOf(n, 3);
  const fast = await kernelFor('cpu', 'fast');
  const plan: ScoringPlan = { n, rList: [1], variants: [zeroShotVariant(n, [0, 0.3])] };
  await assert.rejects(scorePlan(stages, plan, await kernelFor('cpu', 'exact'), { densityExponent: 1 }), /'fast' MSM precision/);
  await assert.rejects(scorePlan(stages, plan, await kernelFor('cpu', 'int8'), { densityExponent: 1 }), /'fast' MSM precision/);
  const few: ScoringPlan = { n, rList: [1], variants: [referenceVariant([0, 1, 2, 3, 4, 5], [6, 7], 'musc', [0, 0.3])] };
  await assert.rejects(scorePlan(stages, few, fast, { densityExponent: 1 }), /zero-shot scoring of the whole batch/);
  const subsets: ScoringPlan = {
    n,
    rList: [1],
    variants: [
      subsetsVariant(
        [
          [0, 1, 2, 3],
          [4, 5, 6, 7],
        ],
        [0, 0.3],
      ),
    ],
  };
  await assert.rejects(scorePlan(stages, subsets, fast, { densityExponent: 1 }), /zero-shot scoring of the whole batch/);
  await assert.rejects(scorePlan(stages, plan, fast, { densityExponent: 1, projectChannels: 4, projectFolds: 2 }), /not with projectFolds/);
  await assert.rejects(scorePlan(stages, plan, fast, { densityExponent: -1 }), /numbers of at least 0/);
  await assert.rejects(scorePlan(stages, plan, fast, { densityExponent: [0.5] }), /1 exponents for 2 stages/);
  const off = await scorePlan(stages, plan, fast, { densityExponent: 0 });
  assert.deepEqual(off.variants[0]!.patch, (await scorePlan(stages, plan, fast)).variants[0]!.patch);
});

test('musc run --density-exponent: the scorer gets it, run.json records it; refused with exact MSM and references', async () => {
  const { dir, cleanup } = await tempDir('density');
  try {
    const set = await generateSynthetic(join(dir, 'data'), { size: 48, good: 8, defective: 3 });
    const { scorer: spy, seen } = spyScorer();
    const out = join(dir, 'out');
    const settings = mergeSettings({}, { heatmaps: 'none', density_exponent: 0.25 });
    await runDataset({ data: set.root, out, settings, loadBackbone: fakeLoader(fakeBackbone(32, 8)), scorer: spy });
    assert.equal(seen[0]!.densityExponent, 0.25);
    const json = JSON.parse(await readFile(join(out, 'surface', 'run.json'), 'utf8')) as { settings: Record<string, unknown> };
    assert.equal(json.settings.density_exponent, 0.25);
    assert.throws(() => validateSettings({ density_exponent: 5 }, 'test config'), /density_exponent/);
    const cli = (args: string[]) => spawnSync(process.execPath, [cliMain, 'run', ...args], { encoding: 'utf8', timeout: 120_000 });
    const base = ['--data', set.root, '--out', join(dir, 'bad'), '--density-exponent', '0.5'];
    const exact = cli([...base, '--msm-precision', 'exact']);
    assert.equal(exact.status, 2, exact.stderr);
    assert.match(exact.stderr, /--density-exponent needs the 'fast' MSM precision/);
    const refs = cli([...base, '--reference-dir', join(set.root, set.category, 'test', 'good')]);
    assert.equal(refs.status, 2, refs.stderr);
    assert.match(refs.stderr, /cannot be used with --reference-dir/);
    const bound = cli(['--data', set.root, '--out', join(dir, 'bad'), '--density-exponent', '-1']);
    assert.equal(bound.status, 2, bound.stderr);
    assert.match(bound.stderr, /--density-exponent must be a number from 0 to 4/);
    const count = cli(['--data', set.root, '--out', join(dir, 'bad'), '--density-exponent', '0/0.5/1']);
    assert.equal(count.status, 2, count.stderr);
    assert.match(count.stderr, /has 3 exponents, the backbone has 2 stages/);
    const warned: string[] = [];
    const runSpied = async (settings: ReturnType<typeof mergeSettings>, name: string) => {
      seen.length = 0;
      warned.length = 0;
      const o = { data: set.root, out: join(dir, name), settings, scorer: spy, warn: (l: string) => void warned.push(l) };
      await runDataset({ ...o, loadBackbone: fakeLoader(fakeBackbone(32, 8)) });
    };
    const perStage = mergeSettings({}, { heatmaps: 'none', density_exponent: [0.5] }); // the fake backbone has one stage
    await runSpied(perStage, 'per');
    assert.deepEqual(seen[0]!.densityExponent, [0.5]);
    assert.deepEqual(warned, [], 'no warning at A <= 1');
    // above 1: scored as asked, with the warning (eighteenth round: plain regions of normal images outscore defects)
    await runSpied(mergeSettings({}, { heatmaps: 'none', density_exponent: [1.5] }), 'above');
    assert.deepEqual(seen[0]!.densityExponent, [1.5]);
    assert.equal(warned.filter((l) => /--density-exponent 1\.5 is above 1/.test(l)).length, 1, warned.join('\n'));
    assert.deepEqual(validateSettings({ density_exponent: [0, 1.5] }, 'test config'), { density_exponent: [0, 1.5] });
    // --density-scope: passed on and recorded; refused without an exponent and on the cluster
    await runSpied(mergeSettings({}, { heatmaps: 'none', density_exponent: 1, density_scope: 'image' }), 'scope');
    assert.equal(seen[0]!.densityScope, 'image');
    const sj = JSON.parse(await readFile(join(dir, 'scope', 'surface', 'run.json'), 'utf8')) as { settings: Record<string, unknown> };
    assert.equal(sj.settings.density_scope, 'image');
    assert.throws(() => validateSettings({ density_scope: 'maps' }, 'test config'), /density_scope/);
    const alone = cli(['--data', set.root, '--out', join(dir, 'bad'), '--density-scope', 'image']);
    assert.equal(alone.status, 2, alone.stderr);
    assert.match(alone.stderr, /--density-scope image: give --density-exponent too/);
  } finally {
    await cleanup();
  }
});

const bytes = (a: Float64Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

test('the cluster: block jobs with indices, density jobs per row block, merge jobs normalising their rows = the one-process engine, bit for bit (with the filter)', async () => {
  const { dir, cleanup } = await tempDir('density-cluster');
  try {
    const n = 20;
    const stages = stagesOf(n, 21);
    const plan: ScoringPlan = {
      n,
      rList: [1, 3],
      stageRList: [[1, 3], [1]],
      variants: [zeroShotVariant(n, [0, 0.3])],
      repeatFilter: DEFAULT_REPEAT_FILTER,
    };
    for (const [a, b, exps] of [
      [3, 7, [0.25, 0.25]],
      [5, 2, [0, 0.5]],
    ] as const) {
      const o = { precision: 'fast' as const, densityExponent: [...exps] };
      const one = await scorePlan(stages, plan, await kernelFor('cpu', 'fast'), { densityExponent: [...exps] });
      const store = new DirStore(join(dir, `${a}x${b}`));
      const p = await planBlockJobs(stages, plan, o, { blockImages: a, colImages: b }, store, 'density-test');
      p.jobs.forEach((stage, l) =>
        assert.ok(
          stage.flat().every((j) => !!j.indexed === exps[l]! > 0),
          `stage ${l}: indexed blocks`,
        ),
      );
      for (const job of p.jobs.flat(2)) await runBlockJob(store, job);
      const run = (kind: string) => async (jobs: ClusterJob[]) => {
        for (const j of jobs) {
          assert.equal(j.name, kind);
          if (kind === 'links') await runLinksJob(store, j.data as LinksJobData);
          else await runDensityJob(store, j.data as ReduceJobData);
        }
      };
      const filter = await repeatFilterOnWorkers(run('links'), store, plan, p);
      assert.deepEqual(filter?.summary, one.filtered?.summary, `split ${a}x${b}: the filter's links`);
      const density = await densityOnWorkers(
        run('density'),
        store,
        plan,
        p,
        exps.map((exponent) => (exponent > 0 ? { exponent } : undefined)),
      );
      const merged: ScoringPlan = { n, rList: plan.rList, stageRList: plan.stageRList, variants: [...plan.variants, filter!.variant] };
      const rbs = rowBlocks(tableRows(n, p.need), p.rowImages);
      const jobs = reduceJobs(await putPlan(store, merged), p.tiling, p.jobs, rbs, density);
      for (const j of jobs.flat(2)) await runReduceJob(store, j);
      const patch = await collectScores(store, merged, p.P, jobs, rbs);
      assert.ok(bytes(patch[0]!).equals(bytes(one.variants[0]!.patch)), `split ${a}x${b}: the plain variant differs`);
      assert.ok(bytes(patch[1]!).equals(bytes(one.filtered!.patch)), `split ${a}x${b}: the filtered variant differs`);
      // --density-scope image: the merge jobs reduce the plain variant before normalising their rows
      const scoped = density.map((st) => st.map((d) => d && { ...d, rawVariants: 1 }));
      const sj = reduceJobs(await putPlan(store, merged), p.tiling, p.jobs, rbs, scoped);
      for (const j of sj.flat(2)) await runReduceJob(store, j);
      const sp = await collectScores(store, merged, p.P, sj, rbs);
      const img = await scorePlan(stages, plan, await kernelFor('cpu', 'fast'), { densityExponent: [...exps], densityScope: 'image' });
      assert.ok(bytes(sp[0]!).equals(bytes(img.variants[0]!.patch)), `split ${a}x${b}, scope image: the plain variant differs`);
      assert.ok(bytes(sp[1]!).equals(bytes(img.filtered!.patch)), `split ${a}x${b}, scope image: the filtered variant differs`);
    }
  } finally {
    await cleanup();
  }
});

test('densityExponentWarning: only exponents above 1, each named', () => {
  for (const a of [undefined, 0, 0.5, 1, [0, 1], [1, 0.25]]) assert.equal(densityExponentWarning(a), undefined, String(a));
  assert.match(densityExponentWarning(1.01)!, /--density-exponent 1\.01 is above 1/);
  assert.match(densityExponentWarning([2, 0.5, 3])!, /--density-exponent 2\/3 is above 1/);
});

test('the memory estimate counts the nearest indices of --density-exponent (16-bit, one table)', () => {
  const stages = [
    { h: 28, w: 28, c: 512 },
    { h: 14, w: 14, c: 1024 },
  ];
  const plain = estimateSubsetBytes(40, stages, 224);
  assert.equal(estimateSubsetBytes(40, stages, 224, 'float16', true) - plain, 40 * 39 * 784 * 2);
});
