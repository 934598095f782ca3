/**
 * The cluster coordinator's merge in row blocks (no Redis: the block jobs run in this process
 * through a directory store). Reducing a table in row blocks gives the bits of reducing it at
 * once (core/score.ts reduceRows), and the merge (in one process, and as merge jobs + the
 * coordinator's sum) gives the bits of the one-process engine (scorePlan) while holding one query
 * block's table rows, never the whole table.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { runBlockJob } from '../src/cluster/block.js';
import { readMaxAbs, runScaleJob, scaleJobs } from '../src/cluster/scale.js';
import { collectScores, mergeScores, putPlan, reduceJobs, rowBlocks, runLinksJob, runReduceJob } from '../src/cluster/reduce.js';
import { clusterTiling, planBlockJobs, prePasses, putBanks, repeatFilterOnWorkers } from '../src/cluster/scorer.js';
import type { BasisJobData, ClusterJob, LinksJobData, ScaleJobData } from '../src/cluster/jobs.js';
import { readBasis, runBasisJob } from '../src/cluster/basis.js';
import type { Coordinator } from '../src/cluster/coordinator.js';
import { maxAbsDiff as maxDiff } from './helpers/core-golden.js';
import { DEFAULT_REPEAT_FILTER } from '../src/core/repeats.js';
import { DirStore } from '../src/cluster/store.js';
import { type ScoringPlan, subsetsVariant, zeroShotVariant } from '../src/core/plan.js';
import { projectKey, reduceRows, reduceTable, scorePlan } from '../src/core/score.js';
import { tableRows } from '../src/core/msm.js';
import type { StageFeatures } from '../src/core/types.js';
import { lnamdTarget } from '../src/core/lnamd.js';
import { mulberry32 } from '../src/demo/synthetic.js';
import { fromFloat16, toFloat16 } from '../src/io/float16.js';
import { kernelFor } from '../src/scoring/tasks.js';
import { tempDir } from './helpers/cli-env.js';

const bytes = (a: Float64Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** zero-shot over all n images, and --divide style subsets (two variants sharing one table) */
function twoVariantPlan(n: number, rList: number[]): ScoringPlan {
  const half = Math.floor(n / 2);
  const a = Array.from({ length: half }, (_, i) => i);
  const b = Array.from({ length: n - half }, (_, i) => half + i);
  return { n, rList, variants: [zeroShotVariant(n, [0, 0.3]), subsetsVariant([a, b], [0.1, 0.6])] };
}

/** The merge as the cluster runs it: merge jobs (one per row block of each (stage, r)), then collectScores. */
async function mergeAsJobs(store: DirStore, plan: ScoringPlan, p: Awaited<ReturnType<typeof planBlockJobs>>): Promise<Float64Array[]> {
  const rbs = rowBlocks(tableRows(plan.n, p.need), p.rowImages);
  const jobs = reduceJobs(await putPlan(store, plan), p.tiling, p.jobs, rbs);
  assert.equal(jobs.flat(2).length, p.passes.flat().length * Math.ceil(plan.n / p.rowImages));
  for (const j of jobs.flat(2)) {
    const st = await runReduceJob(store, j);
    assert.ok(st.peakTableRows <= p.rowImages * p.P && st.peakTableRows > 0);
  }
  return collectScores(store, plan, p.P, jobs, rbs);
}

/** A table [n, p, n] with ties on purpose: values on a coarse grid, so the tie order (image order) matters. */
function tiedTable(n: number, p: number, seed: number): Float32Array {
  const rnd = mulberry32(seed);
  return Float32Array.from({ length: n * p * n }, () => Math.round(rnd() * 20) / 8);
}

/** Each variant's scores from the table reduced in row blocks of k images (reduceRows), as merge jobs reduce it. */
function inRowBlocks(table: Float32Array, n: number, p: number, k: number, variants: ScoringPlan['variants']): Float64Array[] {
  const out = variants.map((v) => new Float64Array(v.scored.length * p));
  for (let i0 = 0; i0 < n; i0 += k) reduceRows(table.slice(i0 * p * n, Math.min(n, i0 + k) * p * n), i0, n, p, variants, out);
  return out;
}

