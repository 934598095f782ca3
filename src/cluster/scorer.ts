/**
 * Scoring on the cluster: the one-process engine (core/score.ts scorePlan) cut into block jobs.
 *
 *   plan (scoring/tasks planOfBatch) -> needed pairs -> tableBlocks(blockImages, colImages)
 *   per stage: its bank in the store; per (stage, r, block): a block job (block.ts), for every
 *   (stage, r) pass of the plan (core/plan.ts stagePasses: each stage's own r list with stageRList)
 *   --project only: basis jobs first (basis.ts): the batch's basis per (stage, r), given to its
 *   block (and scale) jobs, which project their images on it
 *   int8 only: scale jobs first (scale.ts): the bank's max |Z| per (stage, r), given to its block jobs
 *   merge jobs (reduce.ts): per (stage, r), per row block of the table (the rows of one query
 *   block of images): rows [A, P, N] <- mergeBlockRows of each block result that touches them
 *   (any order gives the same rows), reduceRows -> the row block's scores
 *   the coordinator: in scorePlan's order, stage-major, then r: patch += s w (planPasses' weights)
 *
 * Same products (the kernel's result for a pair does not depend on the block shape), same merge,
 * same reduction per row and the same order of the float64 sums: the patch scores are bit-
 * identical to a one-process run, whatever the block split (with --project: to float rounding,
 * basis.ts). No process holds a table [M, P, N]:
 * a merge job holds one row block [A, P, N], the coordinator the scores; the block jobs hold
 * only their blocks.
 */

