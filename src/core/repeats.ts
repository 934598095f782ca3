/**
 * Repeated-anomaly filter (after CoDeGraph, Le-Gia & Ahn, arXiv 2510.10456): a defect that repeats
 * in several images of a batch finds close matches in those images and hides from mutual scoring.
 * Its patches show "neighbour burnout": low distances to the few images that share the defect, then
 * an abrupt jump once those are used up; a normal patch's distances grow smoothly. The filter finds
 * the jumps, links the images that cause them, and scores each image again without its linked
 * images (the `filteredVariant`).
 *
 * Burnout test, per patch x of image a: its nearest distances to the other images sorted,
 * d_1 <= d_2 <= ... <= d_K (K = the MSM interval's count, the images a score averages). Under the
 * paper's extreme-value model the scaled log gaps g_t = t ln(d_{t+1} / d_t), t = 1..K-1, of a normal
 * patch are i.i.d. Exp(alpha); the largest of K - 1 passes x with probability about
 * (K - 1) exp(-alpha x). alpha comes from the image's own gaps, so the test needs nothing but the
 * image's table rows (a row block of whole images is tested alone: the cluster's merge jobs can run
 * it). A patch whose largest gap passes the level of `fpr` links a to the images before that gap.
 *
 * Links: W(a, b) = links a -> b + links b -> a. A pair is linked when W covers at least `minShare`
 * of the pair's 2P patches (a repeated defect, not a chance patch) and at most `maxShare` (more is
 * whole-image likeness: a sub-population of the batch such as another lighting or a batch of
 * near-duplicates, whose images are each other's rightful references).
 */
import { intervalBounds } from './msm.js';
import type { PoolVariant, ScoringPlan } from './plan.js';
import type { Interval } from './types.js';

export interface RepeatFilterOptions {
  /** false-positive rate of one patch's burnout test */
  fpr: number;
  /** a pair is linked when its links cover at least this share of the pair's 2P patches ... */
  minShare: number;
  /** ... and at most this share (more: whole-image likeness, not a defect) */
  maxShare: number;
}

export const DEFAULT_REPEAT_FILTER: RepeatFilterOptions = { fpr: 1e-5, minShare: 0.02, maxShare: 0.5 };

/** Fewest gaps the burnout test is run on (the MSM interval's count minus one). */
export const MIN_BURNOUT_GAPS = 4;

/**
 * The rList index of the link table (with stage 0): the smallest r, 1 in the default plan. The test
 * looks for a patch that repeats; at r = 1 each patch is itself, while a larger r averages a small
 * defect with its normal neighbours and blurs its jump (docs/accuracy.md, fifth round).
 */
export function linkRIndex(rList: number[]): number {
  let i = 0;
  for (let k = 1; k < rList.length; k++) if (rList[k]! < rList[i]!) i = k;
  return i;
}

/**
 * The rank range [kLo, kHi) of the MSM interval for an image scored against `others` images; null
 * when too few ranks for the burnout test (kHi - 1 < MIN_BURNOUT_GAPS). The test looks at ranks up to kHi.
 */
export function burnoutBounds(others: number, interval: Interval): [number, number] | null {
  const b = intervalBounds(others, interval);
  return b[1] - 1 >= MIN_BURNOUT_GAPS ? b : null;
}

/** The filter's rank range for a plan (its variant 0, zero-shot over the batch), or null. */
export function planBurnoutBounds(plan: ScoringPlan): [number, number] | null {
  const r = plan.variants[0]!.reduce;
  return r.kind === 'interval' ? burnoutBounds(plan.n - 1, r.interval) : null;
}

/**
 * Burnout links of table rows: `rows` [A, P, N] are the rows of images [a0, a0 + A) of a zero-shot
 * table (distance of each patch to its nearest patch in each image). Adds to links [N, N]:
 * links[a * N + b] += a's patches whose burnout names b. Each image is tested alone: alpha from the
 * median of its own gaps (most of an image's patches are normal; the median of Exp(alpha) is
 * ln 2 / alpha), the level the one that K - 1 normal gaps pass with probability fpr.
 */