test('reduceRows: a table reduced in row blocks of any size = reduceTable, bit for bit; a variant equal to an earlier one gets its scores', () => {
  const n = 11,
    p = 5;
  const table = tiedTable(n, p, 3);
  const plan = twoVariantPlan(n, [1]);
  const whole = reduceTable(table, n, p, plan.variants);
  // equal copies (as the cluster's merge sees them: no shared objects), the density scope's image copy among them
  const copies = [...plan.variants, structuredClone(plan.variants[0]!), structuredClone(plan.variants[1]!)];
  for (const k of [1, 2, 3, 4, 11]) {
    const out = inRowBlocks(table, n, p, k, plan.variants);
    out.forEach((o, v) => assert.ok(bytes(o).equals(bytes(whole[v]!)), `row blocks of ${k}: variant ${v} differs`));
    const withCopies = inRowBlocks(table, n, p, k, copies);
    [0, 1, 0, 1].forEach((v, c) => assert.ok(bytes(withCopies[c]!).equals(bytes(whole[v]!)), `row blocks of ${k}: copy ${c} differs`));
  }
  assert.throws(() => reduceRows(new Float32Array(7), 0, n, p, plan.variants, []), /not a multiple of P\*N/);
  // a variant that differs in its reduction alone is reduced on its own
  const other = { ...plan.variants[0]!, reduce: { kind: 'interval' as const, interval: [0, 0.5] as [number, number] } };
  const [x, y] = reduceTable(table, n, p, [plan.variants[0]!, other]);
  assert.ok(!bytes(x!).equals(bytes(y!)));
});

/** two stages of n random images (float16 storage, as a run keeps them) */
function randomStages(n: number, seed: number): StageFeatures[] {
  const rnd = mulberry32(seed);
  return [4, 2].map((s, k) => ({
    n,
    h: s,
    w: s,
    c: 16 * (k + 1),
    data: toFloat16(Float32Array.from({ length: n * s * s * 16 * (k + 1) }, () => rnd() * 2 - 1)),
  }));
}

test('cluster merge in row blocks = the one-process engine, bit for bit, holding one query block of rows', async () => {
  const { dir, cleanup } = await tempDir('cluster-merge');
  try {
    const n = 9;
    const stages = randomStages(n, 11);
    const plan = twoVariantPlan(n, [1, 3]);
    const one = await scorePlan(stages, plan, await kernelFor('cpu', 'fast'), {});
    for (const [a, b] of [
      [2, 3],
      [4, 2],
      [1, 8],
    ] as const) {
      const store = new DirStore(join(dir, `${a}x${b}`));
      const p = await planBlockJobs(stages, plan, { precision: 'fast' }, { blockImages: a, colImages: b }, store, 'merge-test');
      for (const job of p.jobs.flat(2)) await runBlockJob(store, job);
      const { patch, stats } = await mergeScores(store, plan, p.P, p.need, p.blocks, p.jobs, p.rowImages);
      patch.forEach((v, vi) =>
        assert.ok(bytes(v).equals(bytes(one.variants[vi]!.patch)), `split ${a}x${b}: variant ${vi} differs from scorePlan`),
      );
      (await mergeAsJobs(store, plan, p)).forEach((v, vi) =>
        assert.ok(bytes(v).equals(bytes(one.variants[vi]!.patch)), `split ${a}x${b}, merge jobs: variant ${vi} differs`),
      );
      // the memory bound: one query block's rows [A, P, N] at a time, not the table [N, P, N]
      assert.equal(p.rowImages, a);
      assert.equal(stats.peakTableRows, a * p.P, `split ${a}x${b}`);
      assert.equal(stats.fullTableRows, n * p.P);
      assert.ok(stats.peakTableRows < stats.fullTableRows);
      // every block result is read, its rows once; its columns once per row block they meet
      const resultBytes = p.blocks.reduce((s, bl) => s + 8 * (bl.i1 - bl.i0) * (bl.j1 - bl.j0) * p.P, 0);
      const L = stages.length * plan.rList.length;
      assert.ok(stats.bytesRead >= L * resultBytes && stats.bytesRead <= L * resultBytes * (1 + Math.ceil(b / a)), `${stats.bytesRead}`);
    }
  } finally {
    await cleanup();
  }
});

