/**
 * Scoring on the cluster: the one-process engine (core/score.ts scorePlan) cut into block jobs.
 *
 *   plan (scoring/tasks planOfBatch) -> needed pairs -> tableBlocks(blockImages, colImages)
 *   per stage: its bank in the store; per (stage, r, block): a block job (block.ts)
 *   merge, in scorePlan's order: stage-major, then r; per row block of the (stage, r) table (the
 *   rows of one query block of images): rows [A, P, N] <- mergeBlockRows of each block result that
 *   touches them (any order gives the same rows), reduceRows; then patch += s / (L R)
 *
 * Same products (the kernel's result for a pair does not depend on the block shape), same merge,
 * same reduction per row and the same order of the float64 sums: the patch scores are bit-
 * identical to a one-process run, whatever the block split. The coordinator holds one row block
 * [A, P, N] (not the table [M, P, N] of a one-process run) plus one block result; the block jobs
 * hold only their blocks.
 */

import { DEFAULT_MSM_PRECISION } from '../core/kernel.js';
import { lnamdTarget } from '../core/lnamd.js';
import { blockSize, mergeBlockRows, type TableBlock, tableBlocks, tableRows } from '../core/msm.js';
import { neededPairs, type ScoringPlan, validatePlan } from '../core/plan.js';
import { reduceRows, validateStages } from '../core/score.js';
import type { StageFeatures } from '../core/types.js';
import type { Scorer } from '../pipeline/types.js';
import type { PatchScores, ScoreOptions } from '../scoring/musc.js';
import * as core from '../scoring/musc.js';
import { planOfBatch } from '../scoring/tasks.js';
import { putBank } from './bank.js';
import { blockKey, readPairResult } from './block.js';
import type { Coordinator } from './coordinator.js';
import type { BankRef, BlockJobData, ClusterJob } from './jobs.js';
import { readMaxAbs, scaleJobs } from './scale.js';
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

/** The block tiling of n images of P patches, and the merge's row block (the query blocks' images). */
export function clusterTiling(n: number, P: number, split: BlockSplit) {
  const side = Math.max(1, Math.round(CLUSTER_BLOCK_ROWS / P));
  const tiling = { blockImages: split.blockImages ?? side, colImages: split.colImages ?? side };
  return { tiling, rowImages: blockSize(n, P, tiling) };
}

/** The stages' banks in the store (written once; content-addressed). */
export async function putBanks(store: SharedStore, stages: StageFeatures[]): Promise<BankRef[]> {
  const banks: BankRef[] = [];
  for (const s of stages) banks.push(await putBank(store, s));
  return banks;
}

/**
 * Every block job of a plan: [stage][r] -> jobs, one per table block. int8 needs each bank's
 * max |Z| per [stage][r] (scale jobs, scale.ts); `banks` saves hashing the stages again.
 */
export async function planBlockJobs(
  stages: StageFeatures[],
  plan: ScoringPlan,
  o: ScoreOptions,
  split: BlockSplit,
  store: SharedStore,
  run: string,
  extra: { banks?: BankRef[]; maxAbs?: number[][] } = {},
) {
  const target = lnamdTarget(stages, o.targetChannels);
  const P = target.gridH * target.gridW;
  const need = neededPairs(plan);
  const { tiling, rowImages } = clusterTiling(plan.n, P, split);
  const blocks = tableBlocks(plan.n, P, need, tiling);
  const precision = o.precision ?? DEFAULT_MSM_PRECISION;
  if (precision === 'int8' && !extra.maxAbs) throw new Error("int8 block jobs need the banks' scales (scale jobs first)");
  const banks = extra.banks ?? (await putBanks(store, stages));
  const jobs: BlockJobData[][][] = banks.map((bank, l) =>
    plan.rList.map((r, ri) => {
      const maxAbs = extra.maxAbs?.[l]?.[ri];
      return blocks.map((block) => ({
        run,
        bank,
        target,
        r,
        block,
        precision,
        device: o.device ?? 'cpu',
        ...(precision === 'int8' ? { maxAbs } : {}),
        done: blockKey(bank, target, r, block, precision, precision === 'int8' ? maxAbs : undefined),
      }));
    }),
  );
  return { target, P, need, blocks, jobs, rowImages };
}

/** What one merge held and read (the coordinator's memory bound, checked by the tests). */
export interface MergeStats {
  /** table rows (of N distances each) held at once: at most rowImages * P */
  peakTableRows: number;
  /** rows a whole table [M, P, N] would have held: M * P */
  fullTableRows: number;
  /** block-result bytes read from the store */
  bytesRead: number;
}

/** Row blocks [a0, a1) of `rowImages` images over the table's rows [0, m). */
function rowBlocks(m: number, rowImages: number): [number, number][] {
  const out: [number, number][] = [];
  for (let a0 = 0; a0 < m; a0 += rowImages) out.push([a0, Math.min(m, a0 + rowImages)]);
  return out;
}

