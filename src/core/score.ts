/**
 * The scoring engine: LNAMD + MSM for a pool plan (plan.ts) over one feature batch, averaged over
 * stages, then over r (as musc.py: mean over layers per r, then mean over r).
 *
 * Per (stage, r): one aggregated bank Z [N, P, C'] (lnamd.ts), one nearest-distance table holding
 * every pair some variant needs (msm.ts; each pair's product computed once), then each variant's
 * pool reduction (eq. 6). Streams one (stage, r) bank at a time: each stage is layer-normalised
 * once, peak memory is one bank plus one table [M, P, N]. With the plan's repeatFilter, the
 * stage-0 link table comes first (repeatPass): its burnout links give the filtered variant, which
 * every table then reduces with the others (PlanScores.filtered). With densityExponent each table is
 * built with its nearest indices and reduced in its reference-density normalised form (density.ts);
 * the filter's links read the plain distances.
 *
 * Pure: the kernel (GEMM + reductions) is passed in; progress and cancellation are hooks. The
 * runtime (src/scoring/) runs this in the compute worker with an ONNX Runtime kernel.
 */
import type { StageFeatures } from './types.js';
import type { MatMul, PairKernel } from './kernel.js';
import { layerNormImages, aggregateStage, checkNormExponent, lnamdTarget, unitRows } from './lnamd.js';
import { allPairs, nearestDistanceTable, nearestTableWithIndices, type TableOptions } from './msm.js';
import { densityWeights, normaliseHeldOut, normaliseRows, referenceWeights } from './density.js';
import { BasisAccumulator, projectionBasis, projectRows } from './project.js';
import {
  linkTableRIndex,
  neededPairs,
  type PlanPass,
  planPasses,
  stagePasses,
  reductionBounds,
  validatePlan,
  type PoolVariant,
  type ScoringPlan,
} from './plan.js';
import { addBurnoutLinks, planBurnoutBounds, repeatVariant, type RepeatSummary } from './repeats.js';

export interface EngineOptions {
  /** LNAMD common channel count when stages differ (default: the first stage's C) */
  targetChannels?: number;
  /** LNAMD target grid G x G (default: the first stage's grid) */
  targetGrid?: number;
  /** rows per block product (see msm.ts) */
  maxRows?: number;
  /** images per column chunk (see msm.ts) */
  colImages?: number;
  /** also return every pass's MSM scores [R, L, S, P] per variant (ablations, tests) */
  keepPasses?: boolean;
  /** LNAMD's norm exponent B (lnamd.ts AggregateOptions.normExponent; default 1, unit rows; `--norm-exponent`) */
  normExponent?: number;
  /** project every (stage, r) bank on this many directions of the batch before MSM (project.ts; `--project`) */
  projectChannels?: number;
  /**
   * with projectChannels: the bases [K, C] to project on, by projectKey(stage, r), instead of the
   * batch's own (a bank's saved bases, so that new images and the bank share them); each needed one must be given
   */
  projectBases?: Record<string, Float32Array>;
  /**
   * with projectChannels and no projectBases: held-out bases. The images are split into this many
   * contiguous folds (at most N), and each fold's images are scored from the batch projected on the
   * basis of the other folds' rows, so no image is scored on directions its own rows shaped: a
   * bank's leave-one-out calibration, whose new images are never in the bank's bases. `bases` are
   * still the whole batch's. Costs up to twice the MSM (a pair across two folds is computed in
   * both) and a basis and projection per fold. Not with the repeated-anomaly filter.
   */
  projectFolds?: number;
  /**
   * reference-density normalisation (core/density.ts; `--density-exponent`): each nearest distance
   * divided by (its reference patch's MSM score / the table's median)^A; one A for every stage, or
   * one per stage (0: that stage's tables as MSM's). Needs the 'fast' kernel
   * (nearest indices), variant 0 zero-shot over the whole batch (it gives the densities) and every
   * pair needed; not with projectFolds. Absent or 0: MSM.
   */
  densityExponent?: number | number[];
  /**
   * with densityExponent: each image's rows normalised with the densities of the batch without it
   * (density.ts normaliseHeldOut): a bank's leave-one-out, equal to predicting each image against
   * the bank without it. PlanScores.densities are still the whole batch's (what the bank saves).
   */
  densityHeldOut?: boolean;
  /**
   * with densityExponent: the densities [n_ref, P] of the batch's last n_ref images, by
   * projectKey(stage, r), instead of the batch's own (predict against a bank: the bank's saved
   * ones, so that a prediction does not depend on what else is in the call); every variant's pools
   * must be those images.
   */
  densityRho?: Record<string, Float64Array>;
  /**
   * with densityExponent: 'all' (default) normalises every variant's tables; 'image' only
   * those of the scores image scores come from (the filter's, else PlanScores.image), the maps
   * and every plan variant keep MSM's distances (`--density-scope`; docs/accuracy.md, seventeenth round)
   */
  densityScope?: 'all' | 'image';
  /**
   * the (stage, r) banks [tail.n, P, C'] of the plan's last tail.n images, given rather than
   * aggregated: `stages` then hold the plan's other images only, and each pass scores [their
   * banks..., tail.of(l, r)]. Predict keeps a bank's LNAMD banks in the compute worker this way
   * (bank/worker-tasks.ts), so that a call aggregates its new images only. With projectChannels it
   * needs projectBases (the bank's); not with projectFolds or the repeated-anomaly filter.
   */
  tail?: { n: number; of(l: number, r: number): Float32Array };
}

