/**
 * Projected features (`--project K`, issue 17's faster setting): each (stage, r) bank of unit
 * patch features Z [rows, C] is projected on K directions of the batch itself and made unit
 * again, so that MSM's products cost K / C of the full ones.
 *
 * The directions: the batch's mean direction first (unit features share a large common component;
 * keeping it keeps every projected norm near 1, where centring alone would leave small, noisy
 * residuals), then the top K - 1 principal directions of the centred features orthogonal to it.
 * Distances between patches then keep most of their variance: on the dev categories K = 128 of 512
 * channels kept the dev mean within 0.3 point at a quarter of the MSM, where pooling channels to
 * 128 lost up to 0.9 (docs/accuracy.md, tenth round). Label-free and per batch, like MSM itself.
 *
 * Rows with patch energy (`--norm-exponent` below 1, core/lnamd.ts) are projected the same way on
 * their own batch's directions and then given back their norm: the projection keeps each row's
 * direction in K channels and its energy as it was (`projectRows`; docs/accuracy.md, fourteenth
 * round). Unit rows stay unit.
 *
 * Deterministic: the covariance from every `stride`-th row (at most COVARIANCE_ROWS rows), a
 * seeded start and a fixed count of subspace-iteration steps. The three products (covariance,
 * subspace steps, projection) go through a MatMul: the kernel's (ONNX Runtime's Gemm in the
 * worker; the rest here is O(rows C)) or, without one, jsMatMul.
 */
import type { MatMul } from './kernel.js';

/** Rows that the covariance is estimated from, at most (every stride-th row of the bank). */
export const COVARIANCE_ROWS = 16384;
/** Subspace-iteration steps: the subspace, not exact eigenvectors, is what the projection needs. */
const STEPS = 20;
/**
 * Steps from a warm start (BasisAccumulator.basis `start`): a basis of nearly the same rows (a
 * bank's held-out folds start from the whole bank's) is a few steps from theirs; the steps' Gram-
 * Schmidt in JS is most of a basis's time.
 */
const WARM_STEPS = 4;

/** Projection basis [K, C] (orthonormal rows; row 0 the mean direction) of unit features z [rows, C]. */
export async function projectionBasis(z: Float32Array, C: number, K: number, mm: MatMul = jsMatMul): Promise<Float32Array> {
  const rows = z.length / C;
  if (!Number.isInteger(rows) || rows < 1) throw new Error(`projection: ${z.length} values are not rows of ${C} channels`);
  return new BasisAccumulator(rows, C).add(z).basis(K, mm);
}

/**
 * projectionBasis over rows that arrive in chunks (the cluster's basis jobs: a bank's LNAMD
 * features a few images at a time, never all at once): the same sums in the same order and the
 * same rows kept, so the same basis as projectionBasis of all the rows at once.
 */
export class BasisAccumulator {
  private readonly sum: Float64Array;
  /** every stride-th row (global index), raw: centred once the mean is known */
  private readonly kept: Float32Array;
  private readonly stride: number;
  private seen = 0;

  constructor(
    readonly rows: number,
    readonly C: number,
  ) {
    if (!Number.isInteger(rows) || rows < 1) throw new Error(`projection: ${rows} rows`);
    this.sum = new Float64Array(C);
    this.stride = Math.max(1, Math.ceil(rows / COVARIANCE_ROWS));
    this.kept = new Float32Array(Math.ceil(rows / this.stride) * C);
  }

  /** The next rows z [r, C], in order. */
  add(z: Float32Array): this {
    const C = this.C,
      r = z.length / C;
    if (!Number.isInteger(r) || this.seen + r > this.rows)
      throw new Error(`projection: ${z.length} values after ${this.seen} of ${this.rows} rows of ${C}`);
    for (let i = 0; i < r; i++) {
      for (let c = 0; c < C; c++) this.sum[c]! += z[i * C + c]!;
      const g = this.seen + i;
      if (g % this.stride === 0) this.kept.set(z.subarray(i * C, (i + 1) * C), (g / this.stride) * C);
    }
    this.seen += r;
    return this;
  }

  /**
   * The basis [K, C] of every row added (all `rows` of them). `start`: a basis [K, C] of nearly the
   * same rows to iterate from (WARM_STEPS steps instead of STEPS from a seeded random start).
   */
  async basis(K: number, mm: MatMul = jsMatMul, start?: Float32Array): Promise<Float32Array> {
    const C = this.C;
    if (this.seen !== this.rows) throw new Error(`projection: ${this.seen} of ${this.rows} rows added`);
    if (!Number.isInteger(K) || K < 2 || K > C) throw new Error(`projection: K must be an integer 2..${C} (the channels), got ${K}`);
    const u0 = unit(this.sum) ?? unit(Float64Array.from({ length: C }, (_, c) => (c === 0 ? 1 : 0)))!;
    const mean = this.sum.map((v) => v / this.rows);
    const x = deflated(this.kept, C, mean, u0);
    const cov = await mm(x, x, C, x.length / C, C, true); // x^T x [C, C]
    if (start && start.length !== K * C) throw new Error(`projection: a start basis of ${start.length} values, not [${K}, ${C}]`);
    const q = await subspace(cov, C, K - 1, u0, mm, start); // [C, K - 1], orthonormal columns
    const out = new Float32Array(K * C);
    for (let c = 0; c < C; c++) out[c] = u0[c]!;
    for (let k = 1; k < K; k++) for (let c = 0; c < C; c++) out[k * C + c] = q[c * (K - 1) + k - 1]!;
    return out;
  }
}

