/**
 * ROC AUC, average precision and F1-max, matching scikit-learn 1.2.1 exactly (up to summation
 * rounding), computed with one sort and one sweep (see sweep.ts), so they scale to ~54M pixels.
 *
 * Curve points (sklearn `_binary_clf_curve`): one point per distinct score t, descending, with
 *   tp(t) = #{positive, score >= t},  fp(t) = #{negative, score >= t},  P = tp(min), F = fp(min).
 * - ROC AUC (`roc_auc_score`): points (fp/F, tp/P) after `drop_intermediate` (interior points with
 *   zero second difference in both fp and tp are removed), with (0,0) prepended, integrated by the
 *   trapezoid rule:  AUC = sum_k (x_k - x_{k-1}) * (y_k + y_{k-1}) / 2.
 * - Average precision (`average_precision_score`, uninterpolated):
 *   AP = sum_k (R_k - R_{k-1}) * P_k,  R_k = tp_k/P,  P_k = tp_k/(tp_k+fp_k),  R_{-1} = 0.
 * - F1-max (MuSc): max over `precision_recall_curve` points of F1 = 2*P*R/(P+R), non-finite values
 *   (P = R = 0) dropped; the appended point (P=1, R=0) gives F1 = 0.
 * Labels: nonzero = positive. All three are undefined (NaN here) unless both classes occur.
 */
import { countClasses, sweepDescending, type Labels, type Scores, type ThresholdSink } from './sweep.js';

/** Accepts typed arrays as they are; copies anything else into a Float64Array. */
export function asScores(x: ArrayLike<number>): Scores {
  return x instanceof Float32Array || x instanceof Float64Array ? x : Float64Array.from(x);
}

/**
 * Streams sklearn's `drop_intermediate` filter: point k (not first or last) is kept iff
 * fp[k+1] - 2 fp[k] + fp[k-1] != 0 or tp[k+1] - 2 tp[k] + tp[k-1] != 0.
 */
class DropIntermediate implements ThresholdSink {
  private k = 0;
  private aF = 0;
  private aT = 0; // raw point k-2
  private bF = 0;
  private bT = 0;
  private bTh = 0; // raw point k-1 (pending)
  constructor(private readonly emit: (fp: number, tp: number, th: number) => void) {}
  point(th: number, tp: number, fp: number): void {
    if (this.k === 0) {
      this.emit(fp, tp, th);
      this.bF = fp;
      this.bT = tp;
      this.bTh = th;
    } else if (this.k === 1) {
      this.aF = this.bF;
      this.aT = this.bT;
      this.bF = fp;
      this.bT = tp;
      this.bTh = th;
    } else {
      if (fp - 2 * this.bF + this.aF !== 0 || tp - 2 * this.bT + this.aT !== 0) this.emit(this.bF, this.bT, this.bTh);
      this.aF = this.bF;
      this.aT = this.bT;
      this.bF = fp;
      this.bT = tp;
      this.bTh = th;
    }
    this.k++;
  }
  /** emits the last point (always kept) */
  finish(): void {
    if (this.k >= 2) this.emit(this.bF, this.bT, this.bTh);
  }
}

/**
 * Trapezoid area under the ROC curve, streamed (drop_intermediate inlined, compensated sum
 * inlined: this runs once per distinct pixel score).
 */
export class RocAucSink implements ThresholdSink {
  private k = 0;
  private aF = 0;
  private aT = 0; // raw point k-2
  private bF = 0;
  private bT = 0; // raw point k-1 (pending)
  private x0 = 0; // last kept point, starting at the prepended (0,0)
  private y0 = 0;
  private s = 0; // Neumaier sum
  private c = 0;
  constructor(
    private readonly positives: number,
    private readonly negatives: number,
  ) {}
  private emit(fp: number, tp: number): void {
    const x = fp / this.negatives;
    const y = tp / this.positives;
    const v = ((x - this.x0) * (y + this.y0)) / 2;
    const u = this.s + v;
    this.c += Math.abs(this.s) >= Math.abs(v) ? this.s - u + v : v - u + this.s;
    this.s = u;
    this.x0 = x;
    this.y0 = y;
  }
  point(_th: number, tp: number, fp: number): void {
    const k = this.k++;
    if (k === 0) {
      this.emit(fp, tp);
    } else if (k >= 2 && (fp - 2 * this.bF + this.aF !== 0 || tp - 2 * this.bT + this.aT !== 0)) {
      this.emit(this.bF, this.bT);
    }
    this.aF = this.bF;
    this.aT = this.bT;
    this.bF = fp;
    this.bT = tp;
  }
  /** AUROC; NaN if one class is missing. Call once, after the sweep. */
  result(): number {
    if (this.k >= 2) this.emit(this.bF, this.bT); // the last point is always kept
    this.k = -Infinity;
    return this.positives > 0 && this.negatives > 0 ? this.s + this.c : NaN;
  }
}

