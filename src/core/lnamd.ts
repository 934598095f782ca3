/**
 * LNAMD: Local Neighbourhood Aggregation with Multiple Degrees (paper §3.2), as the reference
 * `LNAMD._embed` computes it, one stage and one aggregation degree r at a time.
 *
 * For stage l with features F_l [N, h, w, C_l] (channels last):
 *   1. LayerNorm over each image's whole [C_l, h, w] (no affine, eps 1e-5, biased variance).
 *   2. r x r neighbourhoods, stride 1, zero padding (r-1)/2 (nn.Unfold): the per-patch vector
 *      u [C_l * r * r], index c*r*r + ky*r + kx, is pooled to C' values by adaptive average
 *      pooling over contiguous bins (bin t = [floor(t L / C'), ceil((t+1) L / C')), L = C_l r^2).
 *      When C' = C_l the bins are exactly the r*r window of one channel: a box mean that divides
 *      by r^2 including padded zeros.
 *   3. If (h, w) differs from the first stage's grid (H, W), bilinear resize to (H, W),
 *      align_corners = false. The reference resizes the unfolded maps before pooling; both steps
 *      are linear and act on different axes, so pooling first gives the same result, cheaper.
 *   4. L2 normalisation of every patch vector (musc.py's `features /= features.norm(dim=-1)`).
 * r = 1 is the identity in step 2.
 */
import { linearAxis } from './interp.js';
import type { StageFeatures } from './types.js';
import { fromFloat16 } from '../io/float16.js';

export const LAYER_NORM_EPS = 1e-5;

/**
 * Step 1: each image standardised over all of its h*w*C values. Returns [N, h, w, C] float32.
 * float16 storage (FeatureData) is widened here, one image at a time.
 */
export function layerNormImages(stage: StageFeatures): Float32Array {
  const { n, h, w, c, data } = stage;
  const per = h * w * c;
  if (data.length !== n * per) throw new Error(`stage features: data has ${data.length} values, expected N*h*w*C = ${n}*${h}*${w}*${c}`);
  const out = new Float32Array(data.length);
  const wide = data instanceof Uint16Array ? new Float32Array(per) : null;
  for (let i = 0; i < n; i++) {
    const off = i * per;
    const x = wide ? fromFloat16(data.subarray(off, off + per) as Uint16Array, wide) : (data as Float32Array).subarray(off, off + per);
    let sum = 0;
    for (let k = 0; k < per; k++) sum += x[k]!;
    const mean = sum / per;
    let ss = 0;
    for (let k = 0; k < per; k++) {
      const d = x[k]! - mean;
      ss += d * d;
    }
    const inv = 1 / Math.sqrt(ss / per + LAYER_NORM_EPS);
    for (let k = 0; k < per; k++) out[off + k] = (x[k]! - mean) * inv;
  }
  return out;
}

/**
 * Step 2 for one image, C' = C: per-channel r x r box mean with zero padding, divided by r^2.
 * src, dst: [h, w, C]. Separable: row sums, then column sums.
 */
function boxMean(
  src: Float32Array,
  srcOff: number,
  h: number,
  w: number,
  c: number,
  r: number,
  dst: Float64Array,
  tmp: Float64Array,
): void {
  const rad = (r - 1) >> 1;
  // horizontal: tmp[y][x][c] = sum_{dx} src[y][x+dx][c]
  tmp.fill(0);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * c;
      for (let dx = -rad; dx <= rad; dx++) {
        const xx = x + dx;
        if (xx < 0 || xx >= w) continue;
        const s = srcOff + (y * w + xx) * c;
        for (let k = 0; k < c; k++) tmp[o + k] += src[s + k];
      }
    }
  }
  dst.fill(0);
  const inv = 1 / (r * r);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * c;
      for (let dy = -rad; dy <= rad; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        const s = (yy * w + x) * c;
        for (let k = 0; k < c; k++) dst[o + k] += tmp[s + k];
      }
      for (let k = 0; k < c; k++) dst[o + k] *= inv;
    }
  }
}

/**
 * Step 2 for one image, general C': unfold then adaptive average pooling of L = C r^2 -> C'.
 * src [h, w, C] -> dst [h, w, C'].
 */
