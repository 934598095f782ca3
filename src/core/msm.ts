/**
 * MSM: Mutual Scoring Mechanism (paper §3.3), as the reference `MSM` / `compute_scores_fast`.
 *
 * For one stage and one r, Z [N, P, C] holds unit patch features. For image i, every other image
 * j scores i's patch p by the distance to its nearest patch in j:
 *   a(i, p, j) = min_q ||Z[i,p] - Z[j,q]||                          (eq. 5)
 * and the patch score is the interval average of the N-1 values sorted ascending:
 *   s(i, p) = mean of the sorted values at ranks [k_lo, k_hi)       (eq. 6)
 * with k = floor((N-1) * fraction) (fractions < 1) or an absolute count (>= 1), as the reference.
 * This file builds the table of a(i, p, j); score.ts reduces it per pool (plan.ts).
 * The reference's default interval [0, 0.3) gives k_hi = floor(0.3 (N-1)), which is 0 for N <= 4
 * and makes its output NaN; here the interval always keeps at least one value (documented).
 */
import type { Interval } from './types.js';
import { quantizeBank, type IndexedPairResult, type Int8Bank, type PairKernel, type PairResult } from './kernel.js';

export { DEFAULT_INTERVAL } from './defaults.js';

/** The rank range [kLo, kHi) used for M = N-1 scores (reference semantics + the k >= 1 guard). */
export function intervalBounds(m: number, interval: Interval): [number, number] {
  if (m < 1) throw new Error(`MSM needs at least 2 images, got ${m + 1}`);
  const [lo, hi] = interval;
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
  /** the bank's rows are not unit vectors (lnamd.ts unitRows): Euclidean distances (computeBlock) */
  euclidean?: boolean;
}

/** Images per block so that a block holds about maxRows patches (at least 1 image). */
export function blockSize(n: number, p: number, opts: TableOptions): number {
  return Math.max(1, Math.min(n, opts.blockImages ?? Math.floor((opts.maxRows ?? DEFAULT_MAX_ROWS) / p)));
}

/** One piece of a distance table: query images [i0, i1) against reference images [j0, j1), j0 > i0. */
export interface TableBlock {
  i0: number;
  i1: number;
  j0: number;
  j1: number;
}

/**
 * The products that fill every needed entry of the table (need: [N * N], see plan.ts neededPairs).
 *
 * Tiling: row blocks of A images; for row block [i0, i1) the column images [i0 + 1, N) go in
 * about equal chunks of at most B. Each product serves both directions of a pair i < j (i a row
 * image, j a column image): its rows give (i vs j), its columns (j vs i). Every unordered pair
 * {i, j} is taken from exactly one product (the row block of i, the chunk of j), so each is
 * multiplied once; the image pairs with i >= j inside a row block (A(A-1)/2 per block) are the
 * only products computed and not used. A block holding no needed pair is left out (reference-only
 * row blocks, MuSc+ chunks without references, other subsets' pairs).
 */
export function tableBlocks(n: number, p: number, need: Uint8Array, opts: TableOptions = {}): TableBlock[] {
  const A = blockSize(n, p, opts);
  const B = Math.max(A, opts.colImages ?? Math.round(DEFAULT_CHUNK_ROWS / p));
  const blocks: TableBlock[] = [];
  for (let i0 = 0; i0 < n; i0 += A) {
    const i1 = Math.min(n, i0 + A);
    // columns [i0 + 1, n) in ceil(len / B) chunks of nearly equal size
    const len = n - (i0 + 1);
    const chunks = Math.ceil(len / B);
    for (let k = 0; k < chunks; k++) {
      const j0 = i0 + 1 + Math.floor((k * len) / chunks);
      const j1 = i0 + 1 + Math.floor(((k + 1) * len) / chunks);
      const block = { i0, i1, j0, j1 };
      if (blockNeeded(block, n, need)) blocks.push(block);
    }
  }
  return blocks;
}

function blockNeeded(b: TableBlock, n: number, need: Uint8Array): boolean {
  for (let i = b.i0; i < b.i1; i++) {
    for (let j = Math.max(b.j0, i + 1); j < b.j1; j++) if (need[i * n + j] || need[j * n + i]) return true;
  }
  return false;
}

