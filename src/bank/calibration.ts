/**
 * Label-free verdicts: thresholds from the scores of images assumed (mostly) normal, and the
 * normalised score. Used by banks (the bank's leave-one-out scores) and by `musc run` (a run's
 * own scores when it has no labels).
 *
 * Verdicts follow the project's one NG rule (src/threshold.ts isNg): NG iff score >= threshold.
 *
 * Image threshold for a target false-alarm rate a (default DEFAULT_FALSE_ALARM = 1%):
 *
 *   t = median(s) + z(1 - a) * 1.4826 * MAD(s)        (src/threshold.ts madThreshold with k = z)
 *
 * z(1 - a) is the standard normal quantile (2.326 for a = 0.01): if the normal images' scores
 * were normal with the robust centre and spread, a fraction a of them would lie above t. Median
 * and MAD ignore up to half of the values, so a few defective images in the bank (or a batch that
 * is mostly good) move t very little, unlike a mean + k * sd rule or an empirical quantile (the
 * 99th percentile of 16 scores IS the largest score, i.e. the defect when there is one). The
 * normal shape is an assumption; a is a target, not a guarantee (measured: README).
 *
 * Pixel threshold: the same rule over the normal images' map maxima (not their image scores, which
 * may be a top-fraction mean: `--image-score`), so a
 * normal image's whole map stays under it with probability about 1 - a: masks of good images
 * are empty, while the pixels of a defect that makes its image stand out are marked.
 *
 * Normalised score (anomalib's convention, 0.5 = threshold), clipped to [0, 1]:
 *
 *   normalized = 0.5 + 0.5 * (s - t) / (t - median(s_normal))
 *
 * so a typical normal image scores 0 and 2t - median scores 1. Heatmaps use the same scale for
 * pixels (ColourScale: lo = median of the normal maps' medians, threshold in the middle).
 *
 * With labels, `musc run` uses the F1-optimal threshold (src/metrics f1OptimalThreshold) instead.
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../io/atomic.js';
import { f1OptimalThreshold } from '../metrics/roc.js';
import type { Decisions } from '../threshold.js';
import { isNg, madThreshold, median } from '../threshold.js';
import type { ColourScale } from './types.js';

export const DEFAULT_FALSE_ALARM = 0.01;

/** The leave-one-out scores a bank keeps (calibration.json): enough to recompute any threshold. */
export interface Calibration {
  /** the rule (documentation) */
  rule: 'median + z(1 - false_alarm) * 1.4826 * MAD';
  /** the false-alarm rate the bank was built with (the default of predict) */
  false_alarm: number;
  /** [N] classification score of each bank image (RsCIN within the bank, raw units) */
  scores: number[];
  /** [N] image score of each bank image's S x S map (the bank's image score rule) */
  image_scores: number[];
  /** [N] maximum of each bank image's map (the pixel threshold's basis); absent in older banks, whose image scores were the maxima */
  map_maxima?: number[];
  /** [N] median pixel of each bank image's map */
  map_medians: number[];
  /**
   * projected banks: the leave-one-out scores came from this many folds, each scored on bases of
   * the others (core/score.ts EngineOptions.projectFolds); absent in older projected banks, whose
   * images were scored on bases they shaped
   */
  project_folds?: number;
}

/** Thresholds and scales derived from a calibration at one false-alarm rate. */
export interface Thresholds {
  falseAlarm: number;
  /** NG iff score >= image */
  image: number;
  /** mask iff pixel >= pixel */
  pixel: number;
  /** the median of the normal scores (normalisation) */
  imageMedian: number;
  colour: ColourScale;
}

/**
 * Standard normal quantile Phi^-1(p), 0 < p < 1 (Acklam's rational approximation, relative error
 * below 1.2e-9; plenty for a threshold).
 */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`normal quantile: p must be in (0, 1), got ${p}`);
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const tail = (q: number): number =>
    (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  if (p < 0.02425) return tail(Math.sqrt(-2 * Math.log(p)));
  if (p > 1 - 0.02425) return -tail(Math.sqrt(-2 * Math.log(1 - p)));
  const q = p - 0.5,
    r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}

export function checkFalseAlarm(a: number): number {
  if (!(a > 0 && a < 0.5)) throw new RangeError(`false-alarm rate must be in (0, 0.5), got ${a}`);
  return a;
}

/** median + z(1 - a) * 1.4826 * MAD of scores assumed mostly normal (see the module comment). */
export function falseAlarmThreshold(scores: ArrayLike<number>, falseAlarm = DEFAULT_FALSE_ALARM): number {
  return madThreshold(scores, normalQuantile(1 - checkFalseAlarm(falseAlarm)));
}

