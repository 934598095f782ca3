/**
 * The MuSc library API: features in, scores out. Scoring runs in the compute worker.
 *
 *   const { maps, imageScores, rscinScores } = await musc(features, { imageSize: 224 });
 *
 * `features` come from a backbone (or your own extractor): per stage [N, h, w, C] patch
 * features (channels last) and image tokens [N, D] for RsCIN.
 */
import type { MsmPrecision } from '../core/kernel.js';
import type { StageFeatures, ImageTokens, Interval } from '../core/types.js';
import type { PlanScores } from '../core/score.js';
import type { ScoringPlan } from '../core/plan.js';
import type { RepeatFilterOptions, RepeatSummary } from '../core/repeats.js';
import { validateStages } from '../core/score.js';
import { upsampleAlignCorners, gaussianSmooth, imageScores, MAX_IMAGE_SCORE, type ImageScoreRule } from '../core/maps.js';
import { rscin as rscinImpl, RSCIN_K_MVTEC } from '../core/rscin.js';
import { computeWorker, type ProgressListener } from '../compute/worker.js';
import type { Device } from '../compute/session.js';
import { TASKS_MODULE, planOfBatch, type RuntimeSettings, type ScoreResult, type ScoreSettings } from './tasks.js';

export interface ScoreOptions {
  /** LNAMD aggregation degrees (default DEFAULT_R_LIST, [1, 3, 5]) */
  rList?: number[];
  /** per-stage degrees (each a subset of rList): stage l at stageRList[l] only (core/plan.ts planPasses) */
  stageRList?: number[][];
  /** MSM interval [lo, hi) of the sorted per-image scores (default DEFAULT_INTERVAL, [0, 0.3]) */
  interval?: Interval;
  /** LNAMD common channel count when stages differ (default: the first stage's C) */
  targetChannels?: number;
  /** LNAMD target grid G x G: patch scores on it (default: the first stage's grid; `musc run --score-grid`) */
  targetGrid?: number;
  /** MSM on each (stage, r) bank projected to this many channels (core/project.ts; `musc run --project`) */
  projectChannels?: number;
  /**
   * LNAMD's norm exponent B: each patch keeps (|z| / rho)^(1 - B) of its feature energy relative to its
   * image (core/lnamd.ts; default 1, the paper's unit vectors; `musc run`'s ResNet default 0.5). Other
   * values than 1 need the 'fast' precision and no projection.
   */
  normExponent?: number;
  /**
   * Reference-density normalisation (core/density.ts; `musc run --density-exponent`): each nearest
   * distance divided by (its reference patch's MSM score / the median)^A; one A, or one per stage.
   * Absent or 0: off. Needs the
   * 'fast' precision and zero-shot scoring (no references).
   */
  densityExponent?: number | number[];
  /** with densityExponent: 'all' (default) or 'image' (only the scores image scores come from; the maps on MSM's distances) */
  densityScope?: 'all' | 'image';
  device?: Device;
  /** patch rows per row block of the MSM products (default 512) */
  maxRows?: number;
  /** the last `references` images of every stage are known-good references (few-shot) */
  references?: number;
  /** 'musc-plus': score by the references alone (needs references) */
  mode?: 'musc' | 'musc-plus';
  /** MSM distances: 'exact', 'fast' (float32 2 - 2 a.b, as the reference) or 'int8'; default DEFAULT_MSM_PRECISION */
  precision?: MsmPrecision;
  /**
   * The repeated-anomaly filter (core/repeats.ts; true = DEFAULT_REPEAT_FILTER; default off here,
   * on in `musc run`): PatchScores.filtered, the scores image scores come from. Zero-shot only.
   */
  repeatFilter?: RepeatFilterOptions | boolean;
  onProgress?: ProgressListener;
}

/** Patch scores of N images on an H x W grid: data is [N, H, W] (float64). */
export interface PatchScores {
  n: number;
  h: number;
  w: number;
  data: Float64Array;
  /** the repeated-anomaly filter's patch scores [N, H, W], from which image scores come (maps stay `data`) */
  filtered?: { data: Float64Array; summary: RepeatSummary };
  /** densityScope 'image' where the filter did not run: the density-normalised patch scores [N, H, W] image scores come from */
  image?: Float64Array;
  /** wall time spent in LNAMD and in MSM (when computed by scorePatches) */
  timings?: { lnamdMs: number; msmMs: number };
}

/**
 * Scores every variant of a pool plan (src/core/plan.ts) in the compute worker. Stage data on a
 * SharedArrayBuffer (`sharedFeatures`) is shared with the worker; other arrays are copied.
 */
