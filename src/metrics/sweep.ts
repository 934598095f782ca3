/**
 * One sorted sweep over all scores, from the highest distinct score down to the lowest.
 *
 * For every distinct score t (a threshold, "positive if score >= t") the sweep reports the
 * cumulative counts tp(t) = #{label != 0, score >= t} and fp(t) = #{label == 0, score >= t}
 * (exactly sklearn's `_binary_clf_curve` points), and, when regions are given,
 * proSum(t) = sum over defect pixels with score >= t of 1/area(region of the pixel)
 *           = sum over regions r of tp_r(t)/area_r,
 * so that the per-region overlap PRO(t) = proSum(t) / #regions. proSum is accumulated with
 * Neumaier compensation, so it stays exact to ~1 ulp even over 54M pixels.
 *
 * Each consumer of these points is a `ThresholdSink`; several sinks share one sort and one sweep.
 */
import { argsortAscending, assertFinite } from './sort.js';

export interface ThresholdSink {
  /** one call per distinct score, in descending score order, with cumulative counts */
  point(threshold: number, tp: number, fp: number, proSum: number): void;
}

/** Per-pixel region ids (0 = background) with the reciprocal area of each region. */
export interface RegionWeights {
  /** [P] region id of each pixel, 0 for background */
  labels: Int32Array;
  /** [R+1] 1/area of region r; entry 0 is unused */
  invArea: Float64Array;
}

export type Scores = Float32Array | Float64Array;
export type Labels = ArrayLike<number>;

/** Count of nonzero labels (positives) and zero labels (negatives). */
export function countClasses(labels: Labels): { positives: number; negatives: number } {
  let p = 0;
  for (let i = 0; i < labels.length; i++) if (labels[i] !== 0) p++;
  return { positives: p, negatives: labels.length - p };
}

/**
 * Sorts `scores` once and feeds every sink the descending threshold points.
 * `labels[i] != 0` marks a positive. Returns the number of distinct scores.
 */
export function sweepDescending(scores: Scores, labels: Labels, sinks: ThresholdSink[], regions?: RegionWeights): number {
  const n = scores.length;
  if (labels.length !== n) throw new RangeError(`${n} scores but ${labels.length} labels`);
  assertFinite(scores, 'scores');
  const order = argsortAscending(scores);
  const regLabels = regions?.labels;
  const invArea = regions?.invArea;
  let tp = 0;
  let fp = 0;
  let s = 0; // Neumaier sum of 1/area over counted positives
  let c = 0;
  let distinct = 0;
  let j = n - 1;
  while (j >= 0) {
    const t = scores[order[j]];
    // consume the whole group of scores equal to t (-0 === +0, adjacent after sorting)
    while (j >= 0) {
      const i = order[j];
      if (scores[i] !== t) break;
      if (labels[i] !== 0) {
        tp++;
        if (regLabels !== undefined) {
          const v = invArea![regLabels[i]];
          const u = s + v;
          c += Math.abs(s) >= Math.abs(v) ? s - u + v : v - u + s;
          s = u;
        }
      } else {
        fp++;
      }
      j--;
    }
    distinct++;
    const proSum = s + c;
    for (let k = 0; k < sinks.length; k++) sinks[k].point(t, tp, fp, proSum);
  }
  return distinct;
}
