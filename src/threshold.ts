/**
 * Label-free deployment thresholds: turning a batch's image scores into OK / NG without labels.
 *
 * MuSc scores every image against the rest of the batch, so the batch's own score distribution is
 * the natural reference. Two rules (an image is NG when its score is strictly above the threshold):
 *
 *   mad   t = median(s) + k * 1.4826 * MAD(s),   MAD = median(|s - median(s)|)
 *         A robust outlier rule: 1.4826 * MAD estimates the standard deviation of the good images'
 *         scores when they are normally distributed, so k = 3 flags scores more than about three
 *         standard deviations above the typical score (DEFAULT_MAD_K). It assumes that most images of
 *         the batch (more than half) are good, as on a production line. When MAD = 0 (more than half
 *         the scores equal), sqrt(pi/2) times the mean absolute deviation from the median estimates the
 *         standard deviation instead; if that is 0 too (all scores equal), t = median and nothing is NG.
 *   otsu  the two-cluster split of the sorted scores that maximises the between-class variance
 *         (Otsu's criterion, exact over every split point); t = midpoint between the largest score
 *         of the low cluster and the smallest of the high cluster. It needs no proportion, so it
 *         suits batches with many defects (benchmark test sets), but it always finds two clusters:
 *         an all-good batch gets some NG images. Needs 2 distinct scores (else nothing is NG).
 *
 * With labels, the F1-optimal threshold (src/metrics f1OptimalThreshold) is the supervised
 * counterpart, reported in metrics.json as `f1_threshold`.
 */

export type DecisionMethod = 'mad' | 'otsu';
export const DECISION_METHODS: readonly DecisionMethod[] = ['mad', 'otsu'];
/** median + 3 robust standard deviations */
export const DEFAULT_MAD_K = 3;
/** 1 / Phi^-1(3/4): MAD -> standard deviation for normal data */
export const MAD_SCALE = 1.4826;

export interface DecisionRule {
  method: DecisionMethod;
  /** mad only (default DEFAULT_MAD_K) */
  k?: number;
}

export interface Decisions {
  /** a --decision rule, or musc run's default (src/bank/calibration.ts runDecisions): 'f1' (labels; NG iff score >= threshold) or 'false-alarm' */
  method: DecisionMethod | 'f1' | 'false-alarm';
  /** mad only */
  k?: number;
  /** NG iff score > threshold */
  threshold: number;
  /** [N] 'OK' | 'NG' */
  decisions: ('OK' | 'NG')[];
  ng: number;
}

/** Median of finite values (mean of the middle two for an even count); NaN when none. */
export function median(values: ArrayLike<number>): number {
  const v = Float64Array.from(Array.from(values).filter((x) => Number.isFinite(x))).sort();
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/** median + k * 1.4826 * MAD (see the module comment). */
export function madThreshold(scores: ArrayLike<number>, k = DEFAULT_MAD_K): number {
  if (!(k >= 0)) throw new RangeError(`MAD threshold: k must be >= 0, got ${k}`);
  const med = median(scores);
  if (Number.isNaN(med)) throw new RangeError('MAD threshold: no finite scores');
  const dev = Array.from(scores).filter((x) => Number.isFinite(x)).map((x) => Math.abs(x - med));
  const mad = median(dev);
  // sigma estimate: 1.4826 MAD, or sqrt(pi/2) * mean absolute deviation when MAD = 0
  const sigma = mad > 0 ? MAD_SCALE * mad : Math.sqrt(Math.PI / 2) * (dev.reduce((a, b) => a + b, 0) / dev.length);
  return med + k * sigma;
}

/** Otsu's two-cluster split of 1-D scores (see the module comment). */
export function otsuThreshold(scores: ArrayLike<number>): number {
  const v = Float64Array.from(Array.from(scores).filter((x) => Number.isFinite(x))).sort();
  const n = v.length;
  if (n === 0) throw new RangeError('Otsu threshold: no finite scores');
  if (v[0] === v[n - 1]) return v[0]!;
  let total = 0;
  for (const x of v) total += x;
  // split after index i (low = v[0..i], high = v[i+1..n-1]) only between distinct values
  let best = -Infinity, bestI = -1, low = 0;
  for (let i = 0; i < n - 1; i++) {
    low += v[i]!;
    if (v[i] === v[i + 1]) continue;
    const n0 = i + 1, n1 = n - n0;
    const m0 = low / n0, m1 = (total - low) / n1;
    const between = n0 * n1 * (m0 - m1) ** 2; // proportional to the between-class variance
    if (between > best) {
      best = between;
      bestI = i;
    }
  }
  return (v[bestI]! + v[bestI + 1]!) / 2;
}

/** OK / NG for every score by the rule; NaN scores are NG (cannot be shown to be good). */
export function decide(scores: ArrayLike<number>, rule: DecisionRule): Decisions {
  const threshold = rule.method === 'mad' ? madThreshold(scores, rule.k ?? DEFAULT_MAD_K) : otsuThreshold(scores);
  const decisions = Array.from(scores, (s): 'OK' | 'NG' => (s > threshold || Number.isNaN(s) ? 'NG' : 'OK'));
  const ng = decisions.filter((d) => d === 'NG').length;
  return { method: rule.method, ...(rule.method === 'mad' ? { k: rule.k ?? DEFAULT_MAD_K } : {}), threshold, decisions, ng };
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