export interface EngineHooks {
  progress?(done: number, total: number, label?: string): void;
  /** polled between block products: true stops the run with an InterruptedError */
  cancelled?(): boolean;
}

export interface VariantScores {
  /** [S, P] mean over r of (mean over stages of MSM) */
  patch: Float64Array;
  /** [R, L, S, P] when keepPasses */
  passes?: Float64Array;
}

export interface PlanScores {
  h: number;
  w: number;
  L: number;
  R: number;
  variants: VariantScores[];
  /** the repeated-anomaly filter's variant (plan.repeatFilter; absent when the batch is too small for it) */
  filtered?: FilteredScores;
  /** wall time of the LNAMD aggregation and of the MSM passes */
  timings: { lnamdMs: number; msmMs: number };
  /** with projectChannels: the basis [K, C] of every (stage, r) bank scored, by projectKey(stage, r) */
  bases?: Record<string, Float32Array>;
  /** with densityExponent (and no densityRho): each normalised (stage, r) table's densities rho [N, P], by projectKey(stage, r) */
  densities?: Record<string, Float64Array>;
  /** with densityScope 'image' and no filter: variant 0 from the density-normalised tables (what image scores come from) */
  image?: VariantScores;
}

export interface FilteredScores extends VariantScores {
  /** what the filter left out */
  summary: RepeatSummary;
}

/** What a cancelled run rejects with (the CLI maps the name to exit 130). */
export function cancelledError(): Error {
  const e = new Error('interrupted');
  e.name = 'InterruptedError';
  return e;
}

/** Checks the stages' shapes; `more`: images the plan holds beside them (EngineOptions.tail). */
export function validateStages(stages: StageFeatures[], more = 0): void {
  if (stages.length === 0) throw new Error('no stages given');
  const n = stages[0]!.n;
  for (const [l, s] of stages.entries()) {
    if (s.n !== n) throw new Error(`stage ${l} has ${s.n} images, stage 0 has ${n}`);
    if (s.data.length !== s.n * s.h * s.w * s.c)
      throw new Error(`stage ${l}: data length ${s.data.length} != N*h*w*C = ${s.n}*${s.h}*${s.w}*${s.c}`);
  }
  if (n + more < 2) throw new Error(`MuSc needs at least 2 images to score each other, got ${n + more}`);
}

