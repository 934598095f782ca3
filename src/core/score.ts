/**
 * Patch scoring for one batch (subset) of images: LNAMD + MSM over every stage and every r,
 * averaged over stages, then over r (as musc.py: mean over layers per r, then mean over r).
 *
 * Streams one (stage, r) feature bank at a time: each stage is layer-normalised once, each r's
 * aggregate is built from it on the fly and dropped after its MSM pass, so peak memory is one
 * bank [N, P, C] plus one distance table [N, P, N]. Runs inside the compute worker.
 */
import { performance } from 'node:perf_hooks';
import type { StageFeatures, Interval } from './types.js';
import { layerNormImages, aggregateStage, lnamdTarget } from './lnamd.js';
import { msmScores, DEFAULT_INTERVAL, type TableOptions, type PoolOptions } from './msm.js';
import { PairKernel, DEFAULT_MSM_PRECISION, type MsmPrecision } from './msm-kernel.js';
import type { WorkerContext } from '../compute/worker.js';
import type { Device } from '../compute/session.js';

export const DEFAULT_R_LIST = [1, 3, 5];

export interface ScoreSettings {
  rList?: number[];
  interval?: Interval;
  targetChannels?: number;
  device?: Device;
  /** rows per block product (see msm.ts) */
  maxRows?: number;
  /** also return every pass's MSM scores [R, L, N, P] (for tests and ablations) */
  keepPasses?: boolean;
  /**
   * the last `references` images of every stage are known-good reference images: they join the
   * scoring pool but are not scored (few-shot MuSc, appendix A.6.1)
   */
  references?: number;
  /** 'musc-plus': score test patches by the reference images alone (appendix A.6.2) */
  mode?: 'musc' | 'musc-plus';
  /** nearest-patch distances: 'exact' (default) or 'fast' (the reference's float32 matmul form) */
  precision?: MsmPrecision;
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
  /** wall time of the LNAMD aggregation and of the MSM passes */
  timings: { lnamdMs: number; msmMs: number };
}

const kernels = new Map<string, PairKernel>();

async function kernelFor(device: Device, precision: MsmPrecision): Promise<PairKernel> {
  const key = `${device}/${precision}`;
  let k = kernels.get(key);
  if (!k) {
    k = await PairKernel.create(true, device, undefined, precision);
    kernels.set(key, k);
  }
  return k;
}

/** What a cancelled call rejects with (the CLI maps the name to exit 130). */
function cancelledError(): Error {
  const e = new Error('interrupted');
  e.name = 'InterruptedError';
  return e;
}

export function validateStages(stages: StageFeatures[], references = 0, mode: 'musc' | 'musc-plus' = 'musc'): void {
  if (stages.length === 0) throw new Error('no stages given');
  const n = stages[0].n;
  for (const [l, s] of stages.entries()) {
    if (s.n !== n) throw new Error(`stage ${l} has ${s.n} images, stage 0 has ${n}`);
    if (s.data.length !== s.n * s.h * s.w * s.c) throw new Error(`stage ${l}: data length ${s.data.length} != N*h*w*C = ${s.n}*${s.h}*${s.w}*${s.c}`);
  }
  if (!Number.isInteger(references) || references < 0 || references > n) throw new Error(`invalid reference image count ${references} for ${n} images`);
  if (mode === 'musc-plus' && references === 0) throw new Error('MuSc+ needs reference (known-good) images');
  if (n - references < 1) throw new Error('no test images to score');
  if (n < 2) throw new Error(`MuSc needs at least 2 images to score each other, got ${n}`);
}

/** (worker) LNAMD + MSM for one set of images. */
export async function scoreStages(stages: StageFeatures[], settings: ScoreSettings, ctx?: WorkerContext): Promise<ScoreResult> {
  const references = settings.references ?? 0;
  const mode = settings.mode ?? 'musc';
  validateStages(stages, references, mode);
  const rList = settings.rList ?? DEFAULT_R_LIST;
  if (rList.length === 0) throw new Error('r list is empty');
  const interval = settings.interval ?? DEFAULT_INTERVAL;
  const target = lnamdTarget(stages, settings.targetChannels);
  const nAll = stages[0].n, n = nAll - references, P = target.gridH * target.gridW, L = stages.length, R = rList.length;
  const kernel = await kernelFor(settings.device ?? 'cpu', settings.precision ?? DEFAULT_MSM_PRECISION);
  const patch = new Float64Array(n * P);
  const passes = settings.keepPasses ? new Float64Array(R * L * n * P) : undefined;
  const total = R * L;
  let done = 0;
  let lnamdMs = 0, msmMs = 0;
  // stage-major: each stage is layer-normalised once and reused for every r
  for (let l = 0; l < L; l++) {
    let t0 = performance.now();
    const normed = layerNormImages(stages[l]);
    lnamdMs += performance.now() - t0;
    for (let ri = 0; ri < R; ri++) {
      t0 = performance.now();
      const z = aggregateStage(stages[l], normed, rList[ri], target);
      lnamdMs += performance.now() - t0;
      t0 = performance.now();
      const opts: TableOptions & PoolOptions = {
        scored: n,
        referencesOnly: mode === 'musc-plus',
        maxRows: settings.maxRows,
        onBlock: (d, t) => {
          if (ctx?.cancelled()) throw cancelledError();
          ctx?.progress(done + d / t, total, 'scoring');
        },
      };
      const s = await msmScores(z, nAll, P, target.channels, interval, kernel, opts);
      msmMs += performance.now() - t0;
      const wgt = 1 / (L * R);
      for (let k = 0; k < n * P; k++) patch[k] += s[k] * wgt;
      passes?.set(s, (ri * L + l) * n * P);
      ctx?.progress(++done, total, 'scoring');
    }
  }
  return { n, h: target.gridH, w: target.gridW, patch, passes, timings: { lnamdMs, msmMs } };
}
