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
 * The 'int8' precision (optional, off by default) multiplies 8-bit quantized features in
 * integers (see buildInt8Graph): about 2x faster again, at an accuracy cost measured in
 * bench/int8.json. Its one quantization step per bank is coarse when a few channels carry
 * outsized values (as ViT features often do), so it is not the default.
 *
 * Runs inside the compute worker: session.run blocks its thread.
 */
import type { InferenceSession } from 'onnxruntime-node';
import { GraphBuilder } from '../onnx/graph.js';
import { createSession, ort, type Device } from './session.js';
import {
  DEFAULT_MSM_PRECISION,
  type IndexedPairResult,
  type Int8Bank,
  type MatMul,
  type MsmPrecision,
  type PairKernel,
  type PairResult,
} from '../core/kernel.js';

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
export function buildPairGraph(bothDirections: boolean, precision: MsmPrecision = DEFAULT_MSM_PRECISION): Uint8Array {
  const g = new GraphBuilder(bothDirections ? 'msm_pair' : 'msm_rows');
  if (precision === 'int8') return buildInt8Graph(g, bothDirections);
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
    const { colArg } = columnArgMax(g, s5, cdims, fdims); // [A, 1, B, P]
    const colIdx = g.op('Add', [g.op('Squeeze', [colArg, g.constI64([1])]), qoff]); // [A, B, P]
    const colNb = g.op('Gather', [q, colIdx], { axis: 0 }); // [A, B, P, C]
    const r4 = g.op('Reshape', [r, g.op('Concat', [one, dimB, dimP, c], { axis: 0 })]); // [1, B, P, C]
    const colDiff = g.op('Sub', [colNb, r4]);
    g.output(g.op('ReduceSumSquare', [colDiff], { axes: [3], keepdims: 0 }), 'float32', ['A', 'B', 'P'], 'cold2');
  }
  return g.toBytes();
}

/**
 * The column arg-max of s5 [A*F, P/F, B, P] in two stages (the column split above): groupMax
 * [A, F, B, P], the first group holding the maximum (`group` [A, 1, B, P]), then the first row
 * within it, which is the first maximum overall (ArgMax's tie rule): colArg [A, 1, B, P].
 */
function columnArgMax(g: GraphBuilder, s5: string, cdims: string, fdims: string): { groupMax: string; group: string; colArg: string } {
  const groupMax = g.op('Reshape', [g.op('ReduceMax', [s5], { axes: [1], keepdims: 0 }), fdims]); // [A, F, B, P]
  const group = g.op('ArgMax', [groupMax], { axis: 1, keepdims: 1 }); // [A, 1, B, P]
  const inGroup = g.op('Reshape', [g.op('ArgMax', [s5], { axis: 1, keepdims: 0 }), fdims]); // [A, F, B, P]
  const within = g.op('GatherElements', [inGroup, group], { axis: 1 }); // [A, 1, B, P]
  const rowsPerGroup = g.op('Slice', [cdims, g.constI64([1]), g.constI64([2])]);
  return { groupMax, group, colArg: g.op('Add', [g.op('Mul', [group, rowsPerGroup]), within]) };
}

/**
 * The 'fast' graph with the nearest patches' indices too (reference-density normalisation,
 * core/density.ts): outputs rowd2 [A, P, B] and cold2 [A, B, P] as the fast graph (2 - 2 max, the
 * maxima gathered at the arg-maxima, so the same floats as ReduceMax), and rowarg [A, P, B] (the
 * nearest patch of image b, 0..P-1) and colarg [A, B, P] (of image a) as int32. Inputs as the fast
 * graph's (both directions).
 */