/** Scores every variant of the plan (see the module comment). */
export async function scorePlan(
  stages: StageFeatures[],
  plan: ScoringPlan,
  kernel: PairKernel,
  opts: EngineOptions = {},
  hooks: EngineHooks = {},
): Promise<PlanScores> {
  const tailN = checkTail(plan, opts);
  validateStages(stages, tailN);
  if (plan.n !== stages[0]!.n + tailN) throw new Error(`the plan is for ${plan.n} images, the features hold ${stages[0]!.n + tailN}`);
  validatePlan(plan);
  checkNormExponent(opts.normExponent, kernel.precision);
  const folds = projectFolds(plan, opts);
  const density = densityOf(plan, stages.length, kernel.runIndexed ? kernel.precision : 'none', opts);
  const target = lnamdTarget(stages, opts.targetChannels, opts.targetGrid, opts.normExponent);
  const n = plan.n,
    P = target.gridH * target.gridW,
    L = stages.length,
    R = plan.rList.length;
  const bankOf = bankBuilder(target, opts.projectChannels, kernel.matMul, opts.projectBases);
  const need = neededPairs(plan);
  const passes = stagePasses(plan, L); // [L][k]: stage l's (r, weight) passes
  const total = passes.flat().length;
  let done = 0;
  const timings = { lnamdMs: 0, msmMs: 0 };
  const table: TableOptions & { need: Uint8Array } = {
    need,
    maxRows: opts.maxRows,
    colImages: opts.colImages,
    euclidean: bankOf.euclidean,
    onBlock: (d, t) => {
      if (hooks.cancelled?.()) throw cancelledError();
      hooks.progress?.(done + d / t, total, 'scoring');
    },
  };
  // the repeated-anomaly filter first: its link table's reductions (and stage 0's layer norm) are kept for the loop
  const normed0 = plan.repeatFilter ? await timed(timings, 'lnamdMs', () => layerNormImages(stages[0]!)) : null;
  const pre = normed0
    ? await timed(timings, 'msmMs', () => repeatPass(stages[0]!, normed0, plan, bankOf, kernel, table, density?.[0]))
    : null;
  if (pre) hooks.progress?.(++done, total, 'scoring'); // its pass is done: the loop skips it
  const { extra, imageCopy } = imageScoreVariants(plan, pre?.variant, density);
  const all = [...plan.variants, ...extra];
  const variants = all.map((v) => ({
    patch: new Float64Array(v.scored.length * P),
    passes: opts.keepPasses ? new Float64Array(R * L * v.scored.length * P) : undefined,
  }));
  // stage-major: each stage is layer-normalised once and reused for its every r
  for (let l = 0; l < L; l++) {
    const normed = l === 0 && normed0 ? normed0 : await timed(timings, 'lnamdMs', () => layerNormImages(stages[l]!));
    for (const { ri, w } of passes[l]!) {
      if (pre !== null && l === 0 && ri === pre.ri) {
        accumulate(variants, pre.scores, l, ri, L, w);
        continue;
      }
      const r = plan.rList[ri]!;
      let scores: Float64Array[];
      if (folds) scores = await foldedPass(stages[l]!, normed, l, r, folds, all, bankOf, kernel, table, timings);
      else {
        const z = await timed(timings, 'lnamdMs', () => withTail(bankOf.of(stages[l]!, normed, l, r), opts.tail, l, r, n));
        const pass = { ...table, density: passDensity(density?.[l], l, r) };
        scores = await timed(timings, 'msmMs', () => scoreBank(z, n, P, bankOf.channels, all, kernel, pass));
      }
      accumulate(variants, scores, l, ri, L, w);
      hooks.progress?.(++done, total, 'scoring');
    }
  }
  const filtered = pre ? { ...variants.pop()!, summary: pre.summary } : undefined;
  const image = imageCopy ? { image: variants.pop()! } : {};
  const bases = opts.projectChannels !== undefined ? { bases: bankOf.bases } : {};
  const densities = density?.some((d) => d?.record) ? { densities: density.find((d) => d?.record)!.record! } : {};
  return { h: target.gridH, w: target.gridW, L, R, variants, ...(filtered ? { filtered } : {}), ...image, timings, ...bases, ...densities };
}

/** EngineOptions.tail checked against the plan: the images it holds (0 without one). */
function checkTail(plan: ScoringPlan, opts: EngineOptions): number {
  const t = opts.tail;
  if (!t) return 0;
  if (!(Number.isInteger(t.n) && t.n >= 1 && t.n < plan.n))
    throw new Error(`tail: ${t.n} images for a plan of ${plan.n} (give 1..${plan.n - 1})`);
  if (plan.repeatFilter || opts.projectFolds !== undefined) throw new Error('tail: not with the repeated-anomaly filter or projectFolds');
  if (opts.projectChannels !== undefined && !opts.projectBases)
    throw new Error('tail: a projection needs the bases of the whole batch (projectBases)');
  return t.n;
}

/** A pass's bank [n, P, C']: the stages' images' `own`, then EngineOptions.tail's (stage l, degree r) bank when given. */
async function withTail(own: Promise<Float32Array>, tail: EngineOptions['tail'], l: number, r: number, n: number): Promise<Float32Array> {
  const z = await own;
  if (!tail) return z;
  const t = tail.of(l, r);
  if (t.length * (n - tail.n) !== z.length * tail.n)
    throw new Error(`tail: the bank of stage ${l} at r = ${r} holds ${t.length} values, not ${tail.n} images of the others' shape`);
  const out = new Float32Array(z.length + t.length);
  out.set(z);
  out.set(t, z.length);
  return out;
}

/** The key of stage l's basis at degree r in EngineOptions.projectBases and PlanScores.bases. */
export const projectKey = (l: number, r: number): string => `stage_${l}_r${r}`;

/**
 * The (stage, r) bank that MSM scores: LNAMD's features [N, P, C'] (unit, or with patch energy), projected
 * to `project` channels when given (projectRows: unit rows stay unit, energy rows keep their norm), on the
 * given basis of that (stage, r) or else on the batch's own (kept in `bases`).
 */
