/**
 * Counts at one threshold with the NG rule of src/threshold.ts (NG iff score >= t, NaN is NG).
 * Labels are 1 (defective), 0 (good) or null (unknown: counted in NG / OK only). No Node.js
 * dependency: the report page's bundle uses it for the threshold slider.
 */
import { isNg } from '../threshold.js';

export interface Confusion {
  ng: number;
  ok: number;
  tp: number;
  fp: number;
  fn: number;
  tn: number;
  /** null when nothing labelled is NG */
  precision: number | null;
  /** null without a labelled defective image */
  recall: number | null;
  f1: number | null;
}

/** Counts at threshold t over scores [N] and labels [N]. */
export function confusionAt(scores: ArrayLike<number>, labels: ArrayLike<number | null>, t: number): Confusion {
  let ng = 0;
  let ok = 0;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  for (let i = 0; i < scores.length; i++) {
    const pos = isNg(scores[i]!, t);
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