/** Coordinates z basis^T [rows, K] of rows z [rows, C] on the basis [K, C] (not normalised). */
export function projectCoordinates(z: Float32Array, C: number, basis: Float32Array, mm: MatMul = jsMatMul): Promise<Float32Array> {
  const K = basis.length / C;
  return mm(z, transpose(basis, K, C), z.length / C, C, K, false);
}

/** Unit features z [rows, C] -> unit y [rows, K] = normalise(basis z) with basis [K, C]. */
export function projectUnit(z: Float32Array, C: number, basis: Float32Array, mm: MatMul = jsMatMul): Promise<Float32Array> {
  return projectRows(z, C, basis, mm, false);
}

/**
 * Rows z [rows, C] -> y [rows, K] = normalise(basis z) (|z| with keepNorm: rows with patch energy keep
 * their norm, unit rows are made unit again) with basis [K, C].
 */
export async function projectRows(
  z: Float32Array,
  C: number,
  basis: Float32Array,
  mm: MatMul = jsMatMul,
  keepNorm = false,
): Promise<Float32Array> {
  const rows = z.length / C,
    K = basis.length / C;
  const out = await projectCoordinates(z, C, basis, mm); // [rows, K]
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let k = 0; k < K; k++) ss += out[i * K + k]! ** 2;
    let inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    if (keepNorm) inv *= rowNorm(z, i, C);
    for (let k = 0; k < K; k++) out[i * K + k]! *= inv;
  }
  return out;
}

/** |z_i| of row i of z [rows, C]. */
function rowNorm(z: Float32Array, i: number, C: number): number {
  let ss = 0;
  for (let c = 0; c < C; c++) ss += z[i * C + c]! ** 2;
  return Math.sqrt(ss);
}

/** Both steps: z [rows, C] projected on its own batch's K directions, unit [rows, K]. */
export async function projectBank(z: Float32Array, C: number, K: number, mm: MatMul = jsMatMul): Promise<Float32Array> {
  return projectUnit(z, C, await projectionBasis(z, C, K, mm), mm);
}

/** op(A) B in plain JS (float64 sums): the MatMul of kernels without one, and of tests. */
export const jsMatMul: MatMul = async (a, b, m, k, n, transA) => {
  const out = new Float32Array(m * n);
  const row = new Float64Array(n);
  for (let i = 0; i < m; i++) {
    row.fill(0);
    for (let t = 0; t < k; t++) {
      const v = transA ? a[t * m + i]! : a[i * k + t]!;
      if (v === 0) continue;
      const o = t * n;
      for (let j = 0; j < n; j++) row[j]! += v * b[o + j]!;
    }
    out.set(row, i * n);
  }
  return out;
};

/** Rows [R', C] (the kept ones) centred on the mean, with their u0 component removed. */
function deflated(kept: Float32Array, C: number, mean: Float64Array, u0: Float64Array): Float32Array {
  const out = new Float32Array(kept.length);
  const x = new Float64Array(C);
  for (let r = 0; r < kept.length / C; r++) {
    for (let c = 0; c < C; c++) x[c] = kept[r * C + c]! - mean[c]!;
    const a = dot(x, u0);
    for (let c = 0; c < C; c++) out[r * C + c] = x[c]! - a * u0[c]!;
  }
  return out;
}

/** Orthonormal columns [C, k] (orthogonal to u0) spanning the top-k eigenspace of the symmetric m [C, C]. */
async function subspace(m: Float32Array, C: number, k: number, u0: Float64Array, mm: MatMul, start?: Float32Array): Promise<Float32Array> {
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  };
  // q [C, k]: the start basis's rows 1..k as columns, else seeded random
  let q: Float32Array = start
    ? Float32Array.from({ length: C * k }, (_, i) => start[(1 + (i % k)) * C + Math.floor(i / k)]!)
    : Float32Array.from({ length: C * k }, rand);
  orthonormaliseColumns(q, C, k, u0);
  for (let step = 0; step < (start ? WARM_STEPS : STEPS); step++) {
    q = await mm(m, q, C, C, k, false);
    orthonormaliseColumns(q, C, k, u0);
  }
  return q;
}

/** Modified Gram-Schmidt of the k columns of q [C, k] in place, against u0 and the columns before; a vanished column gets an axis. */
function orthonormaliseColumns(q: Float32Array, C: number, k: number, u0: Float64Array): void {
  const cols = Array.from({ length: k }, (_, j) => Float64Array.from({ length: C }, (_, c) => q[c * k + j]!));
  for (let j = 0; j < k; j++) {
    const against = [u0, ...cols.slice(0, j)];
    for (let attempt = 0; attempt <= C; attempt++) {
      const v = cols[j]!;
      for (const u of against) {
        const a = dot(v, u);
        for (let c = 0; c < C; c++) v[c]! -= a * u[c]!;
      }
      const n = Math.sqrt(dot(v, v));
      if (n > 1e-6) {
        for (let c = 0; c < C; c++) v[c]! /= n;
        break;
      }
      cols[j] = Float64Array.from({ length: C }, (_, c) => (c === (j + attempt) % C ? 1 : 0)); // rank-deficient: try an axis
    }
  }
  cols.forEach((v, j) => {
    for (let c = 0; c < C; c++) q[c * k + j] = v[c]!;
  });
}

/** a [m, n] -> a^T [n, m]. */
function transpose(a: Float32Array, m: number, n: number): Float32Array {
  const out = new Float32Array(m * n);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) out[j * m + i] = a[i * n + j]!;
  return out;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let k = 0; k < a.length; k++) s += a[k]! * b[k]!;
  return s;
}

/** a / |a|, or null for the zero vector. */
function unit(a: Float64Array): Float64Array | null {
  const n = Math.sqrt(dot(a, a));
  if (!(n > 0)) return null;
  return a.map((v) => v / n);
}
