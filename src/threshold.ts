/**
 * OK / NG decisions: the one NG rule, and label-free deployment thresholds (turning a batch's
 * image scores into OK / NG without labels).
 *
 * The NG rule, everywhere (scores.csv `decision`, metrics.json `n_ng`, the F1-optimal threshold,
 * the report page): an image is NG iff score >= threshold (isNg). A NaN score is NG: it cannot be
 * shown to be good.
 *
 * MuSc scores every image against the rest of the batch, so the batch's own score distribution is
 * the natural reference. Two label-free rules:
 *
 *   mad   t = median(s) + k * 1.4826 * MAD(s),   MAD = median(|s - median(s)|)
 *         A robust outlier rule: 1.4826 * MAD estimates the standard deviation of the good images'
 *         scores when they are normally distributed, so k = 3 flags scores more than about three
 *         standard deviations above the typical score (DEFAULT_MAD_K). It assumes that most images of
 *         the batch (more than half) are good, as on a production line. When MAD = 0 (more than half
 *         the scores equal), sqrt(pi/2) times the mean absolute deviation from the median estimates the
 *         standard deviation instead; if that is 0 too (all scores equal), t is the next double above
 *         the median, so that nothing is NG.
 *   otsu  the two-cluster split of the sorted scores that maximises the between-class variance
 *         (Otsu's criterion, exact over every split point); t = midpoint between the largest score
 *         of the low cluster and the smallest of the high cluster. It needs no proportion, so it
 *         suits batches with many defects (benchmark test sets), but it always finds two clusters:
 *         an all-good batch gets some NG images. Needs 2 distinct scores (else t is the next double
 *         above the single score and nothing is NG).
 *
 * With labels, the F1-optimal threshold (src/metrics/evaluator.ts) is the supervised counterpart,
 * reported in metrics.json as `f1_threshold`. This module has no Node.js dependency: the report
 * page's bundle uses isNg too.
 */

export type DecisionMethod = 'mad' | 'otsu';
/** median + 3 robust standard deviations */
export const DEFAULT_MAD_K = 3;
/** 1 / Phi^-1(3/4): MAD -> standard deviation for normal data */
export const MAD_SCALE = 1.4826;

export interface DecisionRule {
  method: DecisionMethod;
  /** mad only (default DEFAULT_MAD_K) */
  k?: number;
}

/** The label-free rule used when none is chosen (the report's suggestion): mad with k = 3. */
export const DEFAULT_DECISION_RULE: Readonly<DecisionRule> = { method: 'mad', k: DEFAULT_MAD_K };

/** The NG rule: NG iff score >= threshold; NaN scores are NG. */
export function isNg(score: number, threshold: number): boolean {
  return !(score < threshold);
}

/** A label-free threshold with the statistics it came from. */
export interface LabelFreeThreshold {
  method: DecisionMethod;
  /** mad only */
  k?: number;
  /** NG iff score >= threshold */
  threshold: number;
  /** mad only: median of the finite scores */
  median?: number;
  /** mad only: median absolute deviation from the median (unscaled) */
  mad?: number;
  /** mad only: the standard deviation estimate (1.4826 MAD, or the fallback) */
  sigma?: number;
}

export interface Decisions {
  /**
   * a --decision rule, or musc run's default (src/bank/calibration.ts runDecisions): 'f1' (labels; NG iff score >= threshold)
   * or 'false-alarm'
   */
  method: DecisionMethod | 'f1' | 'false-alarm';
  /** mad only */
  k?: number;
  /** NG iff score >= threshold */
  threshold: number;
  /** [N] 'OK' | 'NG' */
  decisions: ('OK' | 'NG')[];
  ng: number;
}

/** The smallest double above a finite x (x itself when not finite). */
export function nextUp(x: number): number {
  if (!Number.isFinite(x)) return x;
  if (x === 0) return Number.MIN_VALUE;
  const f = new Float64Array([x]);
  const bits = new BigInt64Array(f.buffer);
  bits[0] = bits[0]! + (x > 0 ? 1n : -1n);
  return f[0]!;
}

const finiteSorted = (values: ArrayLike<number>): Float64Array =>
  Float64Array.from(Array.from(values).filter((x) => Number.isFinite(x))).sort();