export function buildIndexedGraph(): Uint8Array {
  const g = new GraphBuilder('msm_pair_indexed');
  const q = g.input('q', 'float32', ['AP', 'C']);
  const r = g.input('r', 'float32', ['BP', 'C']);
  const dims = g.input('dims', 'int64', [4]);
  const cdims = g.input('cdims', 'int64', [4]);
  const fdims = g.input('fdims', 'int64', [4]);
  const sim = g.op('Gemm', [q, r], { transB: 1 }, 'sim');
  const s4 = g.op('Reshape', [sim, dims], {}, 'sim4');
  const s5 = g.op('Reshape', [sim, cdims], {}, 'sim5');
  const two = g.scalar(2);
  const d2 = (m: string) => g.op('Sub', [two, g.op('Mul', [two, m])]);
  const int32 = (x: string) => g.op('Cast', [x], { to: 6 });
  const last = g.constI64([3]);
  const rowArg = g.op('ArgMax', [s4], { axis: 3, keepdims: 1 }); // [A, P, B, 1]
  const rowMax = g.op('Squeeze', [g.op('GatherElements', [s4, rowArg], { axis: 3 }), last]);
  g.output(d2(rowMax), 'float32', ['A', 'P', 'B'], 'rowd2');
  g.output(int32(g.op('Squeeze', [rowArg, last])), 'int32', ['A', 'P', 'B'], 'rowarg');
  // columns in two stages, as the exact graph's: the maximum gathered at the group holding it
  const axis1 = g.constI64([1]);
  const { groupMax, group, colArg } = columnArgMax(g, s5, cdims, fdims);
  const colMax = g.op('Squeeze', [g.op('GatherElements', [groupMax, group], { axis: 1 }), axis1]); // [A, B, P]
  g.output(d2(colMax), 'float32', ['A', 'B', 'P'], 'cold2');
  g.output(int32(g.op('Squeeze', [colArg, axis1])), 'int32', ['A', 'B', 'P'], 'colarg');
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

/**
 * The 'int8' precision. The bank Z [N, P, C] is quantized once (quantizeBank) with one step
 * s = max|Z| / 127 for the whole bank, so that integer products compare like the float ones:
 * query images as u8 [N, P, C] and reference images as u8 transposed per image [N, C, P], both
 * with zero point 128 (u8 x u8: exact on CPUs without VNNI, see core/kernel.ts Int8Bank). One
 * call multiplies q [A*P, C] by the B images r [B, C, P] (MatMulInteger, batched:
 * [B, A*P, P] int32), takes both maxima on the integers (the column one in two stages, as
 * above), and returns d^2 = 2 - 2 s^2 max, laid out as the float graphs' outputs.
 */
function buildInt8Graph(g: GraphBuilder, bothDirections: boolean): Uint8Array {
  const q = g.input('q8', 'uint8', ['AP', 'C']);
  const r = g.input('r8', 'uint8', ['B', 'C', 'P']);
  const rdims = g.input('rdims', 'int64', [3]); // [A, P, B]
  const twoSS = g.input('twoss', 'float32', []); // 2 s^2
  const zp = g.constI8([128], 'uint8', []);
  const prod = g.op('MatMulInteger', [q, r, zp, zp], {}, 'prod'); // [B, AP, P]
  const two = g.scalar(2);
  const d2 = (m: string) => g.op('Sub', [two, g.op('Mul', [twoSS, g.op('Cast', [m], { to: 1 })])]);
  const rowMax = g.op('Transpose', [g.op('ReduceMax', [prod], { axes: [2], keepdims: 0 })], { perm: [1, 0] }); // [AP, B]
  g.output(d2(g.op('Reshape', [rowMax, rdims])), 'float32', ['A', 'P', 'B'], 'rowd2');
  if (bothDirections) {
    const cdims = g.input('cdims', 'int64', [3]); // [B*A*F, P/F, P]
    const fdims = g.input('fdims', 'int64', [4]); // [B, A, F, P]
    const groupMax = g.op('Reshape', [g.op('ReduceMax', [g.op('Reshape', [prod, cdims])], { axes: [1], keepdims: 0 }), fdims]);
    const colMax = g.op('Transpose', [g.op('ReduceMax', [groupMax], { axes: [2], keepdims: 0 })], { perm: [1, 0, 2] }); // [A, B, P]
    g.output(d2(colMax), 'float32', ['A', 'B', 'P'], 'cold2');
  }
  return g.toBytes();
}

/** Y = op(A) B (Gemm; transA or not): the plain product of projected features (core/project.ts). */
export function buildMatMulGraph(transA: boolean): Uint8Array {
  const g = new GraphBuilder(transA ? 'matmul_ta' : 'matmul');
  const a = g.input('a', 'float32', transA ? ['K', 'M'] : ['M', 'K']);
  const b = g.input('b', 'float32', ['K', 'N']);
  g.output(g.op('Gemm', [a, b], { transA: transA ? 1 : 0 }, 'y'), 'float32', ['M', 'N'], 'y');
  return g.toBytes();
}

/** The MSM kernel on ONNX Runtime (runs in the compute worker), and its plain product (matMul). */
export class OnnxPairKernel implements PairKernel {
  /** the Gemm sessions of matMul, by transA; built on first use */
  private readonly products = new Map<boolean, Promise<InferenceSession>>();
  /** the indexed graph's session (runIndexed); built on first use */
  private indexed: Promise<InferenceSession> | null = null;

  private constructor(
    private readonly session: InferenceSession,
    readonly bothDirections: boolean,
    readonly precision: MsmPrecision,
    private readonly device: Device,
    private readonly threads: number | undefined,
  ) {}

  readonly matMul: MatMul = async (a, b, m, k, n, transA) => {
    let s = this.products.get(transA);
    if (!s) {
      s = createSession(buildMatMulGraph(transA), { device: this.device, threads: this.threads });
      this.products.set(transA, s);
    }
    const out = await (await s).run({
      a: new ort.Tensor('float32', a, transA ? [k, m] : [m, k]),
      b: new ort.Tensor('float32', b, [k, n]),
    });
    return out.y.data as Float32Array;
  };

  static async create(
    bothDirections = true,
    device: Device = 'cpu',
    threads?: number,
    precision: MsmPrecision = DEFAULT_MSM_PRECISION,
  ): Promise<OnnxPairKernel> {
    return new OnnxPairKernel(
      await createSession(buildPairGraph(bothDirections, precision), { device, threads }),
      bothDirections,
      precision,
      device,
      threads,
    );
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
    if (this.precision === 'int8') throw new Error('the int8 kernel takes a quantized bank: runInt8');
    if (this.precision === 'fast') {
      const out = await this.session.run(feeds);
      return { rowd2: out.rowd2.data as Float32Array, cold2: this.bothDirections ? (out.cold2.data as Float32Array) : undefined };
    }
    feeds.roff = i64(
      Array.from({ length: b }, (_, k) => k * p),
      [1, 1, b],
    );
    if (this.bothDirections)
      feeds.qoff = i64(
        Array.from({ length: a }, (_, k) => k * p),
        [a, 1, 1],
      );
    const out = await this.session.run(feeds);
    return {
      rowd2: out.rowd2.data as Float32Array,
      cold2: this.bothDirections ? (out.cold2.data as Float32Array) : undefined,
    };
  }

  /** 'fast' with the nearest patches' indices (buildIndexedGraph); q, r as run's. */
  async runIndexed(q: Float32Array, a: number, r: Float32Array, b: number, p: number, c: number): Promise<IndexedPairResult> {
    if (this.precision !== 'fast' || !this.bothDirections)
      throw new Error(`nearest-patch indices need the two-direction 'fast' MSM precision, not '${this.precision}'`);
    this.indexed ??= createSession(buildIndexedGraph(), { device: this.device, threads: this.threads });
    const i64 = (v: number[]) => new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), [v.length]);
    const f = columnSplit(p);
    const out = await (await this.indexed).run({
      q: new ort.Tensor('float32', q, [a * p, c]),
      r: new ort.Tensor('float32', r, [b * p, c]),
      dims: i64([a, p, b, p]),
      cdims: i64([a * f, p / f, b, p]),
      fdims: i64([a, f, b, p]),
    });
    return {
      rowd2: out.rowd2.data as Float32Array,
      cold2: out.cold2.data as Float32Array,
      rowArg: out.rowarg.data as Int32Array,
      colArg: out.colarg.data as Int32Array,
    };
  }

  /** 'int8': query images [i0, i1) against reference images [j0, j1) of a quantized bank. */
  async runInt8(bank: Int8Bank, i0: number, i1: number, j0: number, j1: number, p: number, c: number): Promise<PairResult> {
    if (this.precision !== 'int8') throw new Error(`runInt8 on a ${this.precision} kernel`);
    const a = i1 - i0,
      b = j1 - j0;
    const i64 = (v: number[]) => new ort.Tensor('int64', BigInt64Array.from(v.map(BigInt)), [v.length]);
    const feeds: Record<string, InstanceType<typeof ort.Tensor>> = {
      q8: new ort.Tensor('uint8', bank.q8.subarray(i0 * p * c, i1 * p * c), [a * p, c]),
      r8: new ort.Tensor('uint8', bank.r8.subarray(j0 * p * c, j1 * p * c), [b, c, p]),
      rdims: i64([a, p, b]),
      twoss: new ort.Tensor('float32', Float32Array.of(2 * bank.step * bank.step), []),
    };
    if (this.bothDirections) {
      const f = columnSplit(p);
      feeds.cdims = i64([b * a * f, p / f, p]);
      feeds.fdims = i64([b, a, f, p]);
    }
    const out = await this.session.run(feeds);
    return { rowd2: out.rowd2.data as Float32Array, cold2: this.bothDirections ? (out.cold2.data as Float32Array) : undefined };
  }

  async release(): Promise<void> {
    for (const s of this.products.values()) await (await s).release();
    if (this.indexed) await (await this.indexed).release();
    await this.session.release();
  }
}
