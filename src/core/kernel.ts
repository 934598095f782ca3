/**
 * The contract of the MSM kernel: nearest-patch squared distances between a block of query
 * images and a block of reference images, both directions from one product. The core calls it;
 * the runtime passes one in (src/compute/msm-kernel.ts runs it on ONNX Runtime), so the method
 * itself holds no sessions, threads or devices.
 */

/** How nearest distances are computed; see src/compute/msm-kernel.ts. */
export type MsmPrecision = 'exact' | 'fast' | 'int8';

/**
 * The default everywhere (library, CLI, ablations). 'fast' gave identical metrics to 'exact' on
 * bottle, glass and magnetic_tile (largest difference 0.0003 points, bench/precision.json, from
 * `node dist/bench/accuracy.js precision`) at 1.5-2.9x less scoring time; 'exact' is the choice
 * for parity with a float64 reference.
 */
export const DEFAULT_MSM_PRECISION: MsmPrecision = 'fast';

export interface PairResult {
  /** [A, P, B] squared distance from query patch (a, p) to its nearest patch in reference image b */
  rowd2: Float32Array;
  /** [A, B, P] squared distance from reference patch (b, p) to its nearest patch in query image a */
  cold2?: Float32Array;
}

/** PairResult with the nearest patches' indices (within their image, 0..P-1): PairKernel.runIndexed. */
export interface IndexedPairResult extends PairResult {
  cold2: Float32Array;
  /** [A, P, B] the nearest patch of reference image b to query patch (a, p) */
  rowArg: Int32Array;
  /** [A, B, P] the nearest patch of query image a to reference patch (b, p) */
  colArg: Int32Array;
}

/** A feature bank quantized for the 'int8' precision (one step for the whole bank). */
export interface Int8Bank {
  /** [N, P, C] round(z / s) + 128 */
  q8: Uint8Array;
  /**
   * [N, C, P] round(z / s) + 128, each image transposed. Unsigned like q8: ONNX Runtime's u8 x s8
   * kernel on AVX2 CPUs without VNNI sums pairs of products in int16 with saturation (wrong
   * maxima, seen here on an AMD EPYC); u8 x u8 is exact on every CPU.
   */
  r8: Uint8Array;
  /** quantization step */
  step: number;
}

export interface PairKernel {
  readonly precision: MsmPrecision;
  /** true when `cold2` is returned too */
  readonly bothDirections: boolean;
  /** q: [a*p, c], r: [b*p, c] unit rows (float32 views; may be subarrays) */
  run(q: Float32Array, a: number, r: Float32Array, b: number, p: number, c: number): Promise<PairResult>;
  /** 'int8': query images [i0, i1) against reference images [j0, j1) of a quantized bank */
  runInt8(bank: Int8Bank, i0: number, i1: number, j0: number, j1: number, p: number, c: number): Promise<PairResult>;
  /**
   * 'fast', both directions: run's distances (the same floats) and the nearest patches' indices
   * (reference-density normalisation, core/density.ts); absent: that normalisation is unavailable
   */
  runIndexed?(q: Float32Array, a: number, r: Float32Array, b: number, p: number, c: number): Promise<IndexedPairResult>;
  /** a plain float32 product (projected features, project.ts); absent: project.ts multiplies in JS */
  readonly matMul?: MatMul;
}

/**
 * op(A) [m, k] times B [k, n] -> [m, n], row-major float32; op(A) = A [m, k], or A^T with A [k, m]
 * when transA.
 */
export type MatMul = (a: Float32Array, b: Float32Array, m: number, k: number, n: number, transA: boolean) => Promise<Float32Array>;

/** max |Z| over a bank (or some of its images: the max over parts is the bank's). */
export function maxAbs(z: Float32Array): number {
  let m = 0;
  for (let k = 0; k < z.length; k++) m = Math.max(m, Math.abs(z[k]!));
  return m;
}

/**
 * Quantizes Z [N, P, C] with one step s = m / 127 for the whole bank, m = max|Z| (computed here, or
 * given: the cluster quantizes a block's images with the whole bank's m).
 */
export function quantizeBank(z: Float32Array, n: number, p: number, c: number, m = maxAbs(z)): Int8Bank {
  const step = m > 0 ? m / 127 : 1;
  const inv = 1 / step;
  const q8 = new Uint8Array(n * p * c);
  const r8 = new Uint8Array(n * p * c);
  for (let i = 0; i < n; i++) {
    for (let pp = 0; pp < p; pp++) {
      const o = (i * p + pp) * c;
      for (let k = 0; k < c; k++) {
        const v = Math.round(z[o + k]! * inv);
        q8[o + k] = v + 128;
        r8[(i * c + k) * p + pp] = v + 128;
      }
    }
  }
  return { q8, r8, step };
}