/** The thresholds and scales of a calibration at a false-alarm rate (default: the bank's). */
export function thresholdsOf(
  cal: Calibration,
  falseAlarm = cal.false_alarm,
  override: { image?: number; pixel?: number } = {},
): Thresholds {
  const image = override.image ?? falseAlarmThreshold(cal.scores, falseAlarm);
  const pixel = override.pixel ?? falseAlarmThreshold(cal.map_maxima ?? cal.image_scores, falseAlarm);
  const lo = Math.min(median(cal.map_medians), pixel);
  const hi = pixel + (pixel - lo);
  return { falseAlarm, image, pixel, imageMedian: median(cal.scores), colour: { lo, hi: hi > lo ? hi : lo + 1e-12, threshold: pixel } };
}

/** anomalib-style normalised score: 0.5 at the threshold, 0 at the normal median, clipped to [0, 1]. */
export function normalizeScore(s: number, threshold: number, normalMedian: number): number {
  if (Number.isNaN(s)) return 1;
  const half = threshold - normalMedian;
  const v = half > 0 ? 0.5 + (0.5 * (s - threshold)) / half : s > threshold ? 1 : s < threshold ? 0 : 0.5;
  return Math.min(1, Math.max(0, v));
}

/** The verdict of a score: the one NG rule (src/threshold.ts isNg: NG iff score >= threshold; NaN is NG). */
export function verdictOf(s: number, threshold: number): 'OK' | 'NG' {
  return isNg(s, threshold) ? 'NG' : 'OK';
}

export interface RunVerdicts {
  /** 'f1': F1-optimal with labels; 'calibrated': the false-alarm rule over the run's own scores */
  method: 'f1' | 'calibrated';
  threshold: number;
  falseAlarm?: number;
  decisions: ('OK' | 'NG')[];
  ng: number;
}

/**
 * OK / NG for a run's classification scores: the F1-optimal threshold when labels of both kinds
 * exist, else the false-alarm rule over the run's own scores (assumes most images are good).
 */
export function runVerdicts(scores: ArrayLike<number>, labels: ArrayLike<number> | null, falseAlarm = DEFAULT_FALSE_ALARM): RunVerdicts {
  const both = labels !== null && Array.from(labels).includes(1) && Array.from(labels).includes(0);
  const f1 = both ? f1OptimalThreshold(scores, labels).threshold : NaN;
  const t = Number.isFinite(f1) ? f1 : falseAlarmThreshold(scores, falseAlarm);
  const decisions = Array.from(scores, (s) => verdictOf(s, t));
  const ng = decisions.filter((d) => d === 'NG').length;
  return Number.isFinite(f1)
    ? { method: 'f1', threshold: t, decisions, ng }
    : { method: 'calibrated', threshold: t, falseAlarm, decisions, ng };
}

/** runVerdicts as the run's Decisions (scores.csv `decision` column, metrics.json decision_*, n_ng). */
export function runDecisions(scores: ArrayLike<number>, labels: ArrayLike<number> | null, falseAlarm = DEFAULT_FALSE_ALARM): Decisions {
  const v = runVerdicts(scores, labels, falseAlarm);
  return { method: v.method === 'f1' ? 'f1' : 'false-alarm', threshold: v.threshold, decisions: v.decisions, ng: v.ng };
}

/** threshold.json: what `--threshold FILE` reads back. */
export interface ThresholdFile {
  format: 'musc-threshold';
  /** image threshold on the classification score (raw units) */
  image_threshold: number;
  pixel_threshold?: number;
  /** where it came from (bank path, false-alarm rate, report) */
  source?: string;
}

export async function writeThresholdFile(path: string, t: Omit<ThresholdFile, 'format'>): Promise<void> {
  await writeFileAtomic(path, JSON.stringify({ format: 'musc-threshold', ...t }, null, 2) + '\n');
}

/** `--threshold` value: a number, or a threshold file (threshold.json). */
export async function readThresholdArg(arg: string): Promise<{ image: number; pixel?: number }> {
  const v = Number(arg);
  if (arg.trim() !== '' && Number.isFinite(v)) return { image: v };
  let j: Partial<ThresholdFile>;
  try {
    j = JSON.parse(await readFile(arg, 'utf8')) as Partial<ThresholdFile>;
  } catch (e) {
    throw new Error(`--threshold ${arg}: not a number, and not a readable threshold file (${(e as Error).message})`);
  }
  if (j.format !== 'musc-threshold' || typeof j.image_threshold !== 'number' || !Number.isFinite(j.image_threshold)) {
    throw new Error(`--threshold ${arg}: not a musc threshold file (expected {"format": "musc-threshold", "image_threshold": number})`);
  }
  return { image: j.image_threshold, ...(typeof j.pixel_threshold === 'number' ? { pixel: j.pixel_threshold } : {}) };
}