/**
 * The kernel's squared distances for one block of a bank Z [N, P, C] (or its int8 form). `euclidean`:
 * Z's rows are not unit (lnamd.ts normExponent), and this is Z's euclideanBank (see floatBlock),
 * built once per table.
 */
export function computeBlock(
  z: Float32Array,
  bank8: Int8Bank | null,
  b: TableBlock,
  p: number,
  c: number,
  kernel: PairKernel,
  euclidean?: EuclideanBank,
): Promise<PairResult> {
  if (!kernel.bothDirections) throw new Error('distance tables need a two-direction kernel');
  if (euclidean && (bank8 || kernel.precision !== 'fast'))
    throw new Error(`MSM: rows that are not unit vectors need the 'fast' precision, not '${kernel.precision}'`);
  if (bank8) return kernel.runInt8(bank8, b.i0, b.i1, b.j0, b.j1, p, c);
  return floatBlock(z, b, p, c, (q, a, r, nb, cc) => kernel.run(q, a, r, nb, p, cc), euclidean);
}

/**
 * One block through a float kernel call `run` (PairKernel.run or runIndexed): Z's query and reference
 * rows as views, or with `euclidean` in the augmented layout (euclideanBank), the fast form's 2 + d^2
 * then shifted back to d^2.
 */
async function floatBlock<R extends PairResult>(
  z: Float32Array,
  b: TableBlock,
  p: number,
  c: number,
  run: (q: Float32Array, a: number, r: Float32Array, nb: number, c: number) => Promise<R>,
  e?: EuclideanBank,
): Promise<R> {
  const a = b.i1 - b.i0,
    nb = b.j1 - b.j0;
  if (!e) return run(z.subarray(b.i0 * p * c, b.i1 * p * c), a, z.subarray(b.j0 * p * c, b.j1 * p * c), nb, c);
  const q = augmentedRows(z, e.halfNorms, b.i0 * p, b.i1 * p, c, true);
  const res = await run(q, a, e.refs.subarray(b.j0 * p * (c + 2), b.j1 * p * (c + 2)), nb, c + 2);
  for (const d2 of [res.rowd2, res.cold2]) if (d2) for (let k = 0; k < d2.length; k++) d2[k] = d2[k]! - 2;
  return res;
}

/**
 * What the Euclidean form needs of a bank Z [T, C] whose rows are not unit: `halfNorms` [T], |z|^2 / 2
 * of every row, and `refs` [T, C + 2], every row in the reference layout [b, -|b|^2 / 2, 1]. Built
 * once per table, so that a block's references are views, not copies (a table's blocks hold about
 * N / 2 times the bank's rows as references, and once as queries): one more copy of the bank, with
 * two more channels, while the table is computed.
 */
export interface EuclideanBank {
  halfNorms: Float32Array;
  refs: Float32Array;
}

/**
 * (floatBlock) Nearest Euclidean distances of rows that are not unit, through the kernel's largest dot product:
 * with q = [a, 1, -|a|^2 / 2] for the query rows and r = [b, -|b|^2 / 2, 1] for the reference rows,
 * q.r = -|a - b|^2 / 2 in both directions, so the largest product is the nearest patch and the fast
 * form 2 - 2 q.r is 2 + d^2. Only 'fast' (the exact kernel recomputes |q - r|, int8 quantizes the
 * norms' columns with the features).
 */
export function euclideanBank(z: Float32Array, c: number): EuclideanBank {
  const halfNorms = halfSquaredNorms(z, c);
  return { halfNorms, refs: augmentedRows(z, halfNorms, 0, halfNorms.length, c, false) };
}

/**
 * computeBlock with the nearest patches' indices (PairKernel.runIndexed: 'fast', both directions);
 * the distances are computeBlock's.
 */
export function computeIndexedBlock(
  z: Float32Array,
  b: TableBlock,
  p: number,
  c: number,
  kernel: PairKernel,
  euclidean?: EuclideanBank,
): Promise<IndexedPairResult> {
  const runIndexed = kernel.runIndexed?.bind(kernel);
  if (!runIndexed || kernel.precision !== 'fast')
    throw new Error(`nearest-patch indices need the 'fast' MSM precision, not '${kernel.precision}'`);
  return floatBlock(z, b, p, c, (q, a, r, nb, cc) => runIndexed(q, a, r, nb, p, cc), euclidean);
}

