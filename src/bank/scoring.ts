/**
 * Scoring against a bank, as plans of the scoring engine (src/core/plan.ts, src/scoring/musc.ts).
 *
 * Predict: the batch is [new images (m) ..., bank images (n) ...]; every new image is scored with
 * the bank images alone as its pool (interval mean over the n bank images, as MuSc's eq. 6), never
 * against the other new images, so a prediction does not depend on what else is in the call.
 * The pairs a plan needs are (new, bank) only: no bank x bank products.
 *
 * Leave-one-out (bank build): zero-shot MuSc on the bank, every bank image against the n - 1
 * others. For bank image i, that pool is exactly "the bank without i", so predicting image i
 * against a bank built without it gives the same patch scores (same LNAMD per image, same pairs,
 * same interval over n - 1 values; tested to 1e-6). A projected bank scores its leave-one-out in
 * folds, each fold's images on bases of the other folds' rows (projectFolds), so that no image is
 * scored on directions it shaped, as no new image is; the bases saved for predict are the whole
 * bank's.
 *
 * RsCIN (raw units): musc run's RsCIN min-max normalises the batch's image scores and averages
 * them over each image's k nearest images by image token (k in k_list, the image itself
 * included). Since the weights of each window sum to 1, undoing the normalisation gives the same
 * ranking in raw units: score = mean over k of the similarity-weighted mean of the RAW image
 * scores of the k nearest. A bank image's calibration score is this within the bank (its
 * leave-one-out image score and the others'); a new image's score is this within bank + image:
 * its own image score and the bank images' leave-one-out image scores, with the bank's tokens and
 * its own, the same k windows. It does not depend on the min and max of a batch, so thresholds
 * hold across calls.
 */

import { computeWorker, type ProgressListener } from '../compute/worker.js';
import type { MsmPrecision } from '../core/kernel.js';
import type { PoolVariant, ScoringPlan } from '../core/plan.js';
import { zeroShotVariant } from '../core/plan.js';
import type { ImageTokens, Interval, StageFeatures } from '../core/types.js';
import { appendReferences } from '../features/references.js';
import { rscin, scorePlan } from '../scoring/musc.js';

export interface BankScoreSettings {
  rList: number[];
  /** per-stage degrees, each a subset of rList (core/plan.ts ScoringPlan.stageRList) */
  stageRList?: number[][];
  interval: Interval;
  /** LNAMD's target grid G x G (default: the first stage's grid) */
  scoreGrid?: number;
  precision?: MsmPrecision;
  device?: 'cpu' | 'cuda';
  /** MSM on every (stage, r) bank projected to this many channels (`--project`; core/project.ts) */
  project?: number;
  /** with project: the bank's bases by projectKey(stage, r) (predict); absent = the batch's own (leave-one-out at build) */
  projectBases?: Record<string, Float32Array>;
  /** with project and no projectBases: held-out bases in this many folds (leave-one-out at build; core/score.ts EngineOptions.projectFolds) */
  projectFolds?: number;
  /** LNAMD's norm exponent (core/lnamd.ts; absent = 1, unit rows) */
  normExponent?: number;
  /** reference-density normalisation (core/density.ts; `--density-exponent`): one exponent, or one per stage */
  densityExponent?: number | number[];
  /** with densityExponent: the bank's densities [n, P] by projectKey(stage, r) (predict); absent = held out within the bank (leave-one-out at build) */
  densityRho?: Record<string, Float64Array>;
  /** with densityExponent: 'image' normalises only the scores image scores come from (PatchResult.image); the maps keep MSM's */
  densityScope?: 'all' | 'image';
}