/** Reduces one (stage, r): per row block, its rows [rows, P, N] <- the block results that touch them, reduceRows. */
async function reducePass(
  store: SharedStore,
  plan: ScoringPlan,
  P: number,
  need: Uint8Array,
  blocks: TableBlock[],
  jobs: BlockJobData[],
  rowImages: number,
  stats: MergeStats,
): Promise<Float64Array[]> {
  const n = plan.n;
  const s = plan.variants.map((v) => new Float64Array(v.scored.length * P));
  const table = new Float32Array(rowImages * P * n); // one row block's rows, reused
  for (const [a0, a1] of rowBlocks(tableRows(n, need), rowImages)) {
    const rows = table.subarray(0, (a1 - a0) * P * n);
    rows.fill(0);
    stats.peakTableRows = Math.max(stats.peakTableRows, (a1 - a0) * P);
    for (const [k, b] of blocks.entries()) {
      const parts = { rows: b.i0 < a1 && b.i1 > a0, cols: b.j0 < a1 && b.j1 > a0 };
      if (!parts.rows && !parts.cols) continue;
      const res = await readPairResult(store, jobs[k]!.done, b, P, parts);
      stats.bytesRead += res.rowd2.byteLength + res.cold2!.byteLength;
      mergeBlockRows(rows, a0, a1, n, P, need, b, res);
    }
    reduceRows(rows, a0, n, P, plan.variants, s);
  }
  return s;
}

/**
 * Each variant's patch scores [S_v, P], merged from the block results in the store in scorePlan's
 * order (stage-major, then r: patch += s / (L R)). Each (stage, r) is reduced in row blocks of
 * `rowImages` images (rows reduce independently: the same bits as one table), so the coordinator
 * holds one row block [rowImages, P, N] float32, one block result part and the scores, never the
 * table [M, P, N].
 */
export async function mergeScores(
  store: SharedStore,
  plan: ScoringPlan,
  P: number,
  need: Uint8Array,
  blocks: TableBlock[],
  jobs: BlockJobData[][][],
  rowImages: number,
): Promise<{ patch: Float64Array[]; stats: MergeStats }> {
  if (!(Number.isInteger(rowImages) && rowImages >= 1)) throw new Error(`merge row block: expected a positive integer, got ${rowImages}`);
  const L = jobs.length,
    R = plan.rList.length;
  const patch = plan.variants.map((v) => new Float64Array(v.scored.length * P));
  const stats: MergeStats = { peakTableRows: 0, fullTableRows: tableRows(plan.n, need) * P, bytesRead: 0 };
  const wgt = 1 / (L * R);
  for (let l = 0; l < L; l++) {
    for (let ri = 0; ri < R; ri++) {
      const s = await reducePass(store, plan, P, need, blocks, jobs[l]![ri]!, rowImages, stats);
      s.forEach((sv, vi) => {
        const v = patch[vi]!;
        for (let k = 0; k < sv.length; k++) v[k] += sv[k]! * wgt;
      });
    }
  }
  return { patch, stats };
}

/** int8: the banks in the store and their max |Z| per [stage][r], from scale jobs on the workers (scale.ts). */
async function int8Scales(
  coordinator: Coordinator,
  store: SharedStore,
  stages: StageFeatures[],
  plan: ScoringPlan,
  o: ScoreOptions,
  split: BlockSplit,
) {
  const target = lnamdTarget(stages, o.targetChannels);
  const banks = await putBanks(store, stages);
  const { rowImages } = clusterTiling(plan.n, target.gridH * target.gridW, split);
  const jobs = scaleJobs(banks, target, plan.rList, rowImages, coordinator.o.run);
  await coordinator.runJobs(
    jobs.flat().map((data) => ({ name: 'scale', data })),
    `int8 scale of ${plan.n} images: ${jobs.flat().length} jobs`,
  );
  return { banks, maxAbs: await readMaxAbs(store, jobs) };
}

/** The pipeline's Scorer with scorePatches on the cluster; maps, RsCIN as in one process. */
export function clusterScorer(coordinator: Coordinator, store: SharedStore, split: BlockSplit): Scorer {
  return {
    async scorePatches(stages: StageFeatures[], o: ScoreOptions): Promise<PatchScores> {
      validateStages(stages);
      const plan = planOfBatch(stages[0]!.n, o);
      validatePlan(plan);
      const t0 = performance.now();
      const int8 = (o.precision ?? DEFAULT_MSM_PRECISION) === 'int8';
      const extra = int8 ? await int8Scales(coordinator, store, stages, plan, o, split) : {};
      const p = await planBlockJobs(stages, plan, o, split, store, coordinator.o.run, extra);
      const all: ClusterJob[] = p.jobs.flat(2).map((data) => ({ name: 'block', data }));
      await coordinator.runJobs(
        all,
        `scoring ${plan.n} images: ${p.blocks.length} blocks x ${stages.length} stages x ${plan.rList.length} r`,
      );
      const { patch, stats } = await mergeScores(store, plan, p.P, p.need, p.blocks, p.jobs, p.rowImages);
      const mb = (rows: number): string => ((rows * plan.n * 4) / 1e6).toFixed(1);
      coordinator.o.log?.(
        `merge: row blocks of ${p.rowImages} images, at most ${stats.peakTableRows} table rows held ` +
          `(${mb(stats.peakTableRows)} MB; the whole table: ${stats.fullTableRows} rows, ${mb(stats.fullTableRows)} MB), ` +
          `${(stats.bytesRead / 1e6).toFixed(1)} MB of block results read`,
      );
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