export function bankBuilder(
  target: ReturnType<typeof lnamdTarget>,
  project: number | undefined,
  mm: MatMul | undefined,
  given?: Record<string, Float32Array>,
) {
  const C = target.channels;
  if (project !== undefined && !(Number.isInteger(project) && project >= 2 && project <= C))
    throw new Error(`project: ${project} directions for features of ${C} LNAMD channels (give 2..${C})`);
  const bases: Record<string, Float32Array> = {};
  const basisOf = async (z: Float32Array, K: number, key: string): Promise<Float32Array> => {
    if (!given) return projectionBasis(z, C, K, mm);
    const b = given[key];
    if (b?.length !== K * C) throw new Error(`project: no basis [${K}, ${C}] given for ${key}${b ? ` (got ${b.length} values)` : ''}`);
    return b;
  };
  return {
    /** channels of the banks `of` builds, and patches per image */
    channels: project ?? C,
    /** the banks' rows are not unit vectors: MSM distances are Euclidean (msm.ts TableOptions) */
    euclidean: !unitRows(target),
    P: target.gridH * target.gridW,
    bases,
    async of(stage: StageFeatures, normed: Float32Array, l: number, r: number): Promise<Float32Array> {
      const z = aggregateStage(stage, normed, r, target);
      if (!project) return z;
      const key = projectKey(l, r);
      bases[key] ??= await basisOf(z, project, key);
      return projectRows(z, C, bases[key], mm, !unitRows(target));
    },
    /**
     * (EngineOptions.projectFolds) The unprojected bank Z [N, P, C] of (stage l, r), its whole basis
     * kept in `bases`, and `without(i0, i1)`: Z projected on the basis of the rows of every image
     * outside [i0, i1) (iterated from the whole basis: project.ts WARM_STEPS).
     */
    async heldOut(stage: StageFeatures, normed: Float32Array, l: number, r: number) {
      if (!project || given) throw new Error('held-out bases: need projected features and no given bases');
      const z = aggregateStage(stage, normed, r, target);
      const key = projectKey(l, r);
      bases[key] ??= await projectionBasis(z, C, project, mm);
      const P = target.gridH * target.gridW,
        rowLen = P * C;
      const without = async (i0: number, i1: number): Promise<Float32Array> => {
        const acc = new BasisAccumulator((stage.n - (i1 - i0)) * P, C);
        acc.add(z.subarray(0, i0 * rowLen)).add(z.subarray(i1 * rowLen));
        return projectRows(z, C, await acc.basis(project, mm, bases[key]), mm, !unitRows(target));
      };
      return { without };
    },
  };
}

/** One stage's density normalisation (EngineOptions.densityExponent): its exponent and the variant whose scores are the densities. */
export interface Density {
  exponent: number;
  variant: PoolVariant;
  /** each image's rows with the densities of the batch without it (EngineOptions.densityHeldOut) */
  heldOut?: boolean;
  /** the trailing reference images' densities by projectKey (EngineOptions.densityRho) */
  given?: Record<string, Float64Array>;
  /** where each table's own densities go, by projectKey (PlanScores.densities) */
  record?: Record<string, Float64Array>;
  /** densityScope 'image': the leading variants (the plan's) that reduce MSM's own table; the rest (the image scores') the normalised one */
  rawVariants?: number;
}

/**
 * The variants scored after the plan's: the repeated-anomaly filter's, else with densityScope 'image'
 * variant 0 once more (`imageCopy`: PlanScores.image, from the normalised tables); the one-process
 * engine and the cluster's merge alike.
 */
export function imageScoreVariants(
  plan: ScoringPlan,
  filter: PoolVariant | undefined,
  density: (Density | undefined)[] | undefined,
): { extra: PoolVariant[]; imageCopy: boolean } {
  if (filter) return { extra: [filter], imageCopy: false };
  const imageCopy = density?.some((d) => d?.rawVariants !== undefined) ?? false;
  return { extra: imageCopy ? [plan.variants[0]!] : [], imageCopy };
}

/** A stage's Density for its table at degree r (the key of its densities). */
export function passDensity(d: Density | undefined, l: number, r: number): (Density & { key: string }) | undefined {
  return d && { ...d, key: projectKey(l, r) };
}

/**
 * The plan's density normalisation per stage (EngineOptions.densityExponent; undefined where a stage's
 * exponent is 0, and for all when every one is), checked: the one-process engine and the cluster
 * (src/cluster/scorer.ts) both call this. L: the stages; `precision`: the kernel's ('none' when it
 * has no indexed graph).
 */
