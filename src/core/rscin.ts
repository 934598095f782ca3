/**
 * RsCIN: Re-scoring with Constrained Image-level Neighborhood (paper §3.4), as the reference.
 *
 *   s~ = (s - min s) / (max s - min s)                     min-max normalised image scores [N]
 *   W  = T T^T                                             image-token similarity [N, N]
 *   W_k = W with all but the k largest entries of each row zeroed (the image itself included)
 *   P_k = D_k^-1 W_k,  D_k = diag(row sums of W_k)        rows sum to 1
 *   s_k = P_k s~,       result = mean over k in k_list of s_k
 * A k_list that is empty or contains 0 returns the scores unchanged (the reference's switch-off).
 */
import type { ImageTokens } from './types.js';

export const RSCIN_K_MVTEC = [1, 2, 3];
export const RSCIN_K_VISA = [1, 8, 9];

/** L2-normalises each row of tokens [N, D] in place (an all-zero row stays zero); returns it. */
export function l2NormalizeRows(data: Float32Array, n: number, d: number): Float32Array {
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = i * d; k < (i + 1) * d; k++) s += data[k] * data[k];
    if (s === 0) continue;
    const inv = 1 / Math.sqrt(s);
    for (let k = i * d; k < (i + 1) * d; k++) data[k] *= inv;
  }
  return data;
}

/** W = T T^T in float64 from float32 tokens [N, D]. */
export function tokenSimilarity(tokens: ImageTokens): Float64Array {
  const { n, d, data } = tokens;
  const w = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += data[i * d + k] * data[j * d + k];
      w[i * n + j] = s;
      w[j * n + i] = s;
    }
  }
  return w;
}

/** Min-max normalisation; constant scores normalise to zeros (the reference would divide by 0). */
export function minMaxNormalise(scores: ArrayLike<number>): Float64Array {
  let lo = Infinity,
    hi = -Infinity;
  for (let i = 0; i < scores.length; i++) {
    lo = Math.min(lo, scores[i]);
    hi = Math.max(hi, scores[i]);
  }
  const out = new Float64Array(scores.length);
  const span = hi - lo;
  if (span > 0) for (let i = 0; i < scores.length; i++) out[i] = (scores[i] - lo) / span;
  return out;
}

/** RsCIN re-scoring of image scores [N] with image tokens [N, D]. */
export function rscin(scores: ArrayLike<number>, tokens: ImageTokens, kList: number[]): Float64Array {
  const n = scores.length;
  if (tokens.n !== n) throw new Error(`RsCIN: ${n} scores but ${tokens.n} image tokens`);
  if (kList.length === 0 || kList.includes(0)) return Float64Array.from(scores);
  for (const k of kList) if (!Number.isInteger(k) || k < 0) throw new Error(`RsCIN: window sizes must be non-negative integers, got ${k}`);
  const s = minMaxNormalise(scores);
  const w = tokenSimilarity(tokens);
  const out = new Float64Array(n);
  const order = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    // row i's entries by decreasing similarity (stable by index for ties)
    for (let j = 0; j < n; j++) order[j] = j;
    const row = w.subarray(i * n, (i + 1) * n);
    const sorted = Array.from(order).sort((a, b) => row[b] - row[a] || a - b);
    for (const kRaw of kList) {
      const k = Math.min(kRaw, n);
      let num = 0,
        den = 0;
      for (let t = 0; t < k; t++) {
        const j = sorted[t];
        num += row[j] * s[j];
        den += row[j];
      }
      out[i] += num / den / kList.length;
    }
  }
  return out;
}
