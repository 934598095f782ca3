/**
 * A plain TypeScript ViT forward pass with naive loops (float64 accumulation), independent of the
 * ONNX graph: the reference for the DINO v1 tiny-model test. Weights are given in PyTorch layout.
 */
import { resizePosEmbed } from '../../src/backbones/posembed.js';

export interface RefBlock {
  n1w: Float32Array;
  n1b: Float32Array;
  qkvW: Float32Array;
  qkvB: Float32Array; // [3C, C], [3C]
  projW: Float32Array;
  projB: Float32Array; // [C, C]
  n2w: Float32Array;
  n2b: Float32Array;
  fc1W: Float32Array;
  fc1B: Float32Array; // [M, C]
  fc2W: Float32Array;
  fc2B: Float32Array; // [C, M]
}
export interface RefVit {
  C: number;
  H: number;
  M: number;
  p: number;
  eps: number;
  patchW: Float32Array;
  patchB: Float32Array;
  cls: Float32Array;
  pos: Float32Array; // pos [1+g0², C]
  blocks: RefBlock[];
  normW: Float32Array;
  normB: Float32Array;
}

function layerNorm(x: Float64Array, w: Float32Array, b: Float32Array, eps: number): Float64Array {
  const n = x.length;
  let mean = 0;
  for (const v of x) mean += v;
  mean /= n;
  let vr = 0;
  for (const v of x) vr += (v - mean) ** 2;
  vr /= n;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = ((x[i] - mean) / Math.sqrt(vr + eps)) * w[i] + b[i];
  return out;
}

function linear(x: Float64Array, W: Float32Array, B: Float32Array, out: number): Float64Array {
  const inp = x.length;
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = B[o];
    for (let i = 0; i < inp; i++) s += W[o * inp + i] * x[i];
    y[o] = s;
  }
  return y;
}

function erf(x: number): number {
  // Abramowitz-Stegun 7.1.26 is too coarse; use a series / continued fraction good to ~1e-15
  const ax = Math.abs(x);
  if (ax < 3) {
    let sum = ax,
      term = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17) break;
    }
    const r = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -r : r;
  }
  // erfc continued fraction for large |x|
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return x < 0 ? erfc - 1 : 1 - erfc;
}

/** Forward of one image [3, S, S]: returns normed patch tokens per requested block and the normed CLS of the last block. */
export function refForward(m: RefVit, img: Float32Array, S: number, stages: number[]): { stages: Float64Array[]; cls: Float64Array } {
  const { C, H, M, p } = m;
  const G = S / p;
  const T = 1 + G * G;
  const Dh = C / H;
  const pos = resizePosEmbed(m.pos, C, G, 'dino');
  let x: Float64Array[] = [];
  const c0 = new Float64Array(C);
  for (let c = 0; c < C; c++) c0[c] = m.cls[c] + pos[c];
  x.push(c0);
  for (let gy = 0; gy < G; gy++) {
    for (let gx = 0; gx < G; gx++) {
      const t = new Float64Array(C);
      for (let c = 0; c < C; c++) {
        let s = m.patchB[c];
        for (let ch = 0; ch < 3; ch++)
          for (let ky = 0; ky < p; ky++)
            for (let kx = 0; kx < p; kx++) s += m.patchW[((c * 3 + ch) * p + ky) * p + kx] * img[(ch * S + gy * p + ky) * S + gx * p + kx];
        t[c] = s + pos[(1 + gy * G + gx) * C + c];
      }
      x.push(t);
    }
  }
  const outs: Float64Array[] = [];
  m.blocks.forEach((b, bi) => {
    const h = x.map((t) => layerNorm(t, b.n1w, b.n1b, m.eps));
    const qkv = h.map((t) => linear(t, b.qkvW, b.qkvB, 3 * C));
    const ctx = Array.from({ length: T }, () => new Float64Array(C));
    for (let hd = 0; hd < H; hd++) {
      for (let i = 0; i < T; i++) {
        const sc = new Float64Array(T);
        let mx = -Infinity;
        for (let j = 0; j < T; j++) {
          let s = 0;
          for (let d = 0; d < Dh; d++) s += qkv[i][hd * Dh + d] * qkv[j][C + hd * Dh + d];
          sc[j] = s / Math.sqrt(Dh);
          mx = Math.max(mx, sc[j]);
        }
        let z = 0;
        for (let j = 0; j < T; j++) z += sc[j] = Math.exp(sc[j] - mx);
        for (let j = 0; j < T; j++) for (let d = 0; d < Dh; d++) ctx[i][hd * Dh + d] += (sc[j] / z) * qkv[j][2 * C + hd * Dh + d];
      }
    }
    x = x.map((t, i) => {
      const a = linear(ctx[i], b.projW, b.projB, C);
      return t.map((v, c) => v + a[c]);
    });
    x = x.map((t) => {
      const f1 = linear(layerNorm(t, b.n2w, b.n2b, m.eps), b.fc1W, b.fc1B, M).map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
      const f2 = linear(f1, b.fc2W, b.fc2B, C);
      return t.map((v, c) => v + f2[c]);
    });
    if (stages.includes(bi)) {
      const o = new Float64Array((T - 1) * C);
      for (let i = 1; i < T; i++) o.set(layerNorm(x[i], m.normW, m.normB, m.eps), (i - 1) * C);
      outs[stages.indexOf(bi)] = o;
    }
  });
  return { stages: outs, cls: layerNorm(x[0], m.normW, m.normB, m.eps) };
}