export function densityOf(
  plan: ScoringPlan,
  L: number,
  precision: string,
  opts: Pick<EngineOptions, 'densityExponent' | 'projectFolds' | 'densityHeldOut' | 'densityRho' | 'densityScope'>,
): (Density | undefined)[] | undefined {
  const given = opts.densityExponent;
  if (given === undefined) return undefined;
  const A = typeof given === 'number' ? Array.from({ length: L }, () => given) : given;
  if (A.length !== L) throw new Error(`densityExponent: ${A.length} exponents for ${L} stages (give one, or one per stage)`);
  if (!A.every((a) => Number.isFinite(a) && a >= 0)) throw new Error(`densityExponent: give numbers of at least 0 (0: off), got ${A}`);
  if (A.every((a) => a === 0)) return undefined;
  if (precision !== 'fast') throw new Error(`density normalisation needs the 'fast' MSM precision, not '${precision}'`);
  if (opts.projectFolds !== undefined) throw new Error('density normalisation: not with projectFolds');
  const v = plan.variants[0]!;
  if (opts.densityRho) return givenDensity(plan, A, opts.densityRho, opts.densityHeldOut, densityScope(plan, opts));
  const whole = v.scored.length === plan.n && v.pools.length === 1 && v.pools[0]!.length === plan.n;
  const need = neededPairs(plan);
  if (!whole || allPairs(plan.n).some((x, k) => x !== need[k]))
    throw new Error('density normalisation needs zero-shot scoring of the whole batch (no subsets, references or pools)');
  if (opts.densityHeldOut && (v.reduce.kind !== 'interval' || plan.repeatFilter || plan.n < 3))
    throw new Error('held-out densities: an interval reduction of at least 3 images, without the repeated-anomaly filter');
  const record: Record<string, Float64Array> = {};
  const heldOut = opts.densityHeldOut ? { heldOut: true } : {};
  const scope = densityScope(plan, opts);
  return A.map((exponent) => (exponent > 0 ? { exponent, variant: v, record, ...heldOut, ...scope } : undefined));
}

/** EngineOptions.densityScope checked: 'image' keeps the plan's variants on MSM's tables (Density.rawVariants). */
function densityScope(plan: ScoringPlan, opts: Pick<EngineOptions, 'densityScope'>): { rawVariants?: number } {
  const scope = opts.densityScope ?? 'all';
  if (scope !== 'all' && scope !== 'image') throw new Error(`densityScope: 'all' or 'image', got '${scope}'`);
  return scope === 'all' ? {} : { rawVariants: plan.variants.length };
}

/** densityOf with the references' densities given (predict): every pool is the batch's trailing references. */
function givenDensity(
  plan: ScoringPlan,
  A: number[],
  given: Record<string, Float64Array>,
  heldOut: boolean | undefined,
  scope: { rawVariants?: number },
): (Density | undefined)[] {
  if (heldOut) throw new Error('density normalisation: given densities or held-out ones, not both');
  const pool = plan.variants[0]!.pools[0]!;
  const trailing = pool.every((j, k) => j === plan.n - pool.length + k);
  if (!trailing || plan.variants.some((v) => v.pools.some((p) => p.length !== pool.length || p.some((j, k) => j !== pool[k]))))
    throw new Error("given densities: every pool must be the batch's last images (the references whose densities are given)");
  return A.map((exponent) => (exponent > 0 ? { exponent, variant: plan.variants[0]!, given, ...scope } : undefined));
}

/** The contiguous folds [i0, i1) of EngineOptions.projectFolds (null without it), checked against the plan. */
function projectFolds(plan: ScoringPlan, opts: EngineOptions): [number, number][] | null {
  const F = opts.projectFolds;
  if (F === undefined) return null;
  if (!Number.isInteger(F) || F < 2) throw new Error(`projectFolds: give an integer of at least 2, got ${F}`);
  if (opts.projectChannels === undefined || opts.projectBases) throw new Error('projectFolds: needs projectChannels and no projectBases');
  if (plan.repeatFilter) throw new Error('projectFolds: not with the repeated-anomaly filter');
  const k = Math.min(F, plan.n);
  return Array.from({ length: k }, (_, f) => [Math.floor((f * plan.n) / k), Math.floor(((f + 1) * plan.n) / k)]);
}

/** A variant's scored images within [i0, i1) (same pools), and their positions in v.scored. */
function variantWithin(v: PoolVariant, i0: number, i1: number): { sub: PoolVariant; at: number[] } {
  const at = v.scored.flatMap((i, s) => (i >= i0 && i < i1 ? [s] : []));
  return { sub: { scored: at.map((s) => v.scored[s]!), pools: v.pools, poolOf: at.map((s) => v.poolOf[s]!), reduce: v.reduce }, at };
}