export function addBurnoutLinks(rows: Float32Array, a0: number, n: number, p: number, K: number, fpr: number, links: Float64Array): void {
  const A = rows.length / (p * n);
  const nearest = nearestImages(n, K);
  const sorted = new Int32Array(p * K); // [P, K] each patch's K nearest images
  const gaps = new Float64Array(p * (K - 1)); // [P, K - 1] g_t
  const jump = new Float64Array(p),
    at = new Int32Array(p);
  for (let i = 0; i < A; i++) {
    const a = a0 + i;
    for (let q = 0; q < p; q++) {
      const o = (i * p + q) * n;
      const ids = nearest(rows, o, a, sorted.subarray(q * K, (q + 1) * K));
      jump[q] = 0;
      for (let t = 1; t < K; t++) {
        const g = t * Math.log(Math.max(rows[o + ids[t]!]!, 1e-6) / Math.max(rows[o + ids[t - 1]!]!, 1e-6));
        gaps[q * (K - 1) + t - 1] = g;
        if (g > jump[q]!) {
          jump[q] = g;
          at[q] = t;
        }
      }
    }
    const median = gaps.slice().sort()[gaps.length >> 1]!;
    const level = (median / Math.LN2) * Math.log((K - 1) / fpr);
    for (let q = 0; q < p; q++) {
      if (!(jump[q]! > level)) continue;
      for (let t = 0; t < at[q]!; t++) links[a * n + sorted[q * K + t]!]! += 1;
    }
  }
}

/**
 * (row, offset o, own image a, out [K]) -> out = the K images nearest in the row, ascending. Sort
 * keys as reduceRows (score.ts): float32 bits * 2^b + j (distances >= 0), ties in image order.
 */
function nearestImages(n: number, K: number) {
  let bits = 1;
  while (2 ** bits < n) bits++;
  const mult = 2 ** bits;
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const keys = new Float64Array(n - 1);
  return (rows: Float32Array, o: number, a: number, out: Int32Array): Int32Array => {
    let c = 0;
    for (let j = 0; j < n; j++) {
      if (j === a) continue;
      f32[0] = rows[o + j]!;
      keys[c++] = u32[0]! * mult + j;
    }
    keys.sort();
    for (let t = 0; t < K; t++) out[t] = keys[t]! - Math.floor(keys[t]! / mult) * mult;
    return out;
  };
}

/**
 * Each image's pool after the filter: the other images less those linked to it (at most half of
 * them, the most linked first, so that an image keeps references). links [N, N] from addBurnoutLinks.
 */
export function filteredPools(links: Float64Array, n: number, p: number, o: RepeatFilterOptions): number[][] {
  const W = (a: number, b: number) => links[a * n + b]! + links[b * n + a]!;
  const lo = o.minShare * 2 * p,
    hi = o.maxShare * 2 * p;
  return Array.from({ length: n }, (_, a) => {
    const linked = [];
    for (let b = 0; b < n; b++) if (b !== a && W(a, b) >= lo && W(a, b) <= hi) linked.push(b);
    linked.sort((x, y) => W(a, y) - W(a, x) || x - y);
    const out = new Set(linked.slice(0, Math.floor((n - 1) / 2)));
    const pool = [];
    for (let b = 0; b < n; b++) if (b !== a && !out.has(b)) pool.push(b);
    return pool;
  });
}

/**
 * The filtered variant of zero-shot scoring: every image against its filtered pool, averaging the
 * same ranks [kLo, kHi) as the whole pool (counts, not fractions: a smaller pool keeps the score's scale).
 */
export function filteredVariant(pools: number[][], [kLo, kHi]: [number, number]): PoolVariant {
  const all = pools.map((_, i) => i);
  return { scored: all, pools, poolOf: all, reduce: { kind: 'interval', interval: [kLo, kHi] } };
}

/** What the filter left out of a batch's pools. */
export interface RepeatSummary {
  /** images with at least one image left out of their pool */
  images: number;
  /** (ordered) pairs left out: the sum of leftOut's lengths */
  excludedPairs: number;
  /** [N] per image, the images (batch indices, ascending) left out of its pool */
  leftOut: number[][];
}

export function poolSummary(pools: number[][]): RepeatSummary {
  const leftOut = pools.map((pool, i) => {
    const kept = new Set(pool);
    return pools.flatMap((_, j) => (j !== i && !kept.has(j) ? [j] : []));
  });
  return {
    images: leftOut.filter((l) => l.length > 0).length,
    excludedPairs: leftOut.reduce((a, l) => a + l.length, 0),
    leftOut,
  };
}

/** The plan's filtered variant from the links of its link table [N, N], with what it left out. */
export function repeatVariant(plan: ScoringPlan, links: Float64Array, p: number, bounds: [number, number]) {
  const pools = filteredPools(links, plan.n, p, plan.repeatFilter!);
  return { variant: filteredVariant(pools, bounds), summary: poolSummary(pools) };
}