export function scorePlan(
  stages: StageFeatures[],
  plan: ScoringPlan,
  settings: RuntimeSettings = {},
  onProgress?: ProgressListener,
): Promise<PlanScores> {
  validateStages(stages);
  return computeWorker().call<PlanScores>(TASKS_MODULE, 'scorePlanTask', [stages, plan, settings], [], onProgress);
}

/** LNAMD + MSM over every stage and r, averaged, for one batch (zero-shot, or with trailing references). */
export async function scorePatches(stages: StageFeatures[], opts: ScoreOptions = {}): Promise<PatchScores> {
  validateStages(stages);
  const { onProgress, ...rest } = opts;
  const settings: ScoreSettings = rest;
  planOfBatch(stages[0]!.n, settings); // settings errors before the worker starts
  const r = await computeWorker().call<ScoreResult>(TASKS_MODULE, 'scoreStages', [stages, settings], [], onProgress);
  const f = r.filtered;
  return {
    n: r.n,
    h: r.h,
    w: r.w,
    data: r.patch,
    ...(f ? { filtered: { data: f.patch, summary: f.summary } } : {}),
    ...(r.image ? { image: r.image } : {}),
    timings: r.timings,
  };
}

/**
 * Image scores [N] of patch scores: the rule on the maps upsampled to outH x outW, from the
 * repeated-anomaly filter's scores where the scoring had the filter, else from `image` (density
 * scope 'image'), else from the plain scores' maps (`maps`, when the caller has them already:
 * upsampleMaps(ps, outH, outW, smoothSigma)).
 */
export function imageScoresOf(
  ps: PatchScores,
  outH: number,
  outW: number,
  rule: ImageScoreRule = MAX_IMAGE_SCORE,
  smoothSigma = 0,
  maps?: Float32Array,
): Float64Array {
  const own = ps.filtered?.data ?? ps.image;
  const scoreMaps = own ? upsampleMaps({ ...ps, data: own }, outH, outW, smoothSigma) : (maps ?? upsampleMaps(ps, outH, outW, smoothSigma));
  return imageScores(scoreMaps, ps.n, rule);
}

/** Bilinear (align_corners=true) upsampling of patch scores to [N, outH, outW]. */
export function upsampleMaps(ps: PatchScores, outH: number, outW: number, smoothSigma = 0): Float32Array {
  const maps = upsampleAlignCorners(ps.data, ps.n, ps.h, ps.w, outH, outW);
  return smoothSigma > 0 ? gaussianSmooth(maps, ps.n, outH, outW, smoothSigma) : maps;
}

/** Image score of each map [N, H, W] -> [N]: the maximum (default here, the paper) or the rule's top-fraction mean. */
export function imageScoresFromMaps(maps: Float32Array | Float64Array, n: number, rule: ImageScoreRule = MAX_IMAGE_SCORE): Float64Array {
  return imageScores(maps, n, rule);
}

/** RsCIN re-scoring; kList [] or containing 0 returns the scores unchanged. */
export function rscin(scores: Float64Array, tokens: ImageTokens, kList: number[]): Float64Array {
  return rscinImpl(scores, tokens, kList);
}

export interface MuscResult {
  patchScores: PatchScores;
  /** [N, S, S] maps at the input size */
  maps: Float32Array;
  imageScores: Float64Array;
  rscinScores: Float64Array;
}

/**
 * The whole method on features of one batch. With `references`, the last images of the batch
 * are reference images: results cover only the first N - references (test) images.
 */
export async function musc(
  features: { stages: StageFeatures[]; imageTokens: ImageTokens },
  opts: ScoreOptions & { imageSize: number; kList?: number[]; smoothSigma?: number; imageScore?: ImageScoreRule },
): Promise<MuscResult> {
  const patchScores = await scorePatches(features.stages, opts);
  const maps = upsampleMaps(patchScores, opts.imageSize, opts.imageSize, opts.smoothSigma);
  // the paper's maximum by default; from the filtered scores with repeatFilter
  const imageScores = imageScoresOf(patchScores, opts.imageSize, opts.imageSize, opts.imageScore, opts.smoothSigma, maps);
  const t = features.imageTokens;
  const testTokens = { n: patchScores.n, d: t.d, data: t.data.subarray(0, patchScores.n * t.d) };
  const rscinScores = rscin(imageScores, testTokens, opts.kList ?? RSCIN_K_MVTEC);
  return { patchScores, maps, imageScores, rscinScores };
}
