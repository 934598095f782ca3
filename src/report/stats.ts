/**
 * What the report page draws from the scores, besides the evaluator's curves and thresholds
 * (src/metrics/evaluator.ts, computed when the report is built): the gallery order, the score
 * range of the slider and the histogram. No Node.js dependency: bundled into the page script.
 */

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