/** |z|^2 / 2 of every row of Z [T, C] -> [T]. */
function halfSquaredNorms(z: Float32Array, c: number): Float32Array {
  const out = new Float32Array(z.length / c);
  for (let t = 0; t < out.length; t++) {
    let ss = 0;
    for (let k = 0; k < c; k++) ss += z[t * c + k]! * z[t * c + k]!;
    out[t] = ss / 2;
  }
  return out;
}

/** Rows [t0, t1) of Z [T, C] -> [t1 - t0, C + 2]: [a, 1, -|a|^2 / 2] (query) or [a, -|a|^2 / 2, 1] (reference). */
function augmentedRows(z: Float32Array, halfNorms: Float32Array, t0: number, t1: number, c: number, query: boolean): Float32Array {
  const out = new Float32Array((t1 - t0) * (c + 2));
  for (let t = t0; t < t1; t++) {
    const o = (t - t0) * (c + 2);
    out.set(z.subarray(t * c, (t + 1) * c), o);
    out[o + c] = query ? 1 : -halfNorms[t]!;
    out[o + c + 1] = query ? -halfNorms[t]! : 1;
  }
  return out;
}

/**
 * Writes one block's needed distances into the table [M, P, N] (rows: images 0..M-1). Each entry
 * comes from exactly one block, so blocks merge in any order into the same table.
 */
export function mergeBlock(table: Float32Array, m: number, n: number, p: number, need: Uint8Array, b: TableBlock, r: PairResult): void {
  mergeBlockRows(table, 0, m, n, p, need, b, r);
}

/**
 * mergeBlock into the rows of images [r0, r1) only: `rows` [r1 - r0, P, N] holds those rows of the
 * table. Reads r.rowd2 only when [b.i0, b.i1) meets [r0, r1), r.cold2 only when [b.j0, b.j1) does
 * (so a caller may load just the part it needs).
 */
export function mergeBlockRows(
  rows: Float32Array,
  r0: number,
  r1: number,
  n: number,
  p: number,
  need: Uint8Array,
  b: TableBlock,
  r: PairResult,
): void {
  scatterBlock(rows, r0, r1, n, p, need, b, r.rowd2, r.cold2!, true);
}

/**
 * mergeBlockRows for the nearest patches' indices: the rows of images [r0, r1) of index [M, P, N]
 * (Uint16 for P <= 65536) from r.rowArg / r.colArg, read as mergeBlockRows reads rowd2 / cold2.
 */
export function mergeIndexBlockRows(
  index: Uint16Array | Int32Array,
  r0: number,
  r1: number,
  n: number,
  p: number,
  need: Uint8Array,
  b: TableBlock,
  r: Pick<IndexedPairResult, 'rowArg' | 'colArg'>,
): void {
  scatterBlock(index, r0, r1, n, p, need, b, r.rowArg, r.colArg, false);
}

/**
 * A block's needed entries into the rows of images [r0, r1) of dest [r1 - r0, P, N]: from rowSrc
 * [A, P, B] (query image i's rows) and colSrc [A, B, P] (reference image j's rows); squared
 * distances become distances when `sqrt`, indices are copied.
 */
function scatterBlock(
  dest: Float32Array | Uint16Array | Int32Array,
  r0: number,
  r1: number,
  n: number,
  p: number,
  need: Uint8Array,
  b: TableBlock,
  rowSrc: Float32Array | Int32Array,
  colSrc: Float32Array | Int32Array,
  sqrt: boolean,
): void {
  const a = b.i1 - b.i0,
    nb = b.j1 - b.j0;
  const held = (i: number): boolean => i >= r0 && i < r1;
  for (let ia = 0; ia < a; ia++) {
    const i = b.i0 + ia;
    for (let jb = Math.max(0, i + 1 - b.j0); jb < nb; jb++) {
      const j = b.j0 + jb; // i < j
      if (need[i * n + j] && held(i))
        for (let pp = 0; pp < p; pp++) {
          const v = rowSrc[(ia * p + pp) * nb + jb]!;
          dest[((i - r0) * p + pp) * n + j] = sqrt ? dist(v) : v;
        }
      if (need[j * n + i] && held(j))
        for (let pp = 0; pp < p; pp++) {
          const v = colSrc[(ia * nb + jb) * p + pp]!;
          dest[((j - r0) * p + pp) * n + i] = sqrt ? dist(v) : v;
        }
    }
  }
}

