/**
 * (compute worker) Predict with the bank's LNAMD kept in the worker. LNAMD is per image, so the
 * bank's aggregated features Z [n, P, C'] per (stage, r) do not depend on the new images: they are
 * computed on a bank's first predict and kept (BANK_Z_CACHE_BYTES at most, the last
 * BANK_Z_CACHE_BANKS banks), and each call aggregates only its new images. The passes then run as
 * scorePlan runs them (same Z rows, same pairs, same stage-major sum), so the scores are those of
 * the plan in scoring.ts (tested). A projected bank (`--project`) projects both the bank and the new
 * images on the bank's saved bases. Without this, a one-image predict spends most of its time
 * re-aggregating the bank (README, Inspect new images).
 */
import { performance } from 'node:perf_hooks';
import type { WorkerContext } from '../compute/worker.js';
import { degreesLabel } from '../core/defaults.js';
import { checkNormExponent, layerNormImages, lnamdTarget } from '../core/lnamd.js';
import { DEFAULT_MSM_PRECISION } from '../core/kernel.js';
import { neededPairs, stagePasses } from '../core/plan.js';
import { bankBuilder, cancelledError, densityOf, imageScoreVariants, passDensity, scoreBank } from '../core/score.js';
import type { StageFeatures } from '../core/types.js';
import { kernelFor } from '../scoring/tasks.js';
import { type BankScoreSettings, degrees, type PatchResult, predictVariant } from './scoring.js';

/** Banks whose Z are kept, and the most bytes one bank's Z may take to be kept. */
export const BANK_Z_CACHE_BANKS = 2;
export const BANK_Z_CACHE_BYTES = 2 ** 30;

const cache = new Map<string, Float32Array[]>();

type BankOf = ReturnType<typeof bankBuilder>;

/** The bank's Z per pass (planPasses' order; projected on the bank's bases with `project`), from the cache or computed (and kept when small enough). */
async function bankZ(key: string, bank: StageFeatures[], s: BankScoreSettings, bankOf: BankOf): Promise<Float32Array[]> {
  const hit = cache.get(key);
  if (hit) return hit;
  const z: Float32Array[] = [];
  for (const [l, passes] of stagePasses(degrees(s), bank.length).entries()) {
    const normed = layerNormImages(bank[l]!);
    for (const { ri } of passes) z.push(await bankOf.of(bank[l]!, normed, l, s.rList[ri]!));
  }
  const bytes = z.reduce((a, x) => a + x.byteLength, 0);
  if (bytes <= BANK_Z_CACHE_BYTES) {
    cache.set(key, z);
    while (cache.size > BANK_Z_CACHE_BANKS) cache.delete(cache.keys().next().value!);
  }
  return z;
}

/** (worker) Forgets a bank's Z (closeBank). */
export function dropBankZ(key: string): void {
  for (const k of [...cache.keys()]) if (k.startsWith(`${key}/`)) cache.delete(k);
}

/** (worker) Patch scores [m, P] of new images against the bank; `key` names the bank's content. */
export async function predictTask(
  key: string,
  fresh: StageFeatures[],
  bank: StageFeatures[],
  s: BankScoreSettings,
  ctx?: WorkerContext,
): Promise<PatchResult> {
  checkNormExponent(s.normExponent, s.precision ?? DEFAULT_MSM_PRECISION);
  const kernel = await kernelFor(s.device, s.precision);
  const target = lnamdTarget(bank, undefined, s.scoreGrid, s.normExponent);
  if (s.project !== undefined && !s.projectBases) throw new Error('predict: a projected bank needs its bases');
  // the bank's bases, never the batch's: a prediction does not depend on what else is in the call
  const bankOf = bankBuilder(target, s.project, kernel.matMul, s.projectBases);
  let t0 = performance.now();
  const bz = await bankZ(`${key}/${degreesLabel(s, '/')}/${s.scoreGrid ?? ''}/${s.project ?? ''}/${s.normExponent ?? 1}`, bank, s, bankOf);
  let lnamdMs = performance.now() - t0,
    msmMs = 0;
  const m = fresh[0]!.n,
    n = bank[0]!.n,
    P = bankOf.P,
    C = bankOf.channels;
  const passes = stagePasses(degrees(s), bank.length);
  const total = passes.flat().length;
  const variant = predictVariant(m, n, s.interval);
  const plan = { n: m + n, rList: s.rList, variants: [variant] };
  const need = neededPairs(plan);
  // the bank's saved densities (a prediction does not depend on what else is in the call)
  const density = densityOf(plan, bank.length, kernel.precision, s);
  const patch = new Float64Array(m * P);
  // --density-scope image: the variant twice, on MSM's table (the maps) and on the normalised one (the image scores), as scorePlan
  const { extra, imageCopy } = imageScoreVariants(plan, undefined, density);
  const image = imageCopy ? new Float64Array(m * P) : undefined;
  let done = 0;
  const table = {
    need,
    euclidean: bankOf.euclidean,
    onBlock: (d: number, t: number) => {
      if (ctx?.cancelled()) throw cancelledError();
      ctx?.progress(done + d / t, total, 'scoring');
    },
  };
  // scorePlan's order and weights (planPasses): stage-major, each stage's fresh images normalised once
  for (const [l, mine] of passes.entries()) {
    t0 = performance.now();
    const normed = layerNormImages(fresh[l]!);
    lnamdMs += performance.now() - t0;
    for (const { ri, w } of mine) {
      t0 = performance.now();
      const z = new Float32Array((m + n) * P * C); // [new..., bank...]
      z.set(await bankOf.of(fresh[l]!, normed, l, s.rList[ri]!), 0);
      z.set(bz[done]!, m * P * C);
      lnamdMs += performance.now() - t0;
      t0 = performance.now();
      const pass = { ...table, density: passDensity(density?.[l], l, s.rList[ri]!) };
      const [scores, normalised] = await scoreBank(z, m + n, P, C, [variant, ...extra], kernel, pass);
      msmMs += performance.now() - t0;
      for (let k = 0; k < scores!.length; k++) patch[k] += scores![k]! * w;
      if (image) for (let k = 0; k < image.length; k++) image[k] += normalised![k]! * w;
      ctx?.progress(++done, total, 'scoring');
    }
  }
  return { h: target.gridH, w: target.gridW, patch, timings: { lnamdMs, msmMs }, ...(image ? { image } : {}) };
}
