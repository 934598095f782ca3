/**
 * (compute worker) The scoring engine with an ONNX Runtime kernel: the functions the main thread
 * calls through `computeWorker().call(TASKS_MODULE, name, args)`. They can also be called on the
 * main thread (tests), where session.run blocks it.
 */
import { scorePlan, type EngineOptions, type PlanScores } from '../core/score.js';
import { batchPlan } from '../core/plan.js';
import { DEFAULT_INTERVAL, DEFAULT_R_LIST } from '../core/defaults.js';
import { DEFAULT_MSM_PRECISION, type MsmPrecision } from '../core/kernel.js';
import type { Interval, StageFeatures } from '../core/types.js';
import type { ScoringPlan } from '../core/plan.js';
import { DEFAULT_REPEAT_FILTER, type RepeatFilterOptions, type RepeatSummary } from '../core/repeats.js';
import { OnnxPairKernel } from '../compute/msm-kernel.js';
import type { Device } from '../compute/session.js';
import type { WorkerContext } from '../compute/worker.js';

export const TASKS_MODULE = new URL('./tasks.js', import.meta.url).href;

export interface RuntimeSettings extends EngineOptions {
  device?: Device;
  precision?: MsmPrecision;
}

/** One kernel per (device, precision) for the life of the worker: sessions are costly to build. */
const kernels = new Map<string, Promise<OnnxPairKernel>>();

export function kernelFor(device: Device = 'cpu', precision: MsmPrecision = DEFAULT_MSM_PRECISION): Promise<OnnxPairKernel> {
  const key = `${device}/${precision}`;
  let k = kernels.get(key);
  if (!k) {
    k = OnnxPairKernel.create(true, device, undefined, precision);
    k.catch(() => kernels.delete(key));
    kernels.set(key, k);
  }
  return k;
}

/** (worker) Scores a plan; progress and Ctrl-C through the worker context. */
export async function scorePlanTask(
  stages: StageFeatures[],
  plan: ScoringPlan,
  settings: RuntimeSettings = {},
  ctx?: WorkerContext,
): Promise<PlanScores> {
  const kernel = await kernelFor(settings.device, settings.precision);
  return scorePlan(stages, plan, kernel, settings, { progress: ctx?.progress.bind(ctx), cancelled: ctx?.cancelled.bind(ctx) });
}

export interface ScoreSettings extends RuntimeSettings {
  rList?: number[];
  /** per-stage degrees, each a subset of rList (ScoringPlan.stageRList) */
  stageRList?: number[][];
  interval?: Interval;
  /** the last `references` images of every stage are known-good references (few-shot, A.6.1) */
  references?: number;
  /** 'musc-plus': score test patches by the reference images alone (A.6.2) */
  mode?: 'musc' | 'musc-plus';
  /** the repeated-anomaly filter (core/repeats.ts; true = its defaults): zero-shot batches only, ignored with references */
  repeatFilter?: RepeatFilterOptions | boolean;
}

export interface ScoreResult {
  /** scored images (the reference images are not scored) */
  n: number;
  h: number;
  w: number;
  /** [N, H*W] mean over r of (mean over stages of MSM) */
  patch: Float64Array;
  /** [R, L, N, P] when keepPasses */
  passes?: Float64Array;
  /** the repeated-anomaly filter's scores [N, H*W] (what image scores come from) */
  filtered?: FilteredPatches;
  /** densityScope 'image' without the filter: variant 0 on the density-normalised tables [N, H*W] (what image scores come from) */
  image?: Float64Array;
  timings: { lnamdMs: number; msmMs: number };
}

export interface FilteredPatches {
  patch: Float64Array;
  /** what the filter left out */
  summary: RepeatSummary;
}

/** The plan of one batch (zero-shot, or test images + trailing references). */
export function planOfBatch(n: number, s: ScoreSettings): ScoringPlan {
  const references = s.references ?? 0;
  if (!Number.isInteger(references) || references < 0 || references > n)
    throw new Error(`invalid reference image count ${references} for ${n} images`);
  if (s.mode === 'musc-plus' && references === 0) throw new Error('MuSc+ needs reference (known-good) images');
  if (n - references < 1) throw new Error('no test images to score');
  const base = batchPlan(n, s.rList ?? DEFAULT_R_LIST, s.interval ?? DEFAULT_INTERVAL, references, s.mode ?? 'musc');
  const plan = s.stageRList ? { ...base, stageRList: s.stageRList } : base;
  const filter = s.repeatFilter === true ? DEFAULT_REPEAT_FILTER : s.repeatFilter || undefined;
  return filter && references === 0 ? { ...plan, repeatFilter: filter } : plan;
}

/** (worker) LNAMD + MSM for one batch of images, the scored ones first. */
export async function scoreStages(stages: StageFeatures[], settings: ScoreSettings = {}, ctx?: WorkerContext): Promise<ScoreResult> {
  const plan = planOfBatch(stages[0]?.n ?? 0, settings);
  const res = await scorePlanTask(stages, plan, settings, ctx);
  const v = res.variants[0]!;
  const f = res.filtered;
  return {
    n: plan.variants[0]!.scored.length,
    h: res.h,
    w: res.w,
    patch: v.patch,
    passes: v.passes,
    ...(f ? { filtered: { patch: f.patch, summary: f.summary } } : {}),
    ...(res.image ? { image: res.image.patch } : {}),
    timings: res.timings,
  };
}
