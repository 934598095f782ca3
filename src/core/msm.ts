/**
 * MSM: Mutual Scoring Mechanism (paper §3.3), as the reference `MSM` / `compute_scores_fast`.
 *
 * For one stage and one r, Z [N, P, C] holds unit patch features. For image i, every other image
 * j scores i's patch p by the distance to its nearest patch in j:
 *   a(i, p, j) = min_q ||Z[i,p] - Z[j,q]||                          (eq. 5)
 * and the patch score is the interval average of the N-1 values sorted ascending:
 *   s(i, p) = mean of the sorted values at ranks [k_lo, k_hi)       (eq. 6)
 * with k = floor((N-1) * fraction) (fractions < 1) or an absolute count (>= 1), as the reference.
 * The reference's default interval [0, 0.3) gives k_hi = floor(0.3 (N-1)), which is 0 for N <= 4
 * and makes its output NaN; here the interval always keeps at least one value (documented).
 */
import type { Interval } from './types.js';
import { quantizeBank, type PairKernel } from './msm-kernel.js';

export const DEFAULT_INTERVAL: Interval = [0, 0.3];

/** The rank range [kLo, kHi) used for M = N-1 scores (reference semantics + the k >= 1 guard). */
export function intervalBounds(m: number, interval: Interval): [number, number] {
  if (m < 1) throw new Error(`MSM needs at least 2 images, got ${m + 1}`);
  let [lo, hi] = interval;
  if (!(lo >= 0) || !(hi >= 0)) throw new Error(`MSM interval must be non-negative, got [${interval}]`);
  let kHi = hi < 1 ? Math.floor(m * hi) : Math.floor(hi);
  let kLo = lo < 1 ? Math.floor(m * lo) : Math.floor(lo);
  if (kHi < kLo) [kHi, kLo] = [kLo, kHi];
  kHi = Math.min(kHi, m);
  kLo = Math.min(kLo, m);
  if (kHi === kLo) {
    // guard (not in the reference, which returns NaN): keep one value
    if (kHi < m) kHi += 1;
    else kLo -= 1;
  }
  return [kLo, kHi];
}

/**
 * Interval means from a nearest-distance table dist [S, P, N] (dist[i, p, j], j != i; the
 * diagonal is ignored). S = n unless only the first `scored` images are scored (the rest being
 * reference images that join the pool). Returns [S, P] float64.
 */
export function intervalMeans(dist: Float32Array, n: number, p: number, interval: Interval, scored = n): Float64Array {
  const [kLo, kHi] = intervalBounds(n - 1, interval);
  const out = new Float64Array(scored * p);
  const vals = new Float64Array(n - 1);
  for (let i = 0; i < scored; i++) {
    for (let q = 0; q < p; q++) {
      const row = (i * p + q) * n;
      let m = 0;
      for (let j = 0; j < n; j++) if (j !== i) vals[m++] = dist[row + j];
      vals.sort();
      let s = 0;
      for (let k = kLo; k < kHi; k++) s += vals[k];
      out[i * p + q] = s / (kHi - kLo);
    }
  }
  return out;
}

/** Distance from a squared distance (never negative, but guard anyway). */
function dist(d2: number): number {
  return d2 > 0 ? Math.sqrt(d2) : 0;
}

/**
 * Default patch rows per row block and per column chunk. Measured on the 2-core machine (bench):
 * one query image against a chunk of ~4096 reference rows is the fastest shape for P = 196..1369
 * (the arg-max reductions over [A, P, B, P] are memory-bound, so A stays small while B makes
 * the GEMM large); small grids get several images per row block.
 */
export const DEFAULT_MAX_ROWS = 512;
export const DEFAULT_CHUNK_ROWS = 4096;

export interface TableOptions {
  /** images per row block; default: blocks of about `maxRows` patch rows */
  blockImages?: number;
  /** images per column chunk (at most; default: about DEFAULT_CHUNK_ROWS rows, at least blockImages) */
  colImages?: number;
  maxRows?: number;
  onBlock?: (done: number, total: number) => void;
}

/** Images per block so that a block holds about maxRows patches (at least 1 image). */
export function blockSize(n: number, p: number, opts: TableOptions): number {
  return Math.max(1, Math.min(n, opts.blockImages ?? Math.floor((opts.maxRows ?? DEFAULT_MAX_ROWS) / p)));
}

/** Which pairs a distance table holds. */
export interface PoolOptions {
  /** the first `scored` images get scores; the rest are reference (known-good) images */
  scored?: number;
  /** only test-vs-reference distances (MuSc+); otherwise every pair with a scored image */
  referencesOnly?: boolean;
}

/**
 * The nearest-distance table [S, P, N] (S = scored images, N = all images; column j of row
 * (i, p) is the distance from patch p of image i to its nearest patch in image j).
 *
 * Tiling: row blocks of A images; for row block [i0, i1) the column images [i0 + 1, N) go in
 * about equal chunks of at most B. Each product serves both directions of a pair i < j (i a row
 * image, j a column image): its rows give (i vs j), its columns (j vs i). Every unordered pair
 * {i, j} is taken from exactly one product (the row block of i, the chunk of j), so each is
 * multiplied once; the image pairs with i >= j inside a row block (A(A-1)/2 per block) are the
 * only products computed and not used. Row blocks
 * made only of reference images are never computed; an image is never scored against itself.
 */