/** Median of finite values (mean of the middle two for an even count); NaN when none. */
export function median(values: ArrayLike<number>): number {
  const v = finiteSorted(values);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** median + k * sigma with its statistics (see the module comment). */
export function madStatistics(scores: ArrayLike<number>, k = DEFAULT_MAD_K): Required<Omit<LabelFreeThreshold, 'method'>> {
  if (!(k >= 0)) throw new RangeError(`MAD threshold: k must be >= 0, got ${k}`);
  const med = median(scores);
  if (Number.isNaN(med)) throw new RangeError('MAD threshold: no finite scores');
  const dev = Array.from(scores)
    .filter((x) => Number.isFinite(x))
    .map((x) => Math.abs(x - med));
  const mad = median(dev);
  // sigma estimate: 1.4826 MAD, or sqrt(pi/2) * mean absolute deviation when MAD = 0
  const sigma = mad > 0 ? MAD_SCALE * mad : Math.sqrt(Math.PI / 2) * (dev.reduce((a, b) => a + b, 0) / dev.length);
  return { k, threshold: sigma > 0 ? med + k * sigma : nextUp(med), median: med, mad, sigma };
}

/** median + k * 1.4826 * MAD (see the module comment). */
export function madThreshold(scores: ArrayLike<number>, k = DEFAULT_MAD_K): number {
  return madStatistics(scores, k).threshold;
}

/** Otsu's two-cluster split of 1-D scores (see the module comment). */
export function otsuThreshold(scores: ArrayLike<number>): number {
  const v = finiteSorted(scores);
  const n = v.length;
  if (n === 0) throw new RangeError('Otsu threshold: no finite scores');
  if (v[0] === v[n - 1]) return nextUp(v[0]!);
  let total = 0;
  for (const x of v) total += x;
  // split after index i (low = v[0..i], high = v[i+1..n-1]) only between distinct values
  let best = -Infinity,
    bestI = -1,
    low = 0;
  for (let i = 0; i < n - 1; i++) {
    low += v[i]!;
    if (v[i] === v[i + 1]) continue;
    const n0 = i + 1,
      n1 = n - n0;
    const m0 = low / n0,
      m1 = (total - low) / n1;
    const between = n0 * n1 * (m0 - m1) ** 2; // proportional to the between-class variance
    if (between > best) {
      best = between;
      bestI = i;
    }
  }
  const lo = v[bestI]!,
    hi = v[bestI + 1]!;
  const mid = (lo + hi) / 2;
  return mid > lo ? mid : hi; // adjacent doubles: the low cluster stays OK
}

/** The label-free threshold of the rule with its statistics; null when no score is finite. */
export function labelFreeThreshold(scores: ArrayLike<number>, rule: DecisionRule = DEFAULT_DECISION_RULE): LabelFreeThreshold | null {
  if (!Array.from(scores).some((x) => Number.isFinite(x))) return null;
  if (rule.method === 'otsu') return { method: 'otsu', threshold: otsuThreshold(scores) };
  return { method: 'mad', ...madStatistics(scores, rule.k ?? DEFAULT_MAD_K) };
}

/** OK / NG for every score at a threshold (isNg). */
export function decideAt(scores: ArrayLike<number>, t: Pick<LabelFreeThreshold, 'method' | 'k' | 'threshold'>): Decisions {
  const decisions = Array.from(scores, (s): 'OK' | 'NG' => (isNg(s, t.threshold) ? 'NG' : 'OK'));
  const ng = decisions.filter((d) => d === 'NG').length;
  return { method: t.method, ...(t.k !== undefined ? { k: t.k } : {}), threshold: t.threshold, decisions, ng };
}

/** OK / NG for every score by the rule; throws when no score is finite. */
export function decide(scores: ArrayLike<number>, rule: DecisionRule): Decisions {
  const t = labelFreeThreshold(scores, rule);
  if (!t) throw new RangeError(`${rule.method} threshold: no finite scores`);
  return decideAt(scores, t);
}

/** Parses `mad`, `mad:2.5` or `otsu` (the --decision value). */
export function parseDecisionRule(s: string): DecisionRule {
  const m = /^\s*(mad|otsu)\s*(?::\s*([0-9.eE+-]+)\s*)?$/.exec(s);
  if (!m) throw new Error(`expected mad, mad:K or otsu, got '${s}'`);
  if (m[1] === 'otsu') {
    if (m[2] !== undefined) throw new Error(`otsu takes no parameter, got '${s}'`);
    return { method: 'otsu' };
  }
  if (m[2] === undefined) return { method: 'mad', k: DEFAULT_MAD_K };
  const k = Number(m[2]);
  if (!Number.isFinite(k) || k < 0) throw new Error(`mad:K needs a number K >= 0, got '${m[2]}'`);
  return { method: 'mad', k };
}