export interface PatchResult {
  h: number;
  w: number;
  /** [S, h * w] */
  patch: Float64Array;
  timings: { lnamdMs: number; msmMs: number };
  /** with project: the bases used, by projectKey(stage, r) (what a bank saves) */
  bases?: Record<string, Float32Array>;
  /** with densityExponent at build: the whole bank's densities [n, P] by projectKey(stage, r) (what a bank saves) */
  densities?: Record<string, Float64Array>;
  /** with densityScope 'image': the density-normalised patch scores [S, P] image scores come from (`patch` keeps MSM's: the maps) */
  image?: Float64Array;
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** New images [0, m) each against the bank images [m, m + n) only (see the module comment). */
export function predictVariant(m: number, n: number, interval: Interval): PoolVariant {
  if (n < 1) throw new Error('the bank holds no images');
  return { scored: range(0, m), pools: [range(m, m + n)], poolOf: range(0, m).map(() => 0), reduce: { kind: 'interval', interval } };
}

/** Patch scores [m, P] of new images (stages [m, h, w, C]) against the bank (stages [n, h, w, C]). */
export async function scoreAgainstBank(
  fresh: StageFeatures[],
  bank: StageFeatures[],
  s: BankScoreSettings,
  onProgress?: ProgressListener,
): Promise<PatchResult> {
  const m = fresh[0]!.n,
    n = bank[0]!.n;
  const empty: ImageTokens = { n: 0, d: 0, data: new Float32Array(0) };
  const batch = appendReferences(fresh, { files: [], stages: bank, tokens: empty });
  const plan = { ...degrees(s), n: m + n, variants: [predictVariant(m, n, s.interval)] };
  const res = await scorePlan(batch, plan, engineOptions(s), onProgress);
  return { h: res.h, w: res.w, patch: res.variants[0]!.patch, timings: res.timings, ...(res.image ? { image: res.image.patch } : {}) };
}

/** A plan's LNAMD degrees of bank settings (rList, and stageRList when given). */
export function degrees(s: BankScoreSettings): Pick<ScoringPlan, 'rList' | 'stageRList'> {
  return { rList: s.rList, ...(s.stageRList ? { stageRList: s.stageRList } : {}) };
}

/** The scoring engine's options of bank settings. */
export function engineOptions(s: BankScoreSettings) {
  return {
    precision: s.precision,
    device: s.device,
    ...(s.scoreGrid !== undefined ? { targetGrid: s.scoreGrid } : {}),
    ...(s.project !== undefined ? { projectChannels: s.project } : {}),
    ...(s.projectBases ? { projectBases: s.projectBases } : {}),
    ...(s.projectFolds !== undefined ? { projectFolds: s.projectFolds } : {}),
    ...(s.normExponent !== undefined ? { normExponent: s.normExponent } : {}),
    ...(s.densityExponent !== undefined ? { densityExponent: s.densityExponent } : {}),
    ...(s.densityRho ? { densityRho: s.densityRho } : {}),
    ...(s.densityScope ? { densityScope: s.densityScope } : {}),
  };
}

/** The worker module holding banks' aggregated features (worker-tasks.ts). */
const BANK_TASKS_MODULE = new URL('./worker-tasks.js', import.meta.url).href;

/**
 * The same scores as scoreAgainstBank, with the bank's LNAMD kept in the compute worker under
 * `key` (the bank's identity, e.g. its manifest checksum): what predict uses (worker-tasks.ts).
 */
export function scoreAgainstBankCached(
  key: string,
  fresh: StageFeatures[],
  bank: StageFeatures[],
  s: BankScoreSettings,
  onProgress?: ProgressListener,
): Promise<PatchResult> {
  if (fresh.length !== bank.length) throw new Error(`new images have ${fresh.length} stages, the bank ${bank.length}`);
  const settings: BankScoreSettings = { ...degrees(s), interval: s.interval, precision: s.precision, device: s.device };
  if (s.scoreGrid !== undefined) settings.scoreGrid = s.scoreGrid;
  if (s.project !== undefined) Object.assign(settings, { project: s.project, projectBases: s.projectBases });
  if (s.normExponent !== undefined) settings.normExponent = s.normExponent;
  if (s.densityExponent !== undefined) Object.assign(settings, { densityExponent: s.densityExponent, densityRho: s.densityRho });
  if (s.densityScope !== undefined) settings.densityScope = s.densityScope;
  return computeWorker().call<PatchResult>(BANK_TASKS_MODULE, 'predictTask', [key, fresh, bank, settings], [], onProgress);
}

/** Forgets the bank's aggregated features in the compute worker. */
export async function dropCachedBank(key: string): Promise<void> {
  await computeWorker().call(BANK_TASKS_MODULE, 'dropBankZ', [key]);
}

/**
 * Leave-one-out patch scores [n, P] of the bank: zero-shot MuSc over the bank; with densityExponent
 * each image's rows on the densities of the bank without it (EngineOptions.densityHeldOut), as
 * predict against a bank built without it would score them.
 */
export async function leaveOneOut(bank: StageFeatures[], s: BankScoreSettings, onProgress?: ProgressListener): Promise<PatchResult> {
  const n = bank[0]!.n;
  const plan = { ...degrees(s), n, variants: [zeroShotVariant(n, s.interval)] };
  if (s.densityRho) throw new Error("leave-one-out: the bank's densities are its own (no densityRho)");
  const res = await scorePlan(bank, plan, { ...engineOptions(s), densityHeldOut: s.densityExponent !== undefined }, onProgress);
  const extra = {
    ...(res.bases ? { bases: res.bases } : {}),
    ...(res.densities ? { densities: res.densities } : {}),
    ...(res.image ? { image: res.image.patch } : {}),
  };
  return { h: res.h, w: res.w, patch: res.variants[0]!.patch, timings: res.timings, ...extra };
}

/** RsCIN in raw score units (see the module comment): min + span * rscin(scores). */
export function rscinRaw(scores: Float64Array, tokens: ImageTokens, kList: number[]): Float64Array {
  let lo = Infinity,
    hi = -Infinity;
  for (const v of scores) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const r = rscin(scores, tokens, kList);
  if (kList.length === 0 || kList.includes(0)) return r;
  const span = hi - lo;
  return r.map((v) => (span > 0 ? lo + span * v : lo));
}

/** A new image's classification score: RsCIN (raw units) within bank + image, the image last. */
export function predictRscin(
  imageScore: number,
  token: Float32Array,
  bankImageScores: ArrayLike<number>,
  bankTokens: ImageTokens,
  kList: number[],
): number {
  const n = bankTokens.n,
    d = bankTokens.d;
  if (token.length !== d) throw new Error(`image token has ${token.length} values, the bank's ${d}`);
  const scores = new Float64Array(n + 1);
  scores.set(Array.from(bankImageScores));
  scores[n] = imageScore;
  const data = new Float32Array((n + 1) * d);
  data.set(bankTokens.data.subarray(0, n * d));
  data.set(token, n * d);
  return rscinRaw(scores, { n: n + 1, d, data }, kList)[n]!;
}