export async function nearestDistanceTable(z: Float32Array, n: number, p: number, c: number, kernel: PairKernel, opts: TableOptions & PoolOptions = {}): Promise<Float32Array> {
  if (!kernel.bothDirections) throw new Error('nearestDistanceTable needs a two-direction kernel');
  const scored = opts.scored ?? n;
  const refOnly = opts.referencesOnly ?? false;
  if (refOnly && scored === n) throw new Error('MuSc+ needs reference images');
  const A = blockSize(n, p, opts);
  const B = Math.max(A, opts.colImages ?? Math.round(DEFAULT_CHUNK_ROWS / p));
  const table = new Float32Array(scored * p * n);
  const work: [number, number, number, number][] = [];
  for (let i0 = 0; i0 < scored; i0 += A) {
    const i1 = Math.min(n, i0 + A);
    // columns [i0 + 1, n) in ceil(len / B) chunks of nearly equal size
    const len = n - (i0 + 1);
    const chunks = Math.ceil(len / B);
    for (let k = 0; k < chunks; k++) {
      const j0 = i0 + 1 + Math.floor((k * len) / chunks);
      const j1 = i0 + 1 + Math.floor(((k + 1) * len) / chunks);
      if (refOnly && j1 <= scored) continue; // no reference image in this chunk
      work.push([i0, i1, j0, j1]);
    }
  }
  const rowLen = p * c;
  const bank8 = kernel.precision === 'int8' ? quantizeBank(z, n, p, c) : null;
  for (const [w, [i0, i1, j0, j1]] of work.entries()) {
    const a = i1 - i0, b = j1 - j0;
    const { rowd2, cold2 } = bank8
      ? await kernel.runInt8(bank8, i0, i1, j0, j1, p, c)
      : await kernel.run(z.subarray(i0 * rowLen, i1 * rowLen), a, z.subarray(j0 * rowLen, j1 * rowLen), b, p, c);
    for (let ia = 0; ia < a; ia++) {
      const i = i0 + ia;
      for (let jb = Math.max(0, i + 1 - j0); jb < b; jb++) {
        const j = j0 + jb; // i < j
        // i's patches against j
        if (i < scored && (!refOnly || j >= scored)) {
          for (let pp = 0; pp < p; pp++) table[(i * p + pp) * n + j] = dist(rowd2[(ia * p + pp) * b + jb]);
        }
        // j's patches against i (with references only, i < j makes i a test image: never needed)
        if (j < scored && !refOnly) {
          for (let pp = 0; pp < p; pp++) table[(j * p + pp) * n + i] = dist(cold2![(ia * b + jb) * p + pp]);
        }
      }
    }
    opts.onBlock?.(w + 1, work.length);
  }
  return table;
}

/** MuSc+ scores [S, P]: the minimum over the reference images (columns S..N-1) of the table. */
export function referenceMinima(table: Float32Array, scored: number, n: number, p: number): Float64Array {
  const out = new Float64Array(scored * p);
  for (let k = 0; k < scored * p; k++) {
    let m = Infinity;
    for (let j = scored; j < n; j++) m = Math.min(m, table[k * n + j]);
    out[k] = m;
  }
  return out;
}

/**
 * The straightforward form, as the reference does it: each image against all others, one
 * direction per product ([P, C] x [C, (N-1) P]). Used as the benchmark baseline and in tests.
 */
export async function nearestDistanceTableStraightforward(z: Float32Array, n: number, p: number, c: number, kernel: PairKernel): Promise<Float32Array> {
  const table = new Float32Array(n * p * n);
  const rowLen = p * c;
  const others = new Float32Array((n - 1) * rowLen);
  for (let i = 0; i < n; i++) {
    others.set(z.subarray(0, i * rowLen), 0);
    others.set(z.subarray((i + 1) * rowLen), i * rowLen);
    const { rowd2 } = await kernel.run(z.subarray(i * rowLen, (i + 1) * rowLen), 1, others, n - 1, p, c);
    for (let pp = 0; pp < p; pp++) {
      for (let jj = 0; jj < n - 1; jj++) {
        const j = jj < i ? jj : jj + 1;
        table[(i * p + pp) * n + j] = dist(rowd2[pp * (n - 1) + jj]);
      }
    }
  }
  return table;
}

/**
 * MSM scores [S, P] of one feature bank Z [N, P, C] (S = opts.scored, default N). With
 * reference images (the last N - S), they join the pool (few-shot MuSc); with referencesOnly,
 * each patch gets its minimum distance over the references alone (MuSc+).
 */
export async function msmScores(z: Float32Array, n: number, p: number, c: number, interval: Interval, kernel: PairKernel, opts: TableOptions & PoolOptions = {}): Promise<Float64Array> {
  if (n < 2) throw new Error(`MSM needs at least 2 images to score each other, got ${n}`);
  const scored = opts.scored ?? n;
  const table = await nearestDistanceTable(z, n, p, c, kernel, opts);
  return opts.referencesOnly ? referenceMinima(table, scored, n, p) : intervalMeans(table, n, p, interval, scored);
}
