/**
 * Score statistics of the report: ranking, confusion at a threshold, ROC curve, the F1-optimal
 * threshold and the label-free threshold suggestion.
 *
 * These functions are also the report page's own code: `pageStatsSource()` pastes their compiled
 * source (Function.prototype.toString) into report.html, so the page computes exactly what the
 * tests check here. Hence each one is self-contained: plain parameters, no imports, no module
 * state, and only calls to other functions of this file listed in PAGE_FUNCTIONS.
 *
 * Convention everywhere: an image is predicted defective (NG) when score >= threshold. Scores
 * that are not finite (NaN) are never NG and are left out of ROC, F1 and the suggestion.
 * Labels: 1 = defective, 0 = good, null = unknown.
 */

export interface Confusion {
  /** predicted NG / OK, over all images */
  ng: number;
  ok: number;
  /** over labelled images only */
  tp: number;
  fp: number;
  fn: number;
  tn: number;
  /** tp / (tp + fp); null when nothing labelled is predicted NG */
  precision: number | null;
  /** tp / (tp + fn); null without labelled defective images */
  recall: number | null;
  /** 2PR / (P + R); null when undefined */
  f1: number | null;
}

export interface RocCurve {
  /** false-positive rates, from 0 to 1 (one point per distinct score, plus the origin) */
  fpr: number[];
  /** true-positive rates */
  tpr: number[];
  /** area under the curve (trapezoids, ties as diagonal segments: sklearn roc_auc_score); null without both classes */
  auc: number | null;
}

export interface F1Threshold {
  threshold: number;
  f1: number;
  precision: number;
  recall: number;
}

export interface LabelFreeThreshold {
  /** median + 3 * 1.4826 * MAD */
  threshold: number;
  median: number;
  /** median absolute deviation from the median (unscaled) */
  mad: number;
}

export interface Histogram {
  /** bins + 1 edges from lo to hi */
  edges: number[];
  good: number[];
  defective: number[];
  unknown: number[];
}

/** Image indices by score, highest first; ties keep dataset order; non-finite scores last. */
export function rankByScore(scores: ArrayLike<number>): number[] {
  const idx: number[] = [];
  for (let i = 0; i < scores.length; i++) idx.push(i);
  const key = (i: number): number => (Number.isFinite(scores[i]) ? scores[i]! : -Infinity);
  return idx.sort((a, b) => key(b) - key(a) || a - b);
}

/** Counts at threshold t (NG iff score >= t). */
export function confusionAt(scores: ArrayLike<number>, labels: ArrayLike<number | null>, t: number): Confusion {
  let ng = 0;
  let ok = 0;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    const pos = Number.isFinite(s) && s >= t;
    if (pos) ng++;
    else ok++;
    const l = labels[i];
    if (l === 1) {
      if (pos) tp++;
      else fn++;
    } else if (l === 0) {
      if (pos) fp++;
      else tn++;
    }
  }
  const precision = tp + fp > 0 ? tp / (tp + fp) : null;
  const recall = tp + fn > 0 ? tp / (tp + fn) : null;
  const f1 = precision !== null && recall !== null && precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : null;
  return { ng, ok, tp, fp, fn, tn, precision, recall, f1 };
}

/** Labelled, finite (score, label) pairs sorted by score descending. */
export function labelledPairs(scores: ArrayLike<number>, labels: ArrayLike<number | null>): { s: number; l: number }[] {
  const out: { s: number; l: number }[] = [];
  for (let i = 0; i < scores.length; i++) {
    const l = labels[i];
    const s = scores[i]!;
    if ((l === 0 || l === 1) && Number.isFinite(s)) out.push({ s, l });
  }
  return out.sort((a, b) => b.s - a.s);
}

/**
 * ROC curve over the distinct scores (sklearn roc_curve with drop_intermediate=False): lowering
 * the threshold through each distinct score adds all images with that score at once.
 */
export function rocCurve(scores: ArrayLike<number>, labels: ArrayLike<number | null>): RocCurve {
  const p = labelledPairs(scores, labels);
  let P = 0;
  for (const x of p) P += x.l;
  const N = p.length - P;
  const fpr = [0];
  const tpr = [0];
  if (P === 0 || N === 0) return { fpr, tpr, auc: null };
  let tp = 0;
  let fp = 0;
  let auc = 0;
  for (let i = 0; i < p.length; ) {
    const s = p[i]!.s;
    const fp0 = fp;
    const tp0 = tp;
    while (i < p.length && p[i]!.s === s) {
      if (p[i]!.l === 1) tp++;
      else fp++;
      i++;
    }
    fpr.push(fp / N);
    tpr.push(tp / P);
    auc += ((fp - fp0) / N) * ((tp + tp0) / (2 * P));
  }
  return { fpr, tpr, auc };
}

