/**
 * The MSM compute kernel on ONNX Runtime: nearest-patch distances between blocks of images.
 *
 * For unit vectors, ||a - b||^2 = 2 - 2 a.b, so the nearest patch is the one of largest dot
 * product. One call multiplies a query block Q [A*P, C] by a reference block R [B*P, C]^T
 * (Gemm, transB) into S [A*P, B*P], viewed as [A, P, B, P], and takes two arg-maxima:
 *   rowarg [A, P, B] = argmax over the last axis: nearest patch of image b to query patch (a, p);
 *   colarg [A, B, P] = argmax over axis 1:        nearest patch of image a to reference patch (b, p).
 * So one product scores both directions of every (a, b) pair (the reference computes each
 * ordered pair separately).
 *
 * Precision: 2 - 2 a.b cancels badly for close patches in float32 (errors up to 3e-5 on the
 * golden data). So the graph gathers each chosen neighbour and returns the squared distance
 * computed directly, sum_c (a_c - b_c)^2, which keeps float32's relative precision. That costs
 * O(A P B C), a 2/P fraction of the product.
 *
 * The 'fast' precision skips that step and returns 2 - 2 max(a.b): the reference's own float32
 * matmul-form cdist, about 1.3x (P >= 784) to 2x (P = 196) faster; see the benchmark.
 *
 * Runs inside the compute worker: session.run blocks its thread.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { GraphBuilder } from '../onnx/graph.js';
import { createSession, ort, type Device } from '../compute/session.js';

/**
 * Inputs: q [A*P, C], r [B*P, C], dims int64 [4] = [A, P, B, P],
 *         cdims int64 [4] = [A*F, P/F, B, P], fdims int64 [4] = [A, F, B, P] (column split, below),
 *         qoff int64 [A, 1, 1] = a*P, roff int64 [1, 1, B] = b*P (row offsets of each image).
 *
 * Column reductions run in two stages: over P/F rows within each of F groups, then over the F
 * group results. A single reduction over axis 1 of [1, P, B, P] takes ONNX Runtime's slow
 * leading-axis path (measured 7x the row reduction at P = 784, 13x at P = 1369); the split keeps
 * both stages on its fast path. F is the divisor of P nearest sqrt(P) (the grid height for
 * square grids); see columnSplit.
 * Outputs: rowd2 [A, P, B]; with bothDirections also cold2 [A, B, P] (squared distances).
 */
export type MsmPrecision = 'exact' | 'fast';

/**
 * The default everywhere (library and CLI). 'fast' gave identical metrics to 'exact' on bottle,
 * glass and magnetic_tile (largest difference 0.0003 points, bench/precision.json) at 1.5-2.9x
 * less scoring time; 'exact' is the choice for parity with a float64 reference.
 */
export const DEFAULT_MSM_PRECISION: MsmPrecision = 'fast';

