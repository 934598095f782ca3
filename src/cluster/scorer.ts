/**
 * Scoring on the cluster: the one-process engine (core/score.ts scorePlan) cut into block jobs.
 *
 *   plan (scoring/tasks planOfBatch) -> needed pairs -> tableBlocks(blockImages, colImages)
 *   per stage: its bank in the store; per (stage, r, block): a block job (block.ts)
 *   merge, in scorePlan's order: stage-major, then r: table [M, P, N] <- mergeBlock of each
 *   block's result (any order gives the same table), reduceTable, patch += s / (L R)
 *
 * Same products (the kernel's result for a pair does not depend on the block shape), same merge,
 * same reduction and the same order of the float64 sums: the patch scores are bit-identical to
 * a one-process run, whatever the block split. The merge holds one table [M, P, N] at a time, as
 * a one-process run does; the block jobs hold only their blocks.
 */

import { DEFAULT_MSM_PRECISION } from '../core/kernel.js';
import { lnamdTarget } from '../core/lnamd.js';
import { mergeBlock, type TableBlock, tableBlocks, tableRows } from '../core/msm.js';
import { neededPairs, type ScoringPlan, validatePlan } from '../core/plan.js';
import { reduceTable, validateStages } from '../core/score.js';
import type { StageFeatures } from '../core/types.js';
import type { Scorer } from '../pipeline/types.js';
import type { PatchScores, ScoreOptions } from '../scoring/musc.js';
import * as core from '../scoring/musc.js';
import { planOfBatch } from '../scoring/tasks.js';
import { putBank } from './bank.js';
import { blockKey, decodePairResult } from './block.js';
import { ClusterError } from './connection.js';
import type { Coordinator } from './coordinator.js';
import type { BlockJobData, ClusterJob } from './jobs.js';
import type { SharedStore } from './store.js';

export interface BlockSplit {
  /** query images per block (default: about CLUSTER_BLOCK_ROWS patch rows) */
  blockImages?: number;
  /** reference images per block (default: about CLUSTER_BLOCK_ROWS patch rows) */
  colImages?: number;
}

/**
 * Default patch rows on each side of a block job: each job redoes LNAMD for its (A + B) images,
 * which costs about half its GEMM time at 4-8 images a side (P = 784: bench/cluster.json), and
 * moves (A + B) images of features for A B pairs: square blocks of about 4096 rows (5 x 5 images
 * at P = 784) keep both small while a job stays a few seconds (docs/scaling.md).
 */
export const CLUSTER_BLOCK_ROWS = 4096;

/** Every block job of a plan: [stage][r] -> jobs, one per table block. */
export async function planBlockJobs(
  stages: StageFeatures[],
  plan: ScoringPlan,
  o: ScoreOptions,
  split: BlockSplit,
  store: SharedStore,
  run: string,
) {
  const target = lnamdTarget(stages, o.targetChannels);
  const P = target.gridH * target.gridW;
  const need = neededPairs(plan);
  const side = Math.max(1, Math.round(CLUSTER_BLOCK_ROWS / P));
  const blocks = tableBlocks(plan.n, P, need, { blockImages: split.blockImages ?? side, colImages: split.colImages ?? side });
  const precision = o.precision ?? DEFAULT_MSM_PRECISION;
  if (precision === 'int8')
    throw new ClusterError(
      '--msm-precision int8 is not supported with --redis (its quantisation scale spans the whole bank); use fast or exact',
    );
  const jobs: BlockJobData[][][] = [];
  for (const s of stages) {
    const bank = await putBank(store, s);
    jobs.push(
      plan.rList.map((r) =>
        blocks.map((block) => ({
          run,
          bank,
          target,
          r,
          block,
          precision,
          device: o.device ?? 'cpu',
          done: blockKey(bank, target, r, block, precision),
        })),
      ),
    );
  }
  return { target, P, need, blocks, jobs };
}

/** Each variant's patch scores [S_v, P], merged from the block results in the store. */
export async function mergeScores(
  store: SharedStore,
  plan: ScoringPlan,
  P: number,
  need: Uint8Array,
  blocks: TableBlock[],
  jobs: BlockJobData[][][],
): Promise<Float64Array[]> {
  const n = plan.n,
    L = jobs.length,
    R = plan.rList.length;
  const m = tableRows(n, need);
  const patch = plan.variants.map((v) => new Float64Array(v.scored.length * P));
  const wgt = 1 / (L * R);
  const table = new Float32Array(m * P * n);
  for (let l = 0; l < L; l++) {
    for (let ri = 0; ri < R; ri++) {
      table.fill(0);
      for (const [k, b] of blocks.entries()) {
        const key = jobs[l]![ri]![k]!.done;
        const bytes = await store.get(key);
        if (!bytes) throw new ClusterError(`block result ${key} is missing from the store ${store.location}`);
        mergeBlock(table, m, n, P, need, b, decodePairResult(bytes, b, P, key));
      }
      reduceTable(table, n, P, plan.variants).forEach((s, vi) => {
        const v = patch[vi]!;
        for (let k = 0; k < s.length; k++) v[k] += s[k]! * wgt;
      });
    }
  }
  return patch;
}

/** The pipeline's Scorer with scorePatches on the cluster; maps, RsCIN as in one process. */
export function clusterScorer(coordinator: Coordinator, store: SharedStore, split: BlockSplit): Scorer {
  return {
    async scorePatches(stages: StageFeatures[], o: ScoreOptions): Promise<PatchScores> {
      validateStages(stages);
      const plan = planOfBatch(stages[0]!.n, o);
      validatePlan(plan);
      const t0 = performance.now();
      const p = await planBlockJobs(stages, plan, o, split, store, coordinator.o.run);
      const all: ClusterJob[] = p.jobs.flat(2).map((data) => ({ name: 'block', data }));
      await coordinator.runJobs(
        all,
        `scoring ${plan.n} images: ${p.blocks.length} blocks x ${stages.length} stages x ${plan.rList.length} r`,
      );
      const patch = await mergeScores(store, plan, p.P, p.need, p.blocks, p.jobs);
      return {
        n: plan.variants[0]!.scored.length,
        h: p.target.gridH,
        w: p.target.gridW,
        data: patch[0]!,
        timings: { lnamdMs: 0, msmMs: performance.now() - t0 },
      };
    },
    upsampleMaps: core.upsampleMaps,
    imageScoresFromMaps: core.imageScoresFromMaps,
    rscin: core.rscin,
  };
}
