/**
 * Pool plans: which images each scored image is scored against. Every way of running MuSc is a
 * plan over one feature batch of N images (indices 0..N-1):
 *   zero-shot         every image against all the others               (paper §3.3)
 *   --divide subsets  every image against the others of its subset     (appendix, divide_num)
 *   few-shot          test images against the other test images + K known-good references (A.6.1)
 *   MuSc+             test images against the references alone, nearest distance (A.6.2)
 *   ablations         any number of the above (and other reductions) over the same batch
 *
 * A plan needs the distance a(i, p, j) (eq. 5) for every scored i and every j in i's pool; the
 * scoring engine (score.ts) computes each needed pair's product once, however many variants use it,
 * and reduces each variant's pool (eq. 6). A plan can be cut into (stage, r, query block, reference
 * block) pieces (msm.ts tableBlocks): their partial tables merge into the same table.
 */
import type { Interval } from './types.js';
import { intervalBounds } from './msm.js';
import { linkRIndex, type RepeatFilterOptions } from './repeats.js';

/** How a pool's sorted distances a(i, p, j) become a patch score. */
export type Reduction = { kind: 'interval'; interval: Interval } | { kind: 'min' } | { kind: 'max' } | { kind: 'mean' };

/** One way of scoring: which images are scored, against which pools, with which reduction. */
export interface PoolVariant {
  /** [S] images scored (indices into the feature batch) */
  scored: number[];
  /** pools: lists of image indices (an image is never scored against itself) */
  pools: number[][];
  /** [S] pool index of each scored image */
  poolOf: number[];
  reduce: Reduction;
}