function unfoldPool(src: Float32Array, srcOff: number, h: number, w: number, c: number, r: number, cOut: number, dst: Float64Array): void {
  const rad = (r - 1) >> 1;
  const rr = r * r;
  const L = c * rr;
  const u = new Float64Array(L);
  const starts = new Int32Array(cOut);
  const ends = new Int32Array(cOut);
  for (let t = 0; t < cOut; t++) {
    starts[t] = Math.floor((t * L) / cOut);
    ends[t] = Math.ceil(((t + 1) * L) / cOut);
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      // u[ch*rr + ky*r + kx] = src[y+ky-rad][x+kx-rad][ch], zero outside
      u.fill(0);
      for (let ky = 0; ky < r; ky++) {
        const yy = y + ky - rad;
        if (yy < 0 || yy >= h) continue;
        for (let kx = 0; kx < r; kx++) {
          const xx = x + kx - rad;
          if (xx < 0 || xx >= w) continue;
          const s = srcOff + (yy * w + xx) * c;
          const slot = ky * r + kx;
          for (let ch = 0; ch < c; ch++) u[ch * rr + slot] = src[s + ch];
        }
      }
      const o = (y * w + x) * cOut;
      for (let t = 0; t < cOut; t++) {
        let s = 0;
        for (let k = starts[t]; k < ends[t]; k++) s += u[k];
        dst[o + t] = s / (ends[t] - starts[t]);
      }
    }
  }
}

/**
 * Bilinear resize of one image's channels-last map [h, w, C] to [H, W, C], align_corners = false
 * (torch F.interpolate: src = (dst + 0.5) * in / out - 0.5, clamped at 0).
 */
export function resizeBilinearHWC(src: Float64Array, h: number, w: number, c: number, H: number, W: number): Float64Array {
  const out = new Float64Array(H * W * c);
  const ya = linearAxis(H, h, false),
    xa = linearAxis(W, w, false);
  for (let y = 0; y < H; y++) {
    const wy1 = ya.l[y],
      wy0 = 1 - wy1;
    for (let x = 0; x < W; x++) {
      const wx1 = xa.l[x],
        wx0 = 1 - wx1;
      const p00 = (ya.i0[y] * w + xa.i0[x]) * c,
        p01 = (ya.i0[y] * w + xa.i1[x]) * c;
      const p10 = (ya.i1[y] * w + xa.i0[x]) * c,
        p11 = (ya.i1[y] * w + xa.i1[x]) * c;
      const o = (y * W + x) * c;
      for (let k = 0; k < c; k++) {
        out[o + k] = wy0 * (wx0 * src[p00 + k] + wx1 * src[p01 + k]) + wy1 * (wx0 * src[p10 + k] + wx1 * src[p11 + k]);
      }
    }
  }
  return out;
}

export interface AggregateOptions {
  /** target grid (the first stage's) */
  gridH: number;
  gridW: number;
  /** target channel count C' (the reference uses the first stage's C) */
  channels: number;
  /** skip the final L2 normalisation (for parity tests of the pre-norm features) */
  skipL2?: boolean;
  /**
   * B of the final normalisation (default 1, the paper's unit vectors): each patch z becomes
   * z^ (|z| / rho)^(1 - B), rho the image's RMS patch norm of this stage and r, so that a patch keeps
   * part of its feature energy relative to its image (absent or 1: unit rows; MSM distances of
   * other values are Euclidean, see unitRows)
   */
  normExponent?: number;
}

/**
 * Refuses a norm exponent other than 1 with what needs unit rows: the 'exact' precision (its
 * kernel recomputes the distance of the rows it is given, here the augmented ones of
 * msm.ts floatBlock) and 'int8' (one quantisation step for features and norms). Projection
 * takes either (project.ts projectRows keeps an energy row's norm). `where` names the setting for
 * the message. Every entry point calls it (config, the engine, bank build, open and predict, the
 * cluster's pre-passes).
 */
export function checkNormExponent(normExponent: number | undefined, precision: string, where = 'normExponent'): void {
  if (normExponent === undefined || normExponent === 1) return;
  if (!(normExponent >= 0 && normExponent <= 1)) throw new Error(`${where}: must be in [0, 1], got ${normExponent}`);
  if (precision !== 'fast')
    throw new Error(`${where} ${normExponent} needs the 'fast' MSM precision, not '${precision}' (or norm exponent 1)`);
}

