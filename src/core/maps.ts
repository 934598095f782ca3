/**
 * Anomaly maps: patch scores [N, h, w] upsampled bilinearly with align_corners = true to the input
 * size (the reference's F.interpolate(..., mode='bilinear', align_corners=True)), so
 * src = dst * (in - 1) / (out - 1). The image score is the map's maximum (the paper), or with the
 * rule `top:F` the mean of the map's highest fraction F of pixels (ImageScoreRule).
 */

/** [N, h, w] -> [N, H, W] (float32 output, float64 arithmetic). */
import { linearAxis } from './interp.js';
export function upsampleAlignCorners(
  src: Float64Array | Float32Array,
  n: number,
  h: number,
  w: number,
  H: number,
  W: number,
): Float32Array {
  const out = new Float32Array(n * H * W);
  const ya = linearAxis(H, h, true),
    xa = linearAxis(W, w, true);
  for (let i = 0; i < n; i++) {
    const so = i * h * w,
      oo = i * H * W;
    for (let y = 0; y < H; y++) {
      const r0 = so + ya.i0[y] * w,
        r1 = so + ya.i1[y] * w,
        ly = ya.l[y];
      for (let x = 0; x < W; x++) {
        const lx = xa.l[x],
          x0 = xa.i0[x],
          x1 = xa.i1[x];
        const top = src[r0 + x0] + (src[r0 + x1] - src[r0 + x0]) * lx;
        const bot = src[r1 + x0] + (src[r1 + x1] - src[r1 + x0]) * lx;
        out[oo + y * W + x] = top + (bot - top) * ly;
      }
    }
  }
  return out;
}

/** Maximum of each of the N maps in [N, ...]. */
export function mapMaxima(maps: Float32Array | Float64Array, n: number): Float64Array {
  const per = maps.length / n;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let m = -Infinity;
    for (let k = i * per; k < (i + 1) * per; k++) if (maps[k] > m) m = maps[k];
    out[i] = m;
  }
  return out;
}

/**
 * How a map [H, W] becomes its image score: 'max' (the paper's step 4), or the mean of the highest
 * `fraction` of its pixels. A mean over the top few percent is steadier than one pixel where normal
 * images have isolated high patches (textures, image borders): on magnetic_tile it gained several
 * AUROC points (README, the accuracy table).
 */
export type ImageScoreRule = { kind: 'max' } | { kind: 'top'; fraction: number };

export const MAX_IMAGE_SCORE: ImageScoreRule = { kind: 'max' };

/** 'max' or 'top:F' (0 < F <= 1) -> the rule; throws with `what` named on anything else. */
export function parseImageScoreRule(s: string, what = 'image score'): ImageScoreRule {
  if (s === 'max') return MAX_IMAGE_SCORE;
  const m = /^top:([0-9.eE+-]+)$/.exec(s);
  const f = m ? Number(m[1]) : Number.NaN;
  if (!(f > 0 && f <= 1)) throw new Error(`${what}: expected 'max' or 'top:F' with 0 < F <= 1 (e.g. top:0.025), got '${s}'`);
  return { kind: 'top', fraction: f };
}

export function formatImageScoreRule(r: ImageScoreRule): string {
  return r.kind === 'max' ? 'max' : `top:${r.fraction}`;
}

/** The image score of one map (any length) by `rule`. */
export function imageScoreOf(map: ArrayLike<number>, rule: ImageScoreRule): number {
  const len = map.length;
  if (rule.kind === 'max') {
    let m = -Infinity;
    for (let k = 0; k < len; k++) if (map[k]! > m) m = map[k]!;
    return m;
  }
  const v = Float64Array.from(map).sort(); // NaN sorts last and is left out, as 'max' leaves it out
  let valid = len;
  while (valid > 0 && Number.isNaN(v[valid - 1]!)) valid--;
  if (valid === 0) return -Infinity;
  const k = Math.max(1, Math.round(valid * rule.fraction));
  let s = 0;
  for (let j = valid - k; j < valid; j++) s += v[j]!;
  return s / k;
}

/** Image scores of the N maps in [N, ...] by `rule`. */
export function imageScores(maps: Float32Array | Float64Array, n: number, rule: ImageScoreRule): Float64Array {
  if (rule.kind === 'max') return mapMaxima(maps, n);
  const per = maps.length / n;
  return Float64Array.from({ length: n }, (_, i) => imageScoreOf(maps.subarray(i * per, (i + 1) * per), rule));
}

/** Optional Gaussian smoothing of each map (sigma in pixels; truncated at 4 sigma). */
export function gaussianSmooth(maps: Float32Array, n: number, H: number, W: number, sigma: number): Float32Array {
  if (!(sigma > 0)) return maps;
  const rad = Math.max(1, Math.ceil(4 * sigma));
  const k = new Float64Array(2 * rad + 1);
  let sum = 0;
  for (let i = -rad; i <= rad; i++) sum += k[i + rad] = Math.exp((-i * i) / (2 * sigma * sigma));
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  const out = new Float32Array(maps.length);
  const tmp = new Float64Array(H * W);
  const refl = (i: number, m: number) => (i < 0 ? -i - 1 : i >= m ? 2 * m - i - 1 : i); // 'reflect' border
  for (let im = 0; im < n; im++) {
    const o = im * H * W;
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (let t = -rad; t <= rad; t++) s += k[t + rad] * maps[o + y * W + refl(Math.min(Math.max(x + t, -W), 2 * W - 1), W)];
        tmp[y * W + x] = s;
      }
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        let s = 0;
        for (let t = -rad; t <= rad; t++) s += k[t + rad] * tmp[refl(Math.min(Math.max(y + t, -H), 2 * H - 1), H) * W + x];
        out[o + y * W + x] = s;
      }
  }
  return out;
}
