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
 * Deterministic: the covariance from every `stride`-th row (at most COVARIANCE_ROWS rows), a
 * seeded start and a fixed count of subspace-iteration steps.
 */

/** Rows that the covariance is estimated from, at most (every stride-th row of the bank). */
export const COVARIANCE_ROWS = 16384;
/** Subspace-iteration steps: the subspace, not exact eigenvectors, is what the projection needs. */
const STEPS = 20;

/** Projection basis [K, C] (orthonormal rows; row 0 the mean direction) of unit features z [rows, C]. */
export function projectionBasis(z: Float32Array, C: number, K: number): Float32Array {
  const rows = z.length / C;
  if (!Number.isInteger(rows) || rows < 1) throw new Error(`projection: ${z.length} values are not rows of ${C} channels`);
  if (!Number.isInteger(K) || K < 2 || K > C) throw new Error(`projection: K must be an integer 2..${C} (the channels), got ${K}`);
  const mean = new Float64Array(C);
  for (let i = 0; i < rows; i++) for (let c = 0; c < C; c++) mean[c]! += z[i * C + c]!;
  const u0 = unit(mean) ?? unit(Float64Array.from({ length: C }, (_, c) => (c === 0 ? 1 : 0)))!;
  for (let c = 0; c < C; c++) mean[c]! /= rows;
  const cov = deflatedCovariance(z, C, mean, u0);
  const basis = [u0, ...subspace(cov, C, K - 1, u0)];
  const out = new Float32Array(K * C);
  basis.forEach((b, k) => {
    for (let c = 0; c < C; c++) out[k * C + c] = b[c]!;
  });
  return out;
}

/** Unit features z [rows, C] -> unit y [rows, K] = normalise(basis z) with basis [K, C]. */
export function projectUnit(z: Float32Array, C: number, basis: Float32Array): Float32Array {
  const rows = z.length / C,
    K = basis.length / C;
  const out = new Float32Array(rows * K);
  for (let i = 0; i < rows; i++) {
    const zo = i * C;
    let ss = 0;
    for (let k = 0; k < K; k++) {
      const bo = k * C;
      let v = 0;
      for (let c = 0; c < C; c++) v += basis[bo + c]! * z[zo + c]!;
      out[i * K + k] = v;
      ss += v * v;
    }
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let k = 0; k < K; k++) out[i * K + k]! *= inv;
  }
  return out;
}

/** Both steps: z [rows, C] projected on its own batch's K directions, unit [rows, K]. */
export function projectBank(z: Float32Array, C: number, K: number): Float32Array {
  return projectUnit(z, C, projectionBasis(z, C, K));
}

/** Covariance [C, C] of the centred rows (every stride-th) with their u0 component removed. */
function deflatedCovariance(z: Float32Array, C: number, mean: Float64Array, u0: Float64Array): Float64Array {
  const rows = z.length / C;
  const stride = Math.max(1, Math.ceil(rows / COVARIANCE_ROWS));
  const cov = new Float64Array(C * C);
  const x = new Float64Array(C);
  for (let i = 0; i < rows; i += stride) {
    for (let c = 0; c < C; c++) x[c] = z[i * C + c]! - mean[c]!;
    const a = dot(x, u0);
    for (let c = 0; c < C; c++) x[c]! -= a * u0[c]!;
    for (let r = 0; r < C; r++) {
      const v = x[r]!;
      if (v === 0) continue;
      const o = r * C;
      for (let c = r; c < C; c++) cov[o + c]! += v * x[c]!;
    }
  }
  for (let r = 0; r < C; r++) for (let c = 0; c < r; c++) cov[r * C + c] = cov[c * C + r]!;
  return cov;
}

/** An orthonormal basis (k vectors, orthogonal to u0) of the top-k eigenspace of the symmetric m [C, C]. */
function subspace(m: Float64Array, C: number, k: number, u0: Float64Array): Float64Array[] {
  let seed = 12345;
  const rand = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648 - 0.5;
  };
  let q: Float64Array[] = Array.from({ length: k }, () => Float64Array.from({ length: C }, rand));
  orthonormalise(q, u0);
  for (let step = 0; step < STEPS; step++) {
    q = q.map((v) => times(m, C, v));
    orthonormalise(q, u0);
  }
  return q;
}

/** m [C, C] times v [C]. */
function times(m: Float64Array, C: number, v: Float64Array): Float64Array {
  const y = new Float64Array(C);
  for (let r = 0; r < C; r++) {
    let s = 0;
    const o = r * C;
    for (let c = 0; c < C; c++) s += m[o + c]! * v[c]!;
    y[r] = s;
  }
  return y;
}

/** Modified Gram-Schmidt in place against u0 and the vectors before; a vector that vanishes gets a fresh axis. */
function orthonormalise(q: Float64Array[], u0: Float64Array): void {
  const C = u0.length;
  for (let j = 0; j < q.length; j++) {
    const against = [u0, ...q.slice(0, j)];
    for (let attempt = 0; attempt <= C; attempt++) {
      const v = q[j]!;
      for (const u of against) {
        const a = dot(v, u);
        for (let c = 0; c < C; c++) v[c]! -= a * u[c]!;
      }
      const n = Math.sqrt(dot(v, v));
      if (n > 1e-9) {
        for (let c = 0; c < C; c++) v[c]! /= n;
        break;
      }
      q[j] = Float64Array.from({ length: C }, (_, c) => (c === (j + attempt) % C ? 1 : 0)); // rank-deficient: try an axis
    }
  }
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