export function buildPairGraph(bothDirections: boolean, precision: MsmPrecision = DEFAULT_MSM_PRECISION): Uint8Array {
  const g = new GraphBuilder(bothDirections ? 'msm_pair' : 'msm_rows');
  const q = g.input('q', 'float32', ['AP', 'C']);
  const r = g.input('r', 'float32', ['BP', 'C']);
  const dims = g.input('dims', 'int64', [4]);
  const sim = g.op('Gemm', [q, r], { transB: 1 }, 'sim');
  const s4 = g.op('Reshape', [sim, dims], {}, 'sim4');
  // column split views: s5 [A*F, P/F, B, P]
  const cdims = bothDirections ? g.input('cdims', 'int64', [4]) : '';
  const fdims = bothDirections ? g.input('fdims', 'int64', [4]) : '';
  const s5 = bothDirections ? g.op('Reshape', [sim, cdims], {}, 'sim5') : '';
  if (precision === 'fast') {
    // d^2 = 2 - 2 max(a.b), as the reference's float32 cdist
    const two = g.scalar(2);
    const d2 = (m: string) => g.op('Sub', [two, g.op('Mul', [two, m])]);
    g.output(d2(g.op('ReduceMax', [s4], { axes: [3], keepdims: 0 })), 'float32', ['A', 'P', 'B'], 'rowd2');
    if (bothDirections) {
      const groupMax = g.op('Reshape', [g.op('ReduceMax', [s5], { axes: [1], keepdims: 0 }), fdims]); // [A, F, B, P]
      g.output(d2(g.op('ReduceMax', [groupMax], { axes: [1], keepdims: 0 })), 'float32', ['A', 'B', 'P'], 'cold2');
    }
    return g.toBytes();
  }
  const roff = g.input('roff', 'int64', [1, 1, 'B']);
  const c = g.op('Slice', [g.op('Shape', [q]), g.constI64([1]), g.constI64([2])], {}, 'c');
  // A, P, B from dims
  const dimA = g.op('Slice', [dims, g.constI64([0]), g.constI64([1])]);
  const dimP = g.op('Slice', [dims, g.constI64([1]), g.constI64([2])]);
  const dimB = g.op('Slice', [dims, g.constI64([2]), g.constI64([3])]);
  const one = g.constI64([1]);

  // rows: nearest patch in image b for each query patch (a, p)
  const rowArg = g.op('ArgMax', [s4], { axis: 3, keepdims: 0 }, 'rowarg'); // [A, P, B]
  const rowIdx = g.op('Add', [rowArg, roff]); // row of r
  const rowNb = g.op('Gather', [r, rowIdx], { axis: 0 }); // [A, P, B, C]
  const q4 = g.op('Reshape', [q, g.op('Concat', [dimA, dimP, one, c], { axis: 0 })]); // [A, P, 1, C]
  const rowDiff = g.op('Sub', [rowNb, q4]);
  g.output(g.op('ReduceSumSquare', [rowDiff], { axes: [3], keepdims: 0 }), 'float32', ['A', 'P', 'B'], 'rowd2');

  if (bothDirections) {
    const qoff = g.input('qoff', 'int64', ['A', 1, 1]);
    // two-stage arg-max: the first group holding the maximum, then the first row within it,
    // which is the first maximum overall (ArgMax's tie rule)
    const groupMax = g.op('Reshape', [g.op('ReduceMax', [s5], { axes: [1], keepdims: 0 }), fdims]); // [A, F, B, P]
    const group = g.op('ArgMax', [groupMax], { axis: 1, keepdims: 1 }); // [A, 1, B, P]
    const inGroup = g.op('Reshape', [g.op('ArgMax', [s5], { axis: 1, keepdims: 0 }), fdims]); // [A, F, B, P]
    const within = g.op('GatherElements', [inGroup, group], { axis: 1 }); // [A, 1, B, P]
    const rowsPerGroup = g.op('Slice', [cdims, g.constI64([1]), g.constI64([2])]);
    const colArg = g.op('Add', [g.op('Mul', [group, rowsPerGroup]), within], {}, 'colarg'); // [A, 1, B, P]
    const colIdx = g.op('Add', [g.op('Squeeze', [colArg, g.constI64([1])]), qoff]); // [A, B, P]
    const colNb = g.op('Gather', [q, colIdx], { axis: 0 }); // [A, B, P, C]
    const r4 = g.op('Reshape', [r, g.op('Concat', [one, dimB, dimP, c], { axis: 0 })]); // [1, B, P, C]
    const colDiff = g.op('Sub', [colNb, r4]);
    g.output(g.op('ReduceSumSquare', [colDiff], { axes: [3], keepdims: 0 }), 'float32', ['A', 'B', 'P'], 'cold2');
  }
  return g.toBytes();
}

/** F for the two-stage column reduction: the divisor of p nearest sqrt(p) (1 when p is prime). */
export function columnSplit(p: number): number {
  let best = 1;
  for (let f = 1; f * f <= p; f++) if (p % f === 0) best = f;
  // best <= sqrt(p) <= p / best: take whichever of the pair is nearer sqrt(p)
  const other = p / best;
  return other - Math.sqrt(p) < Math.sqrt(p) - best ? other : best;
}

export interface PairResult {
  /** [A, P, B] squared distance from query patch (a, p) to its nearest patch in reference image b */
  rowd2: Float32Array;
  /** [A, B, P] squared distance from reference patch (b, p) to its nearest patch in query image a */
  cold2?: Float32Array;
}

export class PairKernel {
  private constructor(private readonly session: InferenceSession, readonly bothDirections: boolean, readonly precision: MsmPrecision) {}

  static async create(bothDirections = true, device: Device = 'cpu', threads?: number, precision: MsmPrecision = DEFAULT_MSM_PRECISION): Promise<PairKernel> {
    return new PairKernel(await createSession(buildPairGraph(bothDirections, precision), { device, threads }), bothDirections, precision);
  }

  /** q: [a*p, c], r: [b*p, c] (float32 views; may be subarrays). */
  async run(q: Float32Array, a: number, r: Float32Array, b: number, p: number, c: number): Promise<PairResult> {
    const i64 = (v: number[], dims: number[]) => new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), dims);
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {
      q: new ort.Tensor('float32', q, [a * p, c]),
      r: new ort.Tensor('float32', r, [b * p, c]),
      dims: i64([a, p, b, p], [4]),
    };
    if (this.bothDirections) {
      const f = columnSplit(p);
      feeds.cdims = i64([a * f, p / f, b, p], [4]);
      feeds.fdims = i64([a, f, b, p], [4]);
    }
    if (this.precision === 'fast') {
      const out = await this.session.run(feeds);
      return { rowd2: out.rowd2.data as Float32Array, cold2: this.bothDirections ? (out.cold2.data as Float32Array) : undefined };
    }
    feeds.roff = i64(Array.from({ length: b }, (_, k) => k * p), [1, 1, b]);
    if (this.bothDirections) feeds.qoff = i64(Array.from({ length: a }, (_, k) => k * p), [a, 1, 1]);
    const out = await this.session.run(feeds);
    return {
      rowd2: out.rowd2.data as Float32Array,
      cold2: this.bothDirections ? (out.cold2.data as Float32Array) : undefined,
    };
  }

  release(): Promise<void> {
    return this.session.release();
  }
}