/**
 * MSM scores [S_v, P] of every variant for one (stage, r) pass with held-out bases: each fold's
 * scored images from the bank projected on the basis of the other folds (EngineOptions.projectFolds).
 */
async function foldedPass(
  stage: StageFeatures,
  normed: Float32Array,
  l: number,
  r: number,
  folds: [number, number][],
  variants: PoolVariant[],
  bankOf: ReturnType<typeof bankBuilder>,
  kernel: PairKernel,
  table: TableOptions,
  clock: { lnamdMs: number; msmMs: number },
): Promise<Float64Array[]> {
  const n = stage.n,
    P = bankOf.P;
  const out = variants.map((v) => new Float64Array(v.scored.length * P));
  const z = await timed(clock, 'lnamdMs', () => bankOf.heldOut(stage, normed, l, r));
  for (const [f, [i0, i1]] of folds.entries()) {
    const parts = variants.map((v) => variantWithin(v, i0, i1));
    const subs = parts.map((x) => x.sub);
    if (subs.every((v) => v.scored.length === 0)) continue;
    const zf = await timed(clock, 'lnamdMs', () => z.without(i0, i1));
    const need = neededPairs({ n, rList: [r], variants: subs });
    const onBlock = (d: number, t: number) => table.onBlock?.(f + d / t, folds.length);
    const scores = await timed(clock, 'msmMs', () => scoreBank(zf, n, P, bankOf.channels, subs, kernel, { ...table, need, onBlock }));
    parts.forEach(({ at }, vi) => at.forEach((s, k) => out[vi]!.set(scores[vi]!.subarray(k * P, (k + 1) * P), s * P)));
  }
  return out;
}

/** f's result; its wall time added to clock[key]. */
async function timed<T>(clock: { lnamdMs: number; msmMs: number }, key: 'lnamdMs' | 'msmMs', f: () => T | Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await f();
  } finally {
    clock[key] += performance.now() - t0;
  }
}

/** Adds one pass's scores (stage l, r index ri) with its weight (planPasses) to every variant's patch scores, and to its passes [R, L, S_v, P]. */
function accumulate(variants: VariantScores[], scores: Float64Array[], l: number, ri: number, L: number, wgt: number): void {
  scores.forEach((s, vi) => {
    const v = variants[vi]!;
    for (let k = 0; k < s.length; k++) v.patch[k] += s[k]! * wgt;
    v.passes?.set(s, (ri * L + l) * s.length);
  });
}

/**
 * The repeated-anomaly filter's pass (repeats.ts): the link table (stage 0 at linkRIndex's r), the
 * burnout links of all its rows, each image's filtered pool; that table reduced for every variant
 * and the filtered one, so that the loop does not compute it again. null: too few images for the test.
 */
async function repeatPass(
  stage0: StageFeatures,
  normed0: Float32Array,
  plan: ScoringPlan,
  bankOf: ReturnType<typeof bankBuilder>,
  kernel: PairKernel,
  table: TableOptions & { need: Uint8Array },
  density: Density | undefined,
) {
  const { n } = plan;
  const bounds = planBurnoutBounds(plan);
  if (bounds === null) return null;
  const P = bankOf.P;
  const ri = linkTableRIndex(plan); // the link table: stage 0 at its smallest r
  const z = await bankOf.of(stage0, normed0, 0, plan.rList[ri]!);
  const links = new Float64Array(n * n);
  const d = passDensity(density, 0, plan.rList[ri]!);
  let head: Float64Array[] = [];
  const scored = await distanceTable(z, n, P, bankOf.channels, kernel, { ...table, density: d }, (t) => {
    addBurnoutLinks(t, 0, n, P, bounds[1], plan.repeatFilter!.fpr, links); // the links from MSM's own distances
    if (d?.rawVariants) head = reduceTable(t, n, P, plan.variants); // --density-scope image: the maps on MSM's own
  });
  const f = repeatVariant(plan, links, P, bounds);
  const tail = head.length ? [f.variant] : [...plan.variants, f.variant];
  return { ri, ...f, scores: [...head, ...reduceTable(scored, n, P, tail)] };
}

/**
 * One (stage, r) table [M, P, N] (msm.ts) as the patch scores reduce it: with `density`, normalised
 * in place (core/density.ts) after `raw` has read MSM's own distances (the filter's links), so the
 * table is held once, with its nearest indices [M, P, N] (16-bit) beside it.
 */