/**
 * The threshold with the highest F1 over the labelled images, among the distinct scores (NG iff
 * score >= t): the F1-max of the metrics, and the threshold that reaches it. On ties the highest
 * threshold wins. null without a labelled defective image.
 */
export function bestF1Threshold(scores: ArrayLike<number>, labels: ArrayLike<number | null>): F1Threshold | null {
  const p = labelledPairs(scores, labels);
  let P = 0;
  for (const x of p) P += x.l;
  if (P === 0) return null;
  let tp = 0;
  let fp = 0;
  let best: F1Threshold | null = null;
  for (let i = 0; i < p.length; ) {
    const s = p[i]!.s;
    while (i < p.length && p[i]!.s === s) {
      if (p[i]!.l === 1) tp++;
      else fp++;
      i++;
    }
    const precision = tp / (tp + fp);
    const recall = tp / P;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    if (!best || f1 > best.f1) best = { threshold: s, f1, precision, recall };
  }
  return best;
}

/** Median of finite values (mean of the two middle ones for an even count); NaN when none. */
export function median(values: ArrayLike<number>): number {
  const v: number[] = [];
  for (let i = 0; i < values.length; i++) if (Number.isFinite(values[i])) v.push(values[i]!);
  if (v.length === 0) return NaN;
  v.sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/**
 * Label-free threshold suggestion: median + 3 * 1.4826 * MAD of the scores. In a zero-shot set
 * most images are good, so the median and MAD describe the good scores robustly (defective
 * outliers barely move them); 1.4826 * MAD estimates the standard deviation of normal data, so
 * this is a robust "3 sigma above typical" rule. null when there is no finite score.
 */
export function labelFreeThreshold(scores: ArrayLike<number>): LabelFreeThreshold | null {
  const med = median(scores);
  if (!Number.isFinite(med)) return null;
  const dev: number[] = [];
  for (let i = 0; i < scores.length; i++) if (Number.isFinite(scores[i])) dev.push(Math.abs(scores[i]! - med));
  const mad = median(dev);
  return { threshold: med + 3 * 1.4826 * mad, median: med, mad };
}

/** Finite minimum and maximum; [0, 1] when there is no finite score. */
export function scoreRange(scores: ArrayLike<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    if (!Number.isFinite(s)) continue;
    if (s < lo) lo = s;
    if (s > hi) hi = s;
  }
  return lo <= hi ? [lo, hi] : [0, 1];
}

/** Histogram of finite scores over [lo, hi] in `bins` equal bins (the last bin includes hi), split by label. */
export function scoreHistogram(scores: ArrayLike<number>, labels: ArrayLike<number | null>, lo: number, hi: number, bins: number): Histogram {
  const edges: number[] = [];
  for (let b = 0; b <= bins; b++) edges.push(lo + ((hi - lo) * b) / bins);
  const good = new Array<number>(bins).fill(0);
  const defective = new Array<number>(bins).fill(0);
  const unknown = new Array<number>(bins).fill(0);
  const width = hi - lo;
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    if (!Number.isFinite(s) || s < lo || s > hi) continue;
    const b = width > 0 ? Math.min(bins - 1, Math.floor(((s - lo) / width) * bins)) : 0;
    const l = labels[i];
    if (l === 1) defective[b]!++;
    else if (l === 0) good[b]!++;
    else unknown[b]!++;
  }
  return { edges, good, defective, unknown };
}

/** The functions pasted into the page, in order. */
const PAGE_FUNCTIONS: ((...a: never[]) => unknown)[] = [rankByScore, confusionAt, labelledPairs, rocCurve, bestF1Threshold, median, labelFreeThreshold, scoreRange, scoreHistogram];

/** JavaScript source of the statistics for the page (function declarations). */
export function pageStatsSource(): string {
  return PAGE_FUNCTIONS.map((f) => {
    const src = f.toString();
    if (!src.startsWith('function ')) throw new Error(`report stats: ${f.name} does not compile to a function declaration`);
    return src;
  }).join('\n');
}