/** What to score over one feature batch: every variant, for every stage and every r in rList. */
export interface ScoringPlan {
  /** images in the feature batch */
  n: number;
  /** LNAMD aggregation degrees */
  rList: number[];
  /**
   * Per-stage degrees: stage l is aggregated at stageRList[l] only (each a subset of rList), and a
   * patch's score is the mean over stages of each stage's mean over its degrees. Absent: every
   * stage at every r of rList (the paper's). The one-process engine, the cluster's jobs and banks
   * all run it through planPasses / stagePasses.
   */
  stageRList?: number[][];
  variants: PoolVariant[];
  /**
   * The repeated-anomaly filter (repeats.ts) on variant 0, which must be zero-shot over the whole
   * batch: the engine adds the filtered variant (PlanScores.filtered).
   */
  repeatFilter?: RepeatFilterOptions;
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** Zero-shot MuSc: every image of [0, n) against all the others. */
export function zeroShotVariant(n: number, interval: Interval): PoolVariant {
  const all = range(0, n);
  return { scored: all, pools: [all], poolOf: all.map(() => 0), reduce: { kind: 'interval', interval } };
}

/** --divide: every image against the others of its subset (subsets partition the scored images). */
export function subsetsVariant(subsets: number[][], interval: Interval, reduce: Reduction = { kind: 'interval', interval }): PoolVariant {
  const scored = subsets.flat();
  const poolOf = subsets.flatMap((s, si) => s.map(() => si));
  return { scored, pools: subsets, poolOf, reduce };
}

/** Few-shot MuSc (test images + references in one pool) or MuSc+ (references alone, nearest). */
export function referenceVariant(test: number[], refs: number[], mode: 'musc' | 'musc-plus', interval: Interval): PoolVariant {
  if (refs.length === 0) throw new Error(mode === 'musc-plus' ? 'MuSc+ needs reference (known-good) images' : 'no reference images');
  const plus = mode === 'musc-plus';
  return {
    scored: test,
    pools: [plus ? refs : [...test, ...refs]],
    poolOf: test.map(() => 0),
    reduce: plus ? { kind: 'min' } : { kind: 'interval', interval },
  };
}

/**
 * The plan of one scorePatches call: the first n - references images are scored; the last
 * `references` are known-good references (few-shot, or MuSc+ with mode 'musc-plus').
 */
export function batchPlan(
  n: number,
  rList: number[],
  interval: Interval,
  references = 0,
  mode: 'musc' | 'musc-plus' = 'musc',
): ScoringPlan {
  const variant =
    references > 0 ? referenceVariant(range(0, n - references), range(n - references, n), mode, interval) : zeroShotVariant(n, interval);
  return { n, rList, variants: [variant] };
}

/** The plan's r list for per-stage degrees: every degree of any stage, ascending. */
export function unionRList(stageRList: number[][]): number[] {
  return [...new Set(stageRList.flat())].sort((a, b) => a - b);
}

/** One MSM pass of a plan: stage l at rList[ri], weighted in the patch score's mean. */
export interface PlanPass {
  l: number;
  ri: number;
  w: number;
}

/**
 * The passes of a plan over L stages, stage-major: every (stage, r) it scores, with the weight that
 * makes the patch score the mean over stages of each stage's mean over its degrees (1 / (L R) when
 * every stage has the whole rList).
 */
export function planPasses(plan: Pick<ScoringPlan, 'rList' | 'stageRList'>, L: number): PlanPass[] {
  const lists = plan.stageRList ?? Array.from({ length: L }, () => plan.rList);
  if (lists.length !== L) throw new Error(`per-stage r lists for ${lists.length} stages, the features have ${L}`);
  return lists
    .flatMap((list, l) => {
      if (list.length === 0 || new Set(list).size !== list.length)
        throw new Error(`stage ${l}: its r list must be non-empty, without repeats`);
      return list.map((r) => {
        const ri = plan.rList.indexOf(r);
        if (ri < 0) throw new Error(`stage ${l}: r = ${r} is not in the plan's r list ${plan.rList.join(',')}`);
        return { l, ri, w: 1 / (L * list.length) };
      });
    })
    .sort((a, b) => a.l - b.l || a.ri - b.ri);
}

/** planPasses grouped by stage: [L][k], stage l's k-th pass (ascending r index); the cluster's jobs are laid out so. */
export function stagePasses(plan: Pick<ScoringPlan, 'rList' | 'stageRList'>, L: number): PlanPass[][] {
  const passes = planPasses(plan, L);
  return Array.from({ length: L }, (_, l) => passes.filter((p) => p.l === l));
}

/**
 * The rList index of the repeated-anomaly filter's link table (with stage 0): stage 0's smallest r
 * (repeats.ts linkRIndex), so one-process and cluster runs link at the same table.
 */
export function linkTableRIndex(plan: Pick<ScoringPlan, 'rList' | 'stageRList'>): number {
  const list0 = plan.stageRList?.[0] ?? plan.rList;
  return plan.rList.indexOf(list0[linkRIndex(list0)]!);
}

/** The rank range [kLo, kHi) of a reduction over M values. */
export function reductionBounds(m: number, r: Reduction): [number, number] {
  if (m < 1) throw new Error('an image needs at least one other image in its pool');
  switch (r.kind) {
    case 'min':
      return [0, 1];
    case 'max':
      return [m - 1, m];
    case 'mean':
      return [0, m];
    case 'interval':
      return intervalBounds(m, r.interval);
  }
}

/** Throws a clear error for a plan that cannot be scored. */
export function validatePlan(plan: ScoringPlan): void {
  const { n } = plan;
  if (plan.rList.length === 0) throw new Error('r list is empty');
  for (const r of plan.rList)
    if (!Number.isInteger(r) || r < 1 || r % 2 === 0) throw new Error(`r must be an odd positive integer, got ${r}`);
  if (plan.variants.length === 0) throw new Error('the plan has no variant');
  const inBatch = (i: number): boolean => Number.isInteger(i) && i >= 0 && i < n;
  for (const [vi, v] of plan.variants.entries()) {
    if (v.scored.length !== v.poolOf.length) throw new Error(`variant ${vi}: scored and poolOf differ in length`);
    if (v.scored.length === 0) throw new Error('no test images to score');
    for (const pool of v.pools) if (!pool.every(inBatch)) throw new Error(`variant ${vi}: a pool holds an image outside the batch of ${n}`);
    v.scored.forEach((i, s) => {
      if (!inBatch(i)) throw new Error(`variant ${vi}: scored image ${i} is outside the batch of ${n}`);
      const pool = v.pools[v.poolOf[s]!];
      if (!pool) throw new Error(`variant ${vi}: image ${i} has no pool ${v.poolOf[s]}`);
      if (pool.filter((j) => j !== i).length < 1) throw new Error(`variant ${vi}: image ${i} has an empty pool`);
    });
  }
  if (plan.repeatFilter) {
    const v = plan.variants[0]!;
    const zeroShot = v.scored.length === n && v.pools.length === 1 && v.pools[0]!.length === n && v.reduce.kind === 'interval';
    if (!zeroShot) throw new Error('the repeated-anomaly filter needs zero-shot scoring of the whole batch (variant 0)');
    const { fpr, minShare, maxShare } = plan.repeatFilter;
    if (!(fpr > 0 && fpr < 1)) throw new Error(`repeated-anomaly filter: fpr must be in (0, 1), got ${fpr}`);
    if (!(minShare >= 0 && maxShare <= 1 && minShare < maxShare))
      throw new Error(`repeated-anomaly filter: need 0 <= minShare < maxShare <= 1, got ${minShare}, ${maxShare}`);
  }
}

/**
 * Which ordered pairs the plan needs: need[i * n + j] = 1 when a(i, ., j) is used by a variant
 * (i scored, j in i's pool, j != i). [N * N] bytes.
 */
export function neededPairs(plan: ScoringPlan): Uint8Array {
  const { n } = plan;
  const need = new Uint8Array(n * n);
  for (const v of plan.variants) {
    v.scored.forEach((i, s) => {
      for (const j of v.pools[v.poolOf[s]!]!) if (j !== i) need[i * n + j] = 1;
    });
  }
  return need;
}
