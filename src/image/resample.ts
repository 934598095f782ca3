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
  const fscale = Math.max(scale , 1);
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
  return s < 0 ? 0 : Math.min(s , 255);
}

/**
 * Resizes an 8-bit RGB image exactly like `PIL.Image.resize((w, h), filter)` (no box, no
 * reducing_gap). Returns a new 8-bit RGB image [h, w, 3].
 */
export function resizePil(img: RgbImage, width: number, height: number, filter: PilFilter): RgbImage {
  if (img.data.length !== img.width * img.height * 3) throw new Error(`resizePil: image data has ${img.data.length} bytes, expected ${img.width}x${img.height}x3`);
  return { width, height, data: resizePilChannels(img.data, img.width, img.height, 3, width, height, filter) };
}

/** The same for a one-channel 8-bit image [h, w] (Pillow mode 'L', e.g. masks). */
export function resizePilGray(src: Uint8Array, w: number, h: number, outW: number, outH: number, filter: PilFilter = 'bilinear'): Uint8Array {
  return resizePilChannels(src, w, h, 1, outW, outH, filter);
}

/** Pillow's NEAREST resize of a one-channel 8-bit image: src = floor((x + 0.5) * in / out). */
export function resizeNearestGray(src: Uint8Array, w: number, h: number, outW: number, outH: number): Uint8Array {
  const out = new Uint8Array(outW * outH);
  const sx = w / outW, sy = h / outH;
  for (let y = 0; y < outH; y++) {
    const iy = Math.min(h - 1, Math.floor((y + 0.5) * sy));
    for (let x = 0; x < outW; x++) out[y * outW + x] = src[iy * w + Math.min(w - 1, Math.floor((x + 0.5) * sx))];
  }
  return out;
}

/**
 * Pillow's separable resampling of an 8-bit image with `c` interleaved channels [h, w, c]:
 * horizontal pass (only the source rows the vertical pass reads), rounded to 8 bits, then the
 * vertical pass, in Pillow's fixed point.
 */
export function resizePilChannels(src: Uint8Array, inW: number, inH: number, c: number, width: number, height: number, filter: PilFilter): Uint8Array {
  if (!(width > 0 && height > 0 && Number.isInteger(width) && Number.isInteger(height))) {
    throw new Error(`resizePil: invalid output size ${width}x${height}`);
  }
  if (src.length !== inW * inH * c) throw new Error(`resizePil: image data has ${src.length} bytes, expected ${inW}x${inH}x${c}`);
  const needH = width !== inW;
  const needV = height !== inH;
  if (!needH && !needV) return src.slice();
  const half = 1 << (PRECISION_BITS - 1);
  const sums = new Float64Array(c);

  const cv = pilCoefficients(inH, height, filter);
  // rows of the source image the vertical pass reads
  const yFirst = cv.start[0];
  const yLast = cv.start[height - 1] + cv.count[height - 1];

  // horizontal pass: source rows [yFirst, yLast) -> temp [rows, width, c] (8-bit, clipped)
  let tmp: Uint8Array;
  let tmpW: number;
  let rowOffset: number;
  if (needH) {
    const ch = pilCoefficients(inW, width, filter);
    const rows = needV ? yLast - yFirst : inH;
    const y0 = needV ? yFirst : 0;
    tmp = new Uint8Array(rows * width * c);
    tmpW = width;
    rowOffset = y0;
    for (let y = 0; y < rows; y++) {
      const srow = (y + y0) * inW * c;
      const drow = y * width * c;
      for (let xx = 0; xx < width; xx++) {
        const xmin = ch.start[xx];
        const n = ch.count[xx];
        const kb = xx * ch.ksize;
        sums.fill(half);
        for (let x = 0; x < n; x++) {
          const kk = ch.k[kb + x];
          const p = srow + (x + xmin) * c;
          for (let q = 0; q < c; q++) sums[q] += src[p + q] * kk;
        }
        for (let q = 0; q < c; q++) tmp[drow + xx * c + q] = clip8(sums[q]);
      }
    }
    if (!needV) return tmp;
  } else {
    tmp = src;
    tmpW = inW;
    rowOffset = 0;
  }

  // vertical pass
  const out = new Uint8Array(height * tmpW * c);
  for (let yy = 0; yy < height; yy++) {
    const ymin = cv.start[yy] - rowOffset;
    const n = cv.count[yy];
    const kb = yy * cv.ksize;
    const drow = yy * tmpW * c;
    for (let xx = 0; xx < tmpW; xx++) {
      sums.fill(half);
      for (let y = 0; y < n; y++) {
        const kk = cv.k[kb + y];
        const p = ((y + ymin) * tmpW + xx) * c;
        for (let q = 0; q < c; q++) sums[q] += tmp[p + q] * kk;
      }
      for (let q = 0; q < c; q++) out[drow + xx * c + q] = clip8(sums[q]);
    }
  }
  return out;
}