test('int8 on the cluster: scale jobs give the bank scale; block jobs = the one-process int8 engine, bit for bit', async () => {
  const { dir, cleanup } = await tempDir('cluster-int8');
  try {
    const n = 10;
    const stages = randomStages(n, 5);
    const plan = twoVariantPlan(n, [1, 3]);
    const one = await scorePlan(stages, plan, await kernelFor('cpu', 'int8'), {});
    const fast = await scorePlan(stages, plan, await kernelFor('cpu', 'fast'), {});
    assert.ok(!bytes(one.variants[0]!.patch).equals(bytes(fast.variants[0]!.patch)), 'int8 gave the fast scores: not quantised');
    const store = new DirStore(join(dir, 'store'));
    const o = { precision: 'int8' as const };
    await assert.rejects(planBlockJobs(stages, plan, o, {}, store, 'int8-test'), /int8 block jobs need the banks' scales/);
    const banks = await putBanks(store, stages);
    const target = lnamdTarget(stages);
    const split = { blockImages: 3, colImages: 4 };
    const chunk = clusterTiling(n, target.gridH * target.gridW, split).rowImages;
    const sj = scaleJobs(banks, target, [plan.rList, plan.rList], chunk, 'int8-test');
    assert.equal(sj[0]!.length, Math.ceil(n / 3));
    for (const j of sj.flat()) await runScaleJob(store, j);
    const maxAbs = await readMaxAbs(store, sj);
    const p = await planBlockJobs(stages, plan, o, split, store, 'int8-test', { banks, maxAbs });
    for (const job of p.jobs.flat(2)) await runBlockJob(store, job);
    const patch = await mergeAsJobs(store, plan, p);
    patch.forEach((v, vi) => assert.ok(bytes(v).equals(bytes(one.variants[vi]!.patch)), `int8: variant ${vi} differs from scorePlan`));
  } finally {
    await cleanup();
  }
});

/** The repeated-anomaly filter's links jobs, run here in turn. */
function linksHere(store: DirStore, plan: ScoringPlan, p: Awaited<ReturnType<typeof planBlockJobs>>) {
  return repeatFilterOnWorkers(
    async (jobs) => {
      for (const j of jobs) await runLinksJob(store, j.data as LinksJobData);
    },
    store,
    plan,
    p,
  );
}

/** randomStages with images 0..3 sharing a defect vector at stage 0's top-left patch (a repeated anomaly) */
function repeatedDefectStages(n: number): StageFeatures[] {
  const stages = randomStages(n, 13);
  const rnd = mulberry32(99);
  const defect = Array.from({ length: 16 }, () => 8 * (rnd() * 2 - 1));
  const s0 = fromFloat16(stages[0]!.data as Uint16Array);
  for (let i = 0; i < 4; i++) for (let c = 0; c < 16; c++) s0[i * 16 * 16 + c] = defect[c]! + 0.01 * rnd();
  stages[0] = { ...stages[0]!, data: toFloat16(s0) };
  return stages;
}

test('repeated-anomaly filter on the cluster: links jobs per row block, then the merge = the one-process filtered variant, bit for bit', async () => {
  const { dir, cleanup } = await tempDir('cluster-repeats');
  try {
    const n = 20;
    const stages = repeatedDefectStages(n);
    const plan: ScoringPlan = { n, rList: [1, 3], variants: [zeroShotVariant(n, [0, 0.3])], repeatFilter: DEFAULT_REPEAT_FILTER };
    const one = await scorePlan(stages, plan, await kernelFor('cpu', 'fast'), {});
    assert.ok(one.filtered && one.filtered.summary.excludedPairs > 0, 'the one-process run found no repeated anomaly');
    const store = new DirStore(join(dir, 'store'));
    const p = await planBlockJobs(stages, plan, { precision: 'fast' }, { blockImages: 3, colImages: 7 }, store, 'repeats-test');
    for (const job of p.jobs.flat(2)) await runBlockJob(store, job);
    let linksRun = 0;
    const filter = await repeatFilterOnWorkers(
      async (jobs) => {
        for (const j of jobs) {
          assert.equal(j.name, 'links');
          await runLinksJob(store, j.data as LinksJobData);
          linksRun++;
        }
      },
      store,
      plan,
      p,
    );
    assert.equal(linksRun, Math.ceil(n / p.rowImages));
    assert.deepEqual(filter!.summary, one.filtered.summary); // the same images left out of the same pools
    const merged: ScoringPlan = { n, rList: plan.rList, variants: [...plan.variants, filter!.variant] };
    const patch = await mergeAsJobs(store, merged, p);
    assert.ok(bytes(patch[0]!).equals(bytes(one.variants[0]!.patch)), 'variant 0 differs');
    assert.ok(bytes(patch[1]!).equals(bytes(one.filtered.patch)), 'the filtered variant differs');
  } finally {
    await cleanup();
  }
});

test('score grid on the cluster: block jobs carry the G x G target; the merge = the one-process engine with targetGrid, bit for bit', async () => {
  const { dir, cleanup } = await tempDir('cluster-grid');
  try {
    const n = 8;
    const stages = randomStages(n, 17);
    const plan = twoVariantPlan(n, [1, 3]);
    const one = await scorePlan(stages, plan, await kernelFor('cpu', 'fast'), { targetGrid: 3 });
    assert.deepEqual([one.h, one.w], [3, 3]);
    const store = new DirStore(join(dir, 'store'));
    const p = await planBlockJobs(stages, plan, { precision: 'fast', targetGrid: 3 }, { blockImages: 3, colImages: 5 }, store, 'grid-test');
    assert.equal(p.P, 9);
    for (const job of p.jobs.flat(2)) await runBlockJob(store, job);
    (await mergeAsJobs(store, plan, p)).forEach((v, vi) =>
      assert.ok(bytes(v).equals(bytes(one.variants[vi]!.patch)), `variant ${vi} differs from scorePlan with targetGrid 3`),
    );
  } finally {
    await cleanup();
  }
});

test("per-stage r lists on the cluster (fast and int8, with the filter): jobs for each stage's own r list, the merge = scorePlan, bit for bit", async () => {
  const { dir, cleanup } = await tempDir('cluster-stage-r');
  try {
    const n = 20;
    const stages = repeatedDefectStages(n); // the filter's link table is stage 0 at its own smallest r
    const lists = [
      [[3], [1, 3]],
      [[1, 3], [3]],
    ];
    for (const [li, stageRList] of lists.entries())
      for (const precision of ['fast', 'int8'] as const) {
        const what = `stage lists ${JSON.stringify(stageRList)}, ${precision}`;
        const plan: ScoringPlan = {
          n,
          rList: [1, 3],
          stageRList,
          variants: [zeroShotVariant(n, [0, 0.3])],
          repeatFilter: DEFAULT_REPEAT_FILTER,
        };
        const one = await scorePlan(stages, plan, await kernelFor('cpu', precision), {});
        assert.ok(one.filtered, what);
        const store = new DirStore(join(dir, `${li}-${precision}`));
        const split = { blockImages: 3, colImages: 7 };
        const o = { precision };
        let extra = {};
        if (precision === 'int8') {
          const banks = await putBanks(store, stages);
          const target = lnamdTarget(stages);
          const sj = scaleJobs(banks, target, stageRList, clusterTiling(n, target.gridH * target.gridW, split).rowImages, 'stage-r');
          assert.deepEqual(
            sj.map((s) => s[0]!.rList),
            stageRList,
          );
          for (const j of sj.flat()) await runScaleJob(store, j);
          extra = { banks, maxAbs: await readMaxAbs(store, sj) };
        }
        const p = await planBlockJobs(stages, plan, o, split, store, 'stage-r', extra);
        // one pass per (stage, r) of the stage's own list: 3 passes, not 4
        assert.deepEqual(
          p.jobs.map((st) => st.map((pass) => pass[0]!.r)),
          stageRList,
          what,
        );
        for (const job of p.jobs.flat(2)) await runBlockJob(store, job);
        const filter = await linksHere(store, plan, p);
        assert.deepEqual(filter!.summary, one.filtered.summary, what);
        const merged: ScoringPlan = { n, rList: plan.rList, stageRList, variants: [...plan.variants, filter!.variant] };
        const patch = await mergeAsJobs(store, merged, p);
        assert.ok(bytes(patch[0]!).equals(bytes(one.variants[0]!.patch)), `${what}: variant 0 differs`);
        assert.ok(bytes(patch[1]!).equals(bytes(one.filtered.patch)), `${what}: the filtered variant differs`);
      }
  } finally {
    await cleanup();
  }
});

test('--project on the cluster (fast, int8, and fast with patch energy; with the filter): basis jobs give the batch bases; block jobs project on them; the merge = scorePlan to float rounding', async () => {
  const { dir, cleanup } = await tempDir('cluster-project');
  try {
    const n = 20,
      K = 6;
    const stages = repeatedDefectStages(n); // LNAMD keeps stage 0's 16 channels
    const cases = [{ precision: 'fast' }, { precision: 'int8' }, { precision: 'fast', normExponent: 0.5 }] as const;
    for (const c of cases) {
      const { precision } = c;
      const energy = 'normExponent' in c ? { normExponent: c.normExponent } : {};
      const label = `${precision}${'normExponent' in c ? ` B ${c.normExponent}` : ''}`;
      const plan: ScoringPlan = { n, rList: [1, 3], variants: [zeroShotVariant(n, [0, 0.3])], repeatFilter: DEFAULT_REPEAT_FILTER };
      const one = await scorePlan(stages, plan, await kernelFor('cpu', precision), { projectChannels: K, ...energy });
      const plain = await scorePlan(stages, plan, await kernelFor('cpu', precision), energy);
      assert.ok(maxDiff(one.variants[0]!.patch, plain.variants[0]!.patch) > 1e-3, `${label}: ${K} of 16 channels changed nothing`);
      const store = new DirStore(join(dir, label.replace(/ /g, '-')));
      const ran: string[] = [];
      const coordinator = {
        o: { run: 'project-test' },
        async runJobs(jobs: ClusterJob[]) {
          for (const j of jobs) {
            ran.push(j.name);
            if (j.name === 'basis') await runBasisJob(store, j.data as BasisJobData);
            else await runScaleJob(store, j.data as ScaleJobData);
          }
        },
      } as unknown as Coordinator;
      const split = { blockImages: 3, colImages: 7 };
      const o = { precision, projectChannels: K, ...energy };
      await assert.rejects(planBlockJobs(stages, plan, o, split, store, 'project-test', {}), /need the (bases|banks' scales)/);
      const extra = await prePasses(coordinator, store, stages, plan, o, split);
      assert.deepEqual([...new Set(ran)], precision === 'int8' ? ['basis', 'scale'] : ['basis']);
      assert.equal(ran.filter((r) => r === 'basis').length, 4); // one per (stage, r)
      for (const [l, st] of extra.bases!.entries())
        for (const [k, b] of st.entries()) {
          const mine = await readBasis(store, b.key, K, 16);
          const theirs = one.bases![projectKey(l, plan.rList[k]!)]!;
          assert.ok(maxDiff(mine, theirs) <= 1e-5, `${label}: basis of stage ${l} r ${plan.rList[k]}: ${maxDiff(mine, theirs)}`);
        }
      const p = await planBlockJobs(stages, plan, o, split, store, 'project-test', extra);
      for (const job of p.jobs.flat(2)) await runBlockJob(store, job);
      const filter = await linksHere(store, plan, p);
      const merged: ScoringPlan = { n, rList: plan.rList, variants: [...plan.variants, filter!.variant] };
      const patch = await mergeAsJobs(store, merged, p);
      const d0 = maxDiff(patch[0]!, one.variants[0]!.patch),
        d1 = maxDiff(patch[1]!, one.filtered!.patch);
      console.log(
        `--project ${K} on the cluster, ${label}: max |cluster - one process| = ${d0.toExponential(2)} (filtered ${d1.toExponential(2)})`,
      );
      assert.ok(d0 <= 1e-4 && d1 <= 1e-4, `${label}: ${d0}, ${d1}`);
    }
  } finally {
    await cleanup();
  }
});
