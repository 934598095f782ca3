/**
 * `node dist/bench/cluster-exact.js [N] [P-side] [C] [splits...]`: the cluster's block path
 * (planBlockJobs -> runBlockJob -> mergeScores, in this process, through a directory store)
 * against the one-process engine (core/score.ts scorePlan) on random features; prints whether
 * the patch scores are byte-identical for each split, and per-block times and bytes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runBlockJob } from '../src/cluster/block.js';
import { mergeScores } from '../src/cluster/reduce.js';
import { planBlockJobs } from '../src/cluster/scorer.js';
import { DirStore } from '../src/cluster/store.js';
import { batchPlan } from '../src/core/plan.js';
import { scorePlan } from '../src/core/score.js';
import type { StageFeatures } from '../src/core/types.js';
import { mulberry32 } from '../src/demo/synthetic.js';
import { toFloat16 } from '../src/io/float16.js';
import { kernelFor } from '../src/scoring/tasks.js';

export interface SplitResult {
  split: string;
  blocks: number;
  identical: boolean;
  /** per block job, ms */
  loadMs: number[];
  lnamdMs: number[];
  gemmMs: number[];
  /** bytes a block job reads (stage rows) and writes (its result), mean */
  readBytes: number;
  writeBytes: number;
  wallMs: number;
}

export async function compareSplits(
  n: number,
  side: number,
  c: number,
  rList: number[],
  splits: [number, number][],
  log = console.log,
): Promise<{ oneMs: number; results: SplitResult[] }> {
  const rnd = mulberry32(7);
  const stages: StageFeatures[] = [side, Math.max(1, side >> 1)].map((s, k) => ({
    n,
    h: s,
    w: s,
    c: c * (k + 1),
    data: toFloat16(Float32Array.from({ length: n * s * s * c * (k + 1) }, () => rnd() * 2 - 1)),
  }));
  const plan = batchPlan(n, rList, [0, 0.3]);
  const kernel = await kernelFor('cpu', 'fast');
  let t0 = performance.now();
  const one = await scorePlan(stages, plan, kernel, {});
  const oneMs = performance.now() - t0;
  const ref = Buffer.from(one.variants[0]!.patch.buffer);
  log(`one process: N=${n}, P=${side * side}, C=${c}/${2 * c}, r=${rList}: ${oneMs.toFixed(0)} ms`);
  const dir = mkdtempSync(join(tmpdir(), 'musc-cluster-exact-'));
  const results: SplitResult[] = [];
  try {
    for (const [a, b] of splits) {
      const store = new DirStore(join(dir, `${a}x${b}`));
      t0 = performance.now();
      const p = await planBlockJobs(stages, plan, { precision: 'fast' }, { blockImages: a, colImages: b }, store, 'bench');
      const r: SplitResult = {
        split: `${a}x${b}`,
        blocks: p.blocks.length,
        identical: false,
        loadMs: [],
        lnamdMs: [],
        gemmMs: [],
        readBytes: 0,
        writeBytes: 0,
        wallMs: 0,
      };
      let reads = 0,
        writes = 0,
        jobs = 0;
      for (const job of p.jobs.flat(2)) {
        const t = await runBlockJob(store, job);
        r.loadMs.push(t.loadMs);
        r.lnamdMs.push(t.lnamdMs);
        r.gemmMs.push(t.gemmMs);
        const { i0, i1, j0, j1 } = job.block;
        reads += (i1 - i0 + j1 - j0) * job.bank.h * job.bank.w * job.bank.c * 2;
        writes += 8 * (i1 - i0) * (j1 - j0) * p.P;
        jobs++;
      }
      const patch = (await mergeScores(store, plan, p.P, p.need, p.blocks, p.jobs, p.rowImages)).patch[0]!;
      r.wallMs = performance.now() - t0;
      r.identical = Buffer.from(patch.buffer).equals(ref);
      r.readBytes = reads / jobs;
      r.writeBytes = writes / jobs;
      results.push(r);
      log(
        `split ${r.split}: ${r.blocks} blocks per (stage, r), ${jobs} jobs, ` +
          `${r.wallMs.toFixed(0)} ms in one process; byte-identical: ${r.identical}`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { oneMs, results };
}

const invoked = process.argv[1]?.endsWith('cluster-exact.js');
if (invoked) {
  const [n = '14', side = '8', c = '16', ...rest] = process.argv.slice(2);
  const splits = (rest.length ? rest : ['2x3', '3x4', '5x7']).map((s) => s.split('x').map(Number) as [number, number]);
  compareSplits(Number(n), Number(side), Number(c), [1, 3], splits).then(
    (r) => (process.exitCode = r.results.every((x) => x.identical) ? 0 : 1),
    (e) => {
      console.error(e);
      process.exitCode = 1;
    },
  );
}