/** An index table [rows, P, N] of the smallest type that holds P patch indices. */
export function indexRows(rows: number, p: number, n: number): Uint16Array | Int32Array {
  return p <= 65536 ? new Uint16Array(rows * p * n) : new Int32Array(rows * p * n);
}

/**
 * nearestDistanceTable with, for every entry (i, p, j), the index of that nearest patch within image
 * j: index [M, P, N] (core/density.ts). The distances are nearestDistanceTable's ('fast' only).
 */
export async function nearestTableWithIndices(
  z: Float32Array,
  n: number,
  p: number,
  c: number,
  kernel: PairKernel,
  opts: TableOptions & { need?: Uint8Array } = {},
): Promise<{ table: Float32Array; index: Uint16Array | Int32Array }> {
  const need = opts.need ?? allPairs(n);
  const m = tableRows(n, need);
  const table = new Float32Array(m * p * n);
  const index = indexRows(m, p, n);
  const blocks = tableBlocks(n, p, need, opts);
  const euclidean = opts.euclidean ? euclideanBank(z, c) : undefined;
  for (const [k, b] of blocks.entries()) {
    const r = await computeIndexedBlock(z, b, p, c, kernel, euclidean);
    mergeBlock(table, m, n, p, need, b, r);
    mergeIndexBlockRows(index, 0, m, n, p, need, b, r);
    opts.onBlock?.(k + 1, blocks.length);
  }
  return { table, index };
}

/** Rows a table needs: images 0..M-1, M = 1 + the last image with a needed pair. */
export function tableRows(n: number, need: Uint8Array): number {
  for (let i = n - 1; i >= 0; i--) if (need.subarray(i * n, (i + 1) * n).some((v) => v)) return i + 1;
  return 0;
}

/**
 * The nearest-distance table [M, P, N] of a bank Z [N, P, C]: entry (i, p, j) is the distance from
 * patch p of image i to its nearest patch in image j, for every needed pair (others stay 0).
 * `need` defaults to every pair (zero-shot).
 */
export async function nearestDistanceTable(
  z: Float32Array,
  n: number,
  p: number,
  c: number,
  kernel: PairKernel,
  opts: TableOptions & { need?: Uint8Array } = {},
): Promise<Float32Array> {
  const need = opts.need ?? allPairs(n);
  const m = tableRows(n, need);
  const table = new Float32Array(m * p * n);
  const blocks = tableBlocks(n, p, need, opts);
  const bank8 = kernel.precision === 'int8' ? quantizeBank(z, n, p, c) : null;
  const euclidean = opts.euclidean ? euclideanBank(z, c) : undefined;
  for (const [k, b] of blocks.entries()) {
    mergeBlock(table, m, n, p, need, b, await computeBlock(z, bank8, b, p, c, kernel, euclidean));
    opts.onBlock?.(k + 1, blocks.length);
  }
  return table;
}

/** need for zero-shot: every ordered pair i != j. */
export function allPairs(n: number): Uint8Array {
  const need = new Uint8Array(n * n).fill(1);
  for (let i = 0; i < n; i++) need[i * n + i] = 0;
  return need;
}

/**
 * The straightforward form, as the reference does it: each image against all others, one
 * direction per product ([P, C] x [C, (N-1) P]). Used as the benchmark baseline and in tests.
 */
export async function nearestDistanceTableStraightforward(
  z: Float32Array,
  n: number,
  p: number,
  c: number,
  kernel: PairKernel,
): Promise<Float32Array> {
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
        table[(i * p + pp) * n + j] = dist(rowd2[pp * (n - 1) + jj]!);
      }
    }
  }
  return table;
}