/** Uninterpolated average precision, streamed. */
export class AveragePrecisionSink implements ThresholdSink {
  private s = 0; // Neumaier sum
  private c = 0;
  private rPrev = 0;
  constructor(private readonly positives: number) {}
  point(_th: number, tp: number, fp: number): void {
    const r = tp / this.positives;
    const p = tp / (tp + fp);
    const v = (r - this.rPrev) * p;
    const u = this.s + v;
    this.c += Math.abs(this.s) >= Math.abs(v) ? this.s - u + v : v - u + this.s;
    this.s = u;
    this.rPrev = r;
  }
  result(): number {
    return this.positives > 0 ? this.s + this.c : NaN;
  }
}

/** F1-max and the threshold reaching it ("positive if score >= threshold"). */
export class F1Sink implements ThresholdSink {
  private best = -Infinity;
  private bestTh = NaN;
  constructor(private readonly positives: number) {}
  point(th: number, tp: number, fp: number): void {
    const p = tp / (tp + fp);
    const r = tp / this.positives;
    const f1 = (2 * p * r) / (p + r);
    // `>=`: on ties the lowest threshold wins, like np.argmax over sklearn's ascending arrays
    if (Number.isFinite(f1) && f1 >= this.best) {
      this.best = f1;
      this.bestTh = th;
    }
  }
  result(): { f1: number; threshold: number } {
    if (this.positives === 0) return { f1: NaN, threshold: NaN };
    // the appended point (precision 1, recall 0) has F1 = 0 and no threshold
    return this.best >= 0 ? { f1: this.best, threshold: this.bestTh } : { f1: 0, threshold: Infinity };
  }
}

export interface BinaryMetrics {
  auroc: number;
  ap: number;
  f1max: number;
  /** threshold reaching f1max: predict positive iff score >= f1Threshold */
  f1Threshold: number;
  positives: number;
  negatives: number;
  /** number of distinct scores (= thresholds) */
  distinct: number;
}

/** AUROC, AP and F1-max from one sort. Metrics are NaN unless both classes occur. */
export function binaryMetrics(scores: ArrayLike<number>, labels: Labels): BinaryMetrics {
  const s = asScores(scores);
  const { positives, negatives } = countClasses(labels);
  const roc = new RocAucSink(positives, negatives);
  const ap = new AveragePrecisionSink(positives);
  const f1 = new F1Sink(positives);
  const distinct = sweepDescending(s, labels, [roc, ap, f1]);
  const both = positives > 0 && negatives > 0;
  const f = f1.result();
  return {
    auroc: both ? roc.result() : NaN,
    ap: both ? ap.result() : NaN,
    f1max: both ? f.f1 : NaN,
    f1Threshold: both ? f.threshold : NaN,
    positives,
    negatives,
    distinct,
  };
}

/** sklearn `roc_auc_score` (binary). NaN if one class is missing (sklearn raises). */
export function rocAucScore(scores: ArrayLike<number>, labels: Labels): number {
  return binaryMetrics(scores, labels).auroc;
}

/** sklearn `average_precision_score` (binary). */
export function averagePrecisionScore(scores: ArrayLike<number>, labels: Labels): number {
  return binaryMetrics(scores, labels).ap;
}

/** max F1 over the precision-recall curve (MuSc's F1). */
export function f1Max(scores: ArrayLike<number>, labels: Labels): number {
  return binaryMetrics(scores, labels).f1max;
}

/**
 * Threshold t achieving F1-max when predicting "positive iff score >= t" (a distinct score);
 * among equal maxima the lowest threshold.
 */
export function f1OptimalThreshold(scores: ArrayLike<number>, labels: Labels): { threshold: number; f1: number } {
  const m = binaryMetrics(scores, labels);
  return { threshold: m.f1Threshold, f1: m.f1max };
}

export interface RocCurve {
  /** [K+1] false positive rates, ascending, starting at 0 */
  fpr: Float64Array;
  /** [K+1] true positive rates */
  tpr: Float64Array;
  /** [K+1] thresholds, descending; thresholds[0] = thresholds[1] + 1 (sklearn 1.2.1) */
  thresholds: Float64Array;
}

/** sklearn 1.2.1 `roc_curve(y, s, drop_intermediate)`. Rates are NaN for a missing class. */
export function rocCurve(scores: ArrayLike<number>, labels: Labels, dropIntermediate = true): RocCurve {
  const s = asScores(scores);
  const { positives, negatives } = countClasses(labels);
  const fps: number[] = [0];
  const tps: number[] = [0];
  const ths: number[] = [NaN];
  const push = (fp: number, tp: number, th: number): void => {
    fps.push(fp);
    tps.push(tp);
    ths.push(th);
  };
  if (dropIntermediate) {
    const f = new DropIntermediate(push);
    sweepDescending(s, labels, [f]);
    f.finish();
  } else {
    sweepDescending(s, labels, [{ point: (th, tp, fp) => push(fp, tp, th) }]);
  }
  ths[0] = ths.length > 1 ? ths[1] + 1 : Infinity;
  const k = fps.length;
  const fpr = new Float64Array(k);
  const tpr = new Float64Array(k);
  for (let i = 0; i < k; i++) {
    fpr[i] = fps[i] / negatives;
    tpr[i] = tps[i] / positives;
  }
  return { fpr, tpr, thresholds: Float64Array.from(ths) };
}
