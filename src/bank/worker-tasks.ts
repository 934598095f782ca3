/**
 * (compute worker) Predict with the bank's LNAMD kept in the worker. LNAMD is per image, so the
 * bank's aggregated features Z [n, P, C'] per (stage, r) do not depend on the new images: they are
 * computed on a bank's first predict and kept (BANK_Z_CACHE_BYTES at most, the last
 * BANK_Z_CACHE_BANKS banks), and each call aggregates only its new images. The scoring engine
 * then scores the predict plan with the kept Z as the batch's tail (core/score.ts
 * EngineOptions.tail), so the scores are those of scoreAgainstBank (tested). A projected bank
 * (`--project`) projects both the bank and the new images on the bank's saved bases. Without
 * this, a one-image predict spends most of its time re-aggregating the bank (README, Inspect new
 * images).
 */
import { performance } from 'node:perf_hooks';
import type { WorkerContext } from '../compute/worker.js';
import { degreesLabel } from '../core/defaults.js';
import type { PairKernel } from '../core/kernel.js';
import { checkNormExponent, layerNormImages, lnamdTarget } from '../core/lnamd.js';
import { stagePasses } from '../core/plan.js';
import { bankBuilder, projectKey } from '../core/score.js';
import type { StageFeatures } from '../core/types.js';
import { kernelFor, scorePlanTask } from '../scoring/tasks.js';
import { type BankScoreSettings, degrees, engineOptions, type PatchResult, predictVariant } from './scoring.js';

/** Banks whose Z are kept, and the most bytes one bank's Z may take to be kept. */
export const BANK_Z_CACHE_BANKS = 2;
export const BANK_Z_CACHE_BYTES = 2 ** 30;

/** A bank's Z [n, P, C'] by projectKey(stage, r). */
type BankZ = Record<string, Float32Array>;

const cache = new Map<string, BankZ>();

/** The bank's Z of every pass (projected on the bank's bases with `project`), from the cache or computed (and kept when small enough). */
async function bankZ(key: string, bank: StageFeatures[], s: BankScoreSettings, kernel: PairKernel): Promise<BankZ> {
  const hit = cache.get(key);
  if (hit) return hit;
  const target = lnamdTarget(bank, undefined, s.scoreGrid, s.normExponent);
  // the bank's bases, never the batch's: a prediction does not depend on what else is in the call
  const bankOf = bankBuilder(target, s.project, kernel.matMul, s.projectBases);
  const z: BankZ = {};
  for (const [l, passes] of stagePasses(degrees(s), bank.length).entries()) {
    const normed = layerNormImages(bank[l]!);
    for (const { ri } of passes) z[projectKey(l, s.rList[ri]!)] = await bankOf.of(bank[l]!, normed, l, s.rList[ri]!);
  }
  const bytes = Object.values(z).reduce((a, x) => a + x.byteLength, 0);
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
  if (s.project !== undefined && !s.projectBases) throw new Error('predict: a projected bank needs its bases');
  const kernel = await kernelFor(s.device, s.precision);
  checkNormExponent(s.normExponent, kernel.precision);
  const t0 = performance.now();
  const bz = await bankZ(`${key}/${degreesLabel(s, '/')}/${s.scoreGrid ?? ''}/${s.project ?? ''}/${s.normExponent ?? 1}`, bank, s, kernel);
  const bankMs = performance.now() - t0;
  const m = fresh[0]!.n,
    n = bank[0]!.n;
  const plan = { ...degrees(s), n: m + n, variants: [predictVariant(m, n, s.interval)] };
  const tail = { n, of: (l: number, r: number) => bz[projectKey(l, r)]! };
  const res = await scorePlanTask(fresh, plan, { ...engineOptions(s), tail }, ctx);
  const timings = { lnamdMs: res.timings.lnamdMs + bankMs, msmMs: res.timings.msmMs };
  return { h: res.h, w: res.w, patch: res.variants[0]!.patch, timings, ...(res.image ? { image: res.image.patch } : {}) };
}
