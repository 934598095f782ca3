/**
 * PRIVATE 8-bit resizing for masks, bit-exact with Pillow's `Image.resize` on mode 'L' images
 * (libImaging/Resample.c), until the shared src/image/resample.ts lands (the lead will unify):
 *
 * - bilinear: separable convolution, horizontal pass then vertical, each rounded to uint8.
 *   precompute_coeffs: scale = in/out, filterscale = max(scale, 1) (antialiased when shrinking),
 *   support = 1 * filterscale, center = (x + 0.5) * scale,
 *   xmin = max(int(center - support + 0.5), 0), xmax = min(int(center + support + 0.5), in),
 *   w_i = tri((i + xmin - center + 0.5) / filterscale), normalised to sum 1;
 *   normalize_coeffs_8bpc: k = int(w * 2^22 +- 0.5) (round half away from zero);
 *   out = clip8((2^21 + sum k_i * px_i) >> 22).
 * - nearest: src = floor((x + 0.5) * in / out) (ImagingTransform affine, NEAREST).
 */
const PRECISION_BITS = 32 - 8 - 2;
const ONE = 2 ** PRECISION_BITS;

interface Coeffs {
  ksize: number;
  /** [out] first input index */
  bounds: Int32Array;
  /** [out] number of taps */
  counts: Int32Array;
  /** [out, ksize] fixed-point weights */
  kk: Float64Array;
}

function bilinearFilter(x: number): number {
  if (x < 0) x = -x;
  return x < 1 ? 1 - x : 0;
}

function precomputeCoeffs(inSize: number, outSize: number): Coeffs {
  const scale = inSize / outSize;
  const filterscale = scale < 1 ? 1 : scale;
  const support = 1 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize);
  const counts = new Int32Array(outSize);
  const kk = new Float64Array(outSize * ksize);
  const ss = 1 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    const base = xx * ksize;
    for (let x = 0; x < xmax; x++) {
      const w = bilinearFilter((x + xmin - center + 0.5) * ss);
      kk[base + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? kk[base + x]! / ww : kk[base + x]!;
      // (int)(+-0.5 + w * 2^22): C truncation toward zero
      kk[base + x] = Math.trunc(w < 0 ? -0.5 + w * ONE : 0.5 + w * ONE);
    }
    bounds[xx] = xmin;
    counts[xx] = xmax;
  }
  return { ksize, bounds, counts, kk };
}

function clip8(v: number): number {
  if (v >= ONE * 256) return 255;
  if (v <= 0) return 0;
  return Math.floor(v / ONE);
}

/** Pillow BILINEAR resize of a one-channel uint8 image [h, w] -> [outH, outW]. */
export function resizeGrayBilinear(src: Uint8Array, w: number, h: number, outW: number, outH: number): Uint8Array {
  let cur = src;
  let cw = w;
  if (outW !== w) {
    const c = precomputeCoeffs(w, outW);
    const tmp = new Uint8Array(outW * h);
    for (let y = 0; y < h; y++) {
      const row = y * w;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = c.bounds[xx]!;
        const n = c.counts[xx]!;
        const base = xx * c.ksize;
        let ss = ONE / 2;
        for (let x = 0; x < n; x++) ss += cur[row + xmin + x]! * c.kk[base + x]!;
        tmp[y * outW + xx] = clip8(ss);
      }
    }
    cur = tmp;
    cw = outW;
  }
  if (outH !== h) {
    const c = precomputeCoeffs(h, outH);
    const out = new Uint8Array(cw * outH);
    for (let yy = 0; yy < outH; yy++) {
      const ymin = c.bounds[yy]!;
      const n = c.counts[yy]!;
      const base = yy * c.ksize;
      for (let x = 0; x < cw; x++) {
        let ss = ONE / 2;
        for (let y = 0; y < n; y++) ss += cur[(ymin + y) * cw + x]! * c.kk[base + y]!;
        out[yy * cw + x] = clip8(ss);
      }
    }
    cur = out;
  }
  return cur === src ? src.slice() : cur;
}

/** Pillow NEAREST resize of a one-channel uint8 image. */
export function resizeGrayNearest(src: Uint8Array, w: number, h: number, outW: number, outH: number): Uint8Array {
  const out = new Uint8Array(outW * outH);
  const sx = w / outW;
  const sy = h / outH;
  for (let y = 0; y < outH; y++) {
    const iy = Math.min(h - 1, Math.floor((y + 0.5) * sy));
    for (let x = 0; x < outW; x++) {
      const ix = Math.min(w - 1, Math.floor((x + 0.5) * sx));
      out[y * outW + x] = src[iy * w + ix]!;
    }
  }
  return out;
}