async function distanceTable(
  z: Float32Array,
  n: number,
  p: number,
  c: number,
  kernel: PairKernel,
  opts: TableOptions & { need: Uint8Array; density?: Density & { key: string } },
  raw?: (table: Float32Array) => void,
): Promise<Float32Array> {
  const { density, ...rest } = opts;
  if (!density) {
    const table = await nearestDistanceTable(z, n, p, c, kernel, rest);
    raw?.(table);
    return table;
  }
  const { table, index } = await nearestTableWithIndices(z, n, p, c, kernel, rest);
  raw?.(table);
  normaliseDensity(table, index, n, p, density);
  return table;
}

/** In place: a table [N, P, N] with its nearest indices, density-normalised as `d` says (Density). */
function normaliseDensity(table: Float32Array, index: Uint16Array | Int32Array, n: number, p: number, d: Density & { key: string }): void {
  if (d.given) {
    const rho = d.given[d.key];
    const nRef = d.variant.pools[0]!.length;
    if (!rho) throw new Error(`density normalisation: no densities given for ${d.key}`);
    if (rho.length !== nRef * p)
      throw new Error(
        `density normalisation: ${d.key} has ${rho.length} densities, its ${nRef} references of ${p} patches need ${nRef * p}`,
      );
    normaliseRows(table, index, 0, n, p, referenceWeights(rho, n, p, d.exponent));
    return;
  }
  const rho = reduceTable(table, n, p, [d.variant])[0]!;
  if (d.record) d.record[d.key] = rho;
  if (!d.heldOut) normaliseRows(table, index, 0, n, p, densityWeights(rho, d.exponent));
  else if (d.variant.reduce.kind === 'interval') normaliseHeldOut(table, index, n, p, d.exponent, d.variant.reduce.interval);
}

/** MSM scores [S_v, P] of every variant for one bank Z [N, P, C] (one stage, one r). */
export async function scoreBank(
  z: Float32Array,
  n: number,
  p: number,
  c: number,
  variants: PoolVariant[],
  kernel: PairKernel,
  opts: TableOptions & { need?: Uint8Array; density?: Density & { key: string } } = {},
): Promise<Float64Array[]> {
  const need = opts.need ?? neededPairs({ n, rList: [1], variants });
  const k = opts.density?.rawVariants ?? 0; // --density-scope image: the leading variants on MSM's own table
  let head: Float64Array[] = [];
  const table = await distanceTable(z, n, p, c, kernel, { ...opts, need }, (t) => {
    if (k) head = reduceTable(t, n, p, variants.slice(0, k));
  });
  return [...head, ...reduceTable(table, n, p, variants.slice(k))];
}

/**
 * Each variant's MSM scores [S_v, P] from one table [M, P, N] (eq. 6): reduceRows over all of it.
 */
export function reduceTable(table: Float32Array, n: number, p: number, variants: PoolVariant[]): Float64Array[] {
  const out = variants.map((v) => new Float64Array(v.scored.length * p));
  reduceRows(table, 0, n, p, variants, out);
  return out;
}

/**
 * Reduces the table rows of images [i0, i0 + k): `rows` [k, P, N] holds exactly those rows of the
 * table [M, P, N]; each variant's scores of the images in that range go to out[v] [S_v, P] (other
 * entries untouched). Per table row (i, p) the distances to i's pool members are sorted ascending
 * once (keys = float32 bits * 2^b + j, so ties keep image order) and every variant scoring i walks
 * them, counting only its own pool's members. A row needs nothing but its own distances, so a
 * table reduced in row blocks gives the same bits as reduced at once (the cluster's merge). A
 * variant equal to an earlier one (`--density-scope image`'s copy of variant 0 on a table that is
 * not normalised) gets that one's scores copied, not reduced again.
 */
export function reduceRows(rows: Float32Array, i0: number, n: number, p: number, variants: PoolVariant[], out: Float64Array[]): void {
  const k = rows.length / (p * n);
  if (!Number.isInteger(k)) throw new Error(`table rows: length ${rows.length} is not a multiple of P*N = ${p * n}`);
  const first = firstEqual(variants);
  const distinct = variants.flatMap((_, v) => (first[v] === v ? [v] : []));
  reduceDistinct(
    rows,
    i0,
    n,
    p,
    k,
    distinct.map((v) => variants[v]!),
    distinct.map((v) => out[v]!),
  );
  for (const [v, f] of first.entries()) {
    if (f === v) continue;
    variants[v]!.scored.forEach((i, pos) => {
      if (i >= i0 && i < i0 + k) out[v]!.set(out[f]!.subarray(pos * p, (pos + 1) * p), pos * p);
    });
  }
}