/** Whether a target's rows are unit vectors (normExponent absent or 1): the MSM kernels' 2 - 2 a.b applies. */
export function unitRows(t: Pick<AggregateOptions, 'normExponent'>): boolean {
  return (t.normExponent ?? 1) === 1;
}

/**
 * Steps 2-4 for one stage and one r. `normed` is the output of layerNormImages for `stage`.
 * Returns Z [N, H*W, C'] (float32, unit vectors unless skipL2).
 */
export function aggregateStage(stage: StageFeatures, normed: Float32Array, r: number, opts: AggregateOptions): Float32Array {
  const { n, h, w, c } = stage;
  if (r < 1 || r % 2 !== 1) throw new Error(`LNAMD: aggregation degree r must be an odd integer >= 1, got ${r}`);
  const { gridH: H, gridW: W, channels: cOut } = opts;
  const P = H * W;
  const out = new Float32Array(n * P * cOut);
  const per = h * w * c;
  const agg = new Float64Array(h * w * cOut);
  const tmp = cOut === c ? new Float64Array(h * w * c) : new Float64Array(0);
  for (let i = 0; i < n; i++) {
    if (cOut === c) {
      if (r === 1) for (let k = 0; k < per; k++) agg[k] = normed[i * per + k];
      else boxMean(normed, i * per, h, w, c, r, agg, tmp);
    } else {
      unfoldPool(normed, i * per, h, w, c, r, cOut, agg);
    }
    const grid = h === H && w === W ? agg : resizeBilinearHWC(agg, h, w, cOut, H, W);
    normaliseRows(grid, out.subarray(i * P * cOut, (i + 1) * P * cOut), P, cOut, opts);
  }
  return out;
}

/**
 * Step 4 for one image: rows [P, C'] of `grid` into `dst`, each divided by its norm (unit rows), or
 * by |z|^B rho^(1 - B) with normExponent B (rho the image's RMS row norm), or left as they are
 * (skipL2). An all-zero patch stays zero.
 */
function normaliseRows(grid: Float64Array, dst: Float32Array, P: number, c: number, opts: AggregateOptions): void {
  const norm2 = new Float64Array(P);
  let sum2 = 0;
  for (let p = 0; p < P; p++) {
    let ss = 0;
    for (let k = 0; k < c; k++) ss += grid[p * c + k] * grid[p * c + k];
    norm2[p] = ss;
    sum2 += ss;
  }
  const B = opts.normExponent ?? 1;
  const rho = Math.sqrt(sum2 / P);
  for (let p = 0; p < P; p++) {
    const ss = norm2[p];
    let inv = 1;
    if (!opts.skipL2 && ss > 0) inv = B === 1 ? 1 / Math.sqrt(ss) : ss ** (-B / 2) * rho ** (B - 1);
    for (let k = 0; k < c; k++) dst[p * c + k] = grid[p * c + k] * inv;
  }
}

/**
 * The target grid and channel count for a set of stages: the first stage's, or a G x G grid
 * (`grid`: features of a larger input scored on a smaller grid, docs/accuracy.md, fourth round).
 */
export function lnamdTarget(stages: StageFeatures[], channels?: number, grid?: number, normExponent?: number): AggregateOptions {
  if (stages.length === 0) throw new Error('LNAMD: no stages');
  if (grid !== undefined && !(Number.isInteger(grid) && grid >= 1))
    throw new Error(`LNAMD: the score grid must be a positive integer, got ${grid}`);
  if (normExponent !== undefined && !(normExponent >= 0 && normExponent <= 1))
    throw new Error(`LNAMD: the norm exponent must be in [0, 1], got ${normExponent}`);
  const t: AggregateOptions = { gridH: grid ?? stages[0].h, gridW: grid ?? stages[0].w, channels: channels ?? stages[0].c };
  // absent when 1, so that unit targets (and the cluster's content keys of them) are as before
  return normExponent === undefined || normExponent === 1 ? t : { ...t, normExponent };
}
