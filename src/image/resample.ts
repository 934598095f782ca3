/**
 * PIL-compatible image resizing of 8-bit RGB images (Pillow's libImaging/Resample.c, 9.x).
 *
 * Pillow resizes in two separable passes, horizontal first (into an 8-bit intermediate image
 * holding only the source rows the vertical pass needs), then vertical. Each output pixel is a
 * weighted sum of the input pixels under a filter scaled by `max(1, in/out)` (antialiasing when
 * downsampling):
 *
 *   scale   = in / out,  fscale = max(scale, 1),  support = filter.support * fscale
 *   center  = (x + 0.5) * scale
 *   xmin    = max(0, trunc(center - support + 0.5)),  xmax = min(in, trunc(center + support + 0.5))
 *   w[i]    = filter((i + xmin - center + 0.5) / fscale),  normalised to sum 1 (in double)
 *   k[i]    = trunc(w[i] * 2^22 ± 0.5)                       (fixed point, PRECISION_BITS = 22)
 *   out     = clip8((2^21 + Σ in[i] * k[i]) >> 22)
 *
 * Filters: BILINEAR = triangle (support 1); BICUBIC = Keys cubic with a = -0.5 (support 2).
 */
import type { RgbImage } from './decode.js';

export type PilFilter = 'bilinear' | 'bicubic';

const PRECISION_BITS = 22;

interface FilterDef {
  support: number;
  f(x: number): number;
}

const FILTERS: Record<PilFilter, FilterDef> = {
  bilinear: {
    support: 1,
    f(x) {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
  },
  bicubic: {
    support: 2,
    f(x) {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
};

/** Fixed-point coefficients of one axis: for output index o, taps k[o*ksize .. +count[o]) starting at input index start[o]. */
interface Coeffs {
  ksize: number;
  start: Int32Array;
  count: Int32Array;
  k: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc for an axis of `inSize` -> `outSize` pixels. */
export function pilCoefficients(inSize: number, outSize: number, filter: PilFilter): Coeffs {
  const fd = FILTERS[filter];
  const scale = inSize / outSize;
  const fscale = scale < 1 ? 1 : scale;
  const support = fd.support * fscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const count = new Int32Array(outSize);
  const k = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1 / fscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const v = fd.f((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    for (let x = 0; x < xmax; x++) {
      const v = ww !== 0 ? w[x] / ww : w[x];
      // C's (int) truncates toward zero
      k[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    start[xx] = xmin;
    count[xx] = xmax;
  }
  return { ksize, start, count, k };
}

function clip8(v: number): number {
  // v is an exact integer (|v| < 2^31); arithmetic shift like C's `in >> PRECISION_BITS`
  const s = Math.floor(v / (1 << PRECISION_BITS));
  return s < 0 ? 0 : s > 255 ? 255 : s;
}

/**
 * Resizes an 8-bit RGB image exactly like `PIL.Image.resize((w, h), filter)` (no box, no
 * reducing_gap). Returns a new 8-bit RGB image [h, w, 3].
 */
export function resizePil(img: RgbImage, width: number, height: number, filter: PilFilter): RgbImage {
  if (!(width > 0 && height > 0 && Number.isInteger(width) && Number.isInteger(height))) {
    throw new Error(`resizePil: invalid output size ${width}x${height}`);
  }
  const inW = img.width;
  const inH = img.height;
  if (img.data.length !== inW * inH * 3) throw new Error(`resizePil: image data has ${img.data.length} bytes, expected ${inW}x${inH}x3`);
  const needH = width !== inW;
  const needV = height !== inH;
  if (!needH && !needV) return { width, height, data: img.data.slice() };

  const cv = pilCoefficients(inH, height, filter);
  // rows of the source image the vertical pass reads
  const yFirst = cv.start[0];
  const yLast = cv.start[height - 1] + cv.count[height - 1];

  // horizontal pass: source rows [yFirst, yLast) -> temp [rows, width, 3] (8-bit, clipped)
  let tmp: Uint8Array;
  let tmpW: number;
  let rowOffset: number;
  if (needH) {
    const ch = pilCoefficients(inW, width, filter);
    const rows = needV ? yLast - yFirst : inH;
    const y0 = needV ? yFirst : 0;
    tmp = new Uint8Array(rows * width * 3);
    tmpW = width;
    rowOffset = y0;
    const src = img.data;
    const half = 1 << (PRECISION_BITS - 1);
    for (let y = 0; y < rows; y++) {
      const srow = (y + y0) * inW * 3;
      const drow = y * width * 3;
      for (let xx = 0; xx < width; xx++) {
        const xmin = ch.start[xx];
        const n = ch.count[xx];
        const kb = xx * ch.ksize;
        let s0 = half;
        let s1 = half;
        let s2 = half;
        for (let x = 0; x < n; x++) {
          const kk = ch.k[kb + x];
          const p = srow + (x + xmin) * 3;
          s0 += src[p] * kk;
          s1 += src[p + 1] * kk;
          s2 += src[p + 2] * kk;
        }
        tmp[drow + xx * 3] = clip8(s0);
        tmp[drow + xx * 3 + 1] = clip8(s1);
        tmp[drow + xx * 3 + 2] = clip8(s2);
      }
    }
    if (!needV) return { width, height, data: tmp };
  } else {
    tmp = img.data;
    tmpW = inW;
    rowOffset = 0;
  }

  // vertical pass
  const out = new Uint8Array(height * tmpW * 3);
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < height; yy++) {
    const ymin = cv.start[yy] - rowOffset;
    const n = cv.count[yy];
    const kb = yy * cv.ksize;
    const drow = yy * tmpW * 3;
    for (let xx = 0; xx < tmpW; xx++) {
      let s0 = half;
      let s1 = half;
      let s2 = half;
      for (let y = 0; y < n; y++) {
        const kk = cv.k[kb + y];
        const p = ((y + ymin) * tmpW + xx) * 3;
        s0 += tmp[p] * kk;
        s1 += tmp[p + 1] * kk;
        s2 += tmp[p + 2] * kk;
      }
      out[drow + xx * 3] = clip8(s0);
      out[drow + xx * 3 + 1] = clip8(s1);
      out[drow + xx * 3 + 2] = clip8(s2);
    }
  }
  return { width: tmpW, height, data: out };
}