/** For each variant, the index of the first variant equal to it (the same images, pools and reduction). */
function firstEqual(variants: PoolVariant[]): number[] {
  const seen = new Map<string, number>();
  return variants.map((v, k) => {
    const key = JSON.stringify([v.scored, v.pools, v.poolOf, v.reduce]);
    if (!seen.has(key)) seen.set(key, k);
    return seen.get(key)!;
  });
}

/** reduceRows over variants that differ from each other. */
function reduceDistinct(
  rows: Float32Array,
  i0: number,
  n: number,
  p: number,
  k: number,
  variants: PoolVariant[],
  out: Float64Array[],
): void {
  const users = rowUsers(variants, n, i0, i0 + k);
  let bits = 1;
  while (2 ** bits < n) bits++;
  const mult = 2 ** bits;
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const keys = new Float64Array(n);
  for (let i = i0; i < i0 + k; i++) {
    const us = users[i - i0]!;
    if (us.length === 0) continue;
    const any = poolUnion(us, n, i);
    for (let q = 0; q < p; q++) {
      const row = ((i - i0) * p + q) * n;
      let cnt = 0;
      for (let j = 0; j < n; j++) {
        if (!any[j]) continue;
        f32[0] = rows[row + j]!;
        keys[cnt++] = u32[0]! * mult + j;
      }
      const sorted = keys.subarray(0, cnt).sort();
      for (const u of us) {
        let rank = 0,
          sum = 0;
        for (let t = 0; t < cnt && rank < u.kHi; t++) {
          const key = sorted[t]!;
          const j = key - Math.floor(key / mult) * mult;
          if (!u.member[j]) continue;
          if (rank >= u.kLo) sum += rows[row + j]!;
          rank++;
        }
        out[u.variant]![u.pos * p + q] = sum / (u.kHi - u.kLo);
      }
    }
  }
}

interface RowUser {
  variant: number;
  /** position of the image in the variant's scored list */
  pos: number;
  /** [N] 1 for pool members other than the image itself */
  member: Uint8Array;
  kLo: number;
  kHi: number;
}

/** For every table row i in [i0, i1): the variants that score image i, with their pool mask and rank range. */
function rowUsers(variants: PoolVariant[], n: number, i0: number, i1: number): RowUser[][] {
  const users: RowUser[][] = Array.from({ length: i1 - i0 }, () => []);
  variants.forEach((v, variant) => {
    v.scored.forEach((i, pos) => {
      if (i < i0 || i >= i1) return;
      const member = new Uint8Array(n);
      for (const j of v.pools[v.poolOf[pos]!]!) if (j !== i) member[j] = 1;
      const size = member.reduce((a, b) => a + b, 0);
      const [kLo, kHi] = reductionBounds(size, v.reduce);
      users[i - i0]!.push({ variant, pos, member, kLo, kHi });
    });
  });
  return users;
}

function poolUnion(us: RowUser[], n: number, i: number): Uint8Array {
  if (us.length === 1) return us[0]!.member;
  const any = new Uint8Array(n);
  for (const u of us) for (let j = 0; j < n; j++) any[j]! |= u.member[j]!;
  any[i] = 0;
  return any;
}

/**
 * Patch scores [S, P] of a variant for an r subset (indices into the plan's rList), composed as
 * scorePlan does: stage-major, patch += s(l, r) / (L * |subset|). Needs keepPasses.
 */
export function composeR(res: PlanScores, variant: number, rIdx: number[]): Float64Array {
  // planPasses over the kept passes' r indices: every stage at the subset, its weights
  const indices = Array.from({ length: res.R }, (_, ri) => ri);
  return composePasses(res, variant, planPasses({ rList: indices, stageRList: Array.from({ length: res.L }, () => rIdx) }, res.L));
}

/**
 * Patch scores [S, P] of a variant from some of its kept passes (core/plan.ts planPasses of a
 * sub-plan: per-stage lists too), summed as scorePlan sums them: patch += s(l, r) w. Needs keepPasses.
 */
export function composePasses(res: PlanScores, variant: number, use: PlanPass[]): Float64Array {
  const passes = res.variants[variant]?.passes;
  if (!passes) throw new Error('composePasses needs the passes (keepPasses)');
  const sp = passes.length / (res.R * res.L);
  const patch = new Float64Array(sp);
  for (const { l, ri, w } of use) {
    const o = (ri * res.L + l) * sp;
    for (let k = 0; k < sp; k++) patch[k] += passes[o + k]! * w;
  }
  return patch;
}