import { DEFAULT_MSM_PRECISION } from '../core/kernel.js';
import { checkNormExponent, lnamdTarget } from '../core/lnamd.js';
import { blockSize, tableBlocks, tableRows } from '../core/msm.js';
import { linkTableRIndex, neededPairs, type ScoringPlan, stagePasses, validatePlan } from '../core/plan.js';
import { type Density, densityOf, imageScoreVariants, validateStages } from '../core/score.js';
import type { StageFeatures } from '../core/types.js';
import type { Scorer } from '../pipeline/types.js';
import type { PatchScores, ScoreOptions } from '../scoring/musc.js';
import { planOfBatch } from '../scoring/tasks.js';
import { putBank } from './bank.js';
import { passKeys } from './block.js';
import { collectLinks, collectRho, collectScores, densityJobs, linksJobs, putPlan, reduceJobs, rowBlocks } from './reduce.js';
import { planBurnoutBounds, repeatVariant } from '../core/repeats.js';
import type { Coordinator } from './coordinator.js';
import { basisJobs } from './basis.js';
import type { BankRef, BlockJobData, ClusterJob, DensityRef, ProjectRef } from './jobs.js';
import { readMaxAbs, scaleJobs } from './scale.js';
import type { SharedStore } from './store.js';
import { localScorer } from '../pipeline/local-scorer.js';

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
 * Every block job of a plan: [stage][k] -> jobs, one per table block, for stage l's k-th pass
 * (core/plan.ts stagePasses: every r of rList, or the stage's own list with stageRList). int8
 * needs each bank's max |Z| per [stage][k] (scale jobs, scale.ts); `banks` saves hashing the stages again.
 */
export async function planBlockJobs(
  stages: StageFeatures[],
  plan: ScoringPlan,
  o: ScoreOptions,
  split: BlockSplit,
  store: SharedStore,
  run: string,
  extra: { banks?: BankRef[]; maxAbs?: number[][]; bases?: ProjectRef[][] } = {},
) {
  const target = lnamdTarget(stages, o.targetChannels, o.targetGrid, o.normExponent);
  const P = target.gridH * target.gridW;
  const need = neededPairs(plan);
  const passes = stagePasses(plan, stages.length);
  const { tiling, rowImages } = clusterTiling(plan.n, P, split);
  const blocks = tableBlocks(plan.n, P, need, tiling);
  const precision = o.precision ?? DEFAULT_MSM_PRECISION;
  if (precision === 'int8' && !extra.maxAbs) throw new Error("int8 block jobs need the banks' scales (scale jobs first)");
  if (o.projectChannels !== undefined && !extra.bases) throw new Error('projected block jobs need the bases (basis jobs first)');
  const banks = extra.banks ?? (await putBanks(store, stages));
  const device = o.device ?? 'cpu';
  const density = densityOf(plan, stages.length, precision, o); // --density-exponent: those stages' block results with the nearest indices
  const jobs: BlockJobData[][][] = banks.map((bank, l) =>
    passes[l]!.map(({ ri }, k) => {
      const r = plan.rList[ri]!;
      const maxAbs = precision === 'int8' ? extra.maxAbs?.[l]?.[k] : undefined;
      const basis = extra.bases?.[l]?.[k];
      const indexed = density?.[l] !== undefined;
      const keys = passKeys(bank, target, r, blocks, precision, maxAbs, basis, indexed);
      return blocks.map((block, b) => ({
        run,
        bank,
        target,
        r,
        block,
        precision,
        device,
        ...(maxAbs !== undefined ? { maxAbs } : {}),
        ...(basis ? { basis } : {}),
        ...(indexed ? { indexed } : {}),
        done: keys[b]!,
      }));
    }),
  );
  return { target, P, need, blocks, passes, jobs, rowImages, tiling };
}

/** Each stage's r list of a plan (stagePasses), as the scale jobs take them. */
export const stageRLists = (plan: ScoringPlan, L: number): number[][] => stagePasses(plan, L).map((ps) => ps.map((p) => plan.rList[p.ri]!));

/**
 * The jobs before the blocks: the banks in the store; with --project their bases per [stage][k]
 * (basis jobs, basis.ts); with int8 their max |Z| per [stage][k] (scale jobs, scale.ts, on the projected Z).
 */
export async function prePasses(
  coordinator: Coordinator,
  store: SharedStore,
  stages: StageFeatures[],
  plan: ScoringPlan,
  o: ScoreOptions,
  split: BlockSplit,
): Promise<{ banks: BankRef[]; bases?: ProjectRef[][]; maxAbs?: number[][] }> {
  checkNormExponent(o.normExponent, o.precision ?? DEFAULT_MSM_PRECISION);
  const target = lnamdTarget(stages, o.targetChannels, o.targetGrid, o.normExponent);
  const banks = await putBanks(store, stages);
  const { rowImages } = clusterTiling(plan.n, target.gridH * target.gridW, split);
  const rLists = stageRLists(plan, stages.length);
  const out: { banks: BankRef[]; bases?: ProjectRef[][]; maxAbs?: number[][] } = { banks };
  const K = o.projectChannels;
  if (K !== undefined) {
    if (!(Number.isInteger(K) && K >= 2 && K <= target.channels))
      throw new Error(`project: ${K} directions for features of ${target.channels} LNAMD channels (give 2..${target.channels})`);
    const jobs = basisJobs(banks, target, rLists, K, rowImages, coordinator.o.run, o.device ?? 'cpu');
    await coordinator.runJobs(
      jobs.flat().map((data) => ({ name: 'basis', data })),
      `projection bases (K = ${K}) of ${plan.n} images: ${jobs.flat().length} jobs`,
    );
    out.bases = jobs.map((stage) => stage.map((j) => ({ key: j.done, K })));
  }
  if ((o.precision ?? DEFAULT_MSM_PRECISION) === 'int8') {
    const jobs = scaleJobs(banks, target, rLists, rowImages, coordinator.o.run, out.bases, o.device ?? 'cpu');
    await coordinator.runJobs(
      jobs.flat().map((data) => ({ name: 'scale', data })),
      `int8 scale of ${plan.n} images: ${jobs.flat().length} jobs`,
    );
    out.maxAbs = await readMaxAbs(store, jobs);
  }
  return out;
}

/**
 * The merge as jobs (reduce.ts): one per row block of each (stage, r) table; the coordinator
 * sums their [k, P] scores and holds no table rows.
 */
async function mergeOnWorkers(
  coordinator: Coordinator,
  store: SharedStore,
  plan: ScoringPlan,
  p: Awaited<ReturnType<typeof planBlockJobs>>,
  density?: (DensityRef | undefined)[][],
) {
  const m = tableRows(plan.n, p.need);
  const rbs = rowBlocks(m, p.rowImages);
  const jobs = reduceJobs(await putPlan(store, plan), p.tiling, p.jobs, rbs, density);
  const all: ClusterJob[] = jobs.flat(2).map((data) => ({ name: 'reduce', data }));
  const mb = (rows: number): string => ((rows * plan.n * 4) / 1e6).toFixed(1);
  const peak = Math.min(p.rowImages, m) * p.P;
  await coordinator.runJobs(
    all,
    `merge: ${all.length} jobs, row blocks of ${p.rowImages} images, at most ${peak} table rows held by each ` +
      `(${mb(peak)} MB; the whole table: ${m * p.P} rows, ${mb(m * p.P)} MB)`,
  );
  return collectScores(store, plan, p.P, jobs, rbs);
}

/**
 * The repeated-anomaly filter as jobs (core/repeats.ts; the one-process engine's repeatPass): links
 * jobs over the row blocks of the link table (stage 0, linkRIndex), the links summed here, each
 * image's filtered pool. The merge then reduces the filtered variant with the others: the same bits.
 */
export async function repeatFilterOnWorkers(
  runJobs: (jobs: ClusterJob[], what: string) => Promise<void>,
  store: SharedStore,
  plan: ScoringPlan,
  p: Awaited<ReturnType<typeof planBlockJobs>>,
) {
  const bounds = planBurnoutBounds(plan);
  if (bounds === null) return null;
  const rbs = rowBlocks(tableRows(plan.n, p.need), p.rowImages);
  const link = p.passes[0]!.findIndex((q) => q.ri === linkTableRIndex(plan)); // stage 0's pass at the link r
  const pass = reduceJobs(await putPlan(store, plan), p.tiling, p.jobs, rbs)[0]![link]!;
  const jobs = linksJobs(pass, bounds[1], plan.repeatFilter!.fpr);
  await runJobs(
    jobs.map((data) => ({ name: 'links', data })),
    `repeated-anomaly filter: ${jobs.length} jobs`,
  );
  return repeatVariant(plan, await collectLinks(store, plan.n, jobs), p.P, bounds);
}

/**
 * Reference-density normalisation as jobs (--density-exponent; core/density.ts): density jobs over
 * the row blocks of every (stage, r) table of the stages with a density (`dens` [L], densityOf's:
 * undefined where a stage has none), their zero-shot scores (the densities rho); each table's rho
 * [N, P] gathered and put in the store. Returns [stage][k] the refs its merge jobs normalise with
 * (undefined for the other stages), with the density's exponent and scope (rawVariants).
 */
export async function densityOnWorkers(
  runJobs: (jobs: ClusterJob[], what: string) => Promise<void>,
  store: SharedStore,
  plan: ScoringPlan,
  p: Awaited<ReturnType<typeof planBlockJobs>>,
  dens: (Pick<Density, 'exponent' | 'rawVariants'> | undefined)[],
): Promise<(DensityRef | undefined)[][]> {
  const rbs = rowBlocks(tableRows(plan.n, p.need), p.rowImages);
  const passes = reduceJobs(await putPlan(store, plan), p.tiling, p.jobs, rbs).map((stage, l) => (dens[l] ? stage.map(densityJobs) : []));
  const all = passes.flat(2);
  await runJobs(
    all.map((data) => ({ name: 'density', data })),
    `reference densities: ${all.length} jobs`,
  );
  const out: (DensityRef | undefined)[][] = [];
  for (const [l, stage] of passes.entries()) {
    const refs: (DensityRef | undefined)[] = p.jobs[l]!.map(() => undefined);
    const d = dens[l];
    const scope = d?.rawVariants ? { rawVariants: d.rawVariants } : {};
    for (const [k, jobs] of stage.entries()) refs[k] = { exponent: d!.exponent, rho: await collectRho(store, plan.n, p.P, jobs), ...scope };
    out.push(refs);
  }
  return out;
}

/** The plan without its repeated-anomaly filter (the merge of the filtered variant runs as another variant). */
function withoutFilter(plan: ScoringPlan): ScoringPlan {
  const { repeatFilter: _, ...rest } = plan;
  return rest;
}

/** The pipeline's Scorer with scorePatches on the cluster; maps, RsCIN as in one process. */
export function clusterScorer(coordinator: Coordinator, store: SharedStore, split: BlockSplit): Scorer {
  return {
    async scorePatches(stages: StageFeatures[], o: ScoreOptions): Promise<PatchScores> {
      validateStages(stages);
      const plan = planOfBatch(stages[0]!.n, o);
      validatePlan(plan);
      const t0 = performance.now();
      const extra = await prePasses(coordinator, store, stages, plan, o, split);
      const p = await planBlockJobs(stages, plan, o, split, store, coordinator.o.run, extra);
      const all: ClusterJob[] = p.jobs.flat(2).map((data) => ({ name: 'block', data }));
      await coordinator.runJobs(all, `scoring ${plan.n} images: ${p.blocks.length} blocks x ${p.passes.flat().length} (stage, r) passes`);
      const filter = plan.repeatFilter ? await repeatFilterOnWorkers((j, w) => coordinator.runJobs(j, w), store, plan, p) : null;
      const dens = densityOf(plan, stages.length, o.precision ?? DEFAULT_MSM_PRECISION, o);
      const { extra: imageVariants, imageCopy } = imageScoreVariants(plan, filter?.variant, dens); // as scorePlan
      const merged = imageVariants.length ? { ...withoutFilter(plan), variants: [...plan.variants, ...imageVariants] } : plan;
      const density = dens ? await densityOnWorkers((j, w) => coordinator.runJobs(j, w), store, plan, p, dens) : undefined;
      const patch = await mergeOnWorkers(coordinator, store, merged, p, density);
      return {
        n: plan.variants[0]!.scored.length,
        h: p.target.gridH,
        w: p.target.gridW,
        data: patch[0]!,
        ...(filter ? { filtered: { data: patch[merged.variants.length - 1]!, summary: filter.summary } } : {}),
        ...(imageCopy ? { image: patch[merged.variants.length - 1]! } : {}),
        timings: { lnamdMs: 0, msmMs: performance.now() - t0 },
      };
    },
    upsampleMaps: localScorer.upsampleMaps,
    imageScoresOf: localScorer.imageScoresOf,
    rscin: localScorer.rscin,
  };
}
