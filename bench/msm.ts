/**
 * MSM benchmarks: the machine's GEMM peak for the MSM's shape, the project's block scoring
 * against the straightforward per-image scoring on the same features, and the N-scaling line.
 */
import { performance } from 'node:perf_hooks';
import { GraphBuilder } from '../src/onnx/graph.js';
import { createSession, ort } from '../src/compute/session.js';
import { OnnxPairKernel as PairKernel } from '../src/compute/msm-kernel.js';
import { reduceTable } from '../src/core/score.js';
import { zeroShotVariant } from '../src/core/plan.js';
import type { Interval } from '../src/core/types.js';
import {
  nearestDistanceTable,
  nearestDistanceTableStraightforward,
  nearestTableWithIndices,
  blockSize,
  DEFAULT_CHUNK_ROWS,
} from '../src/core/msm.js';

/** zero-shot interval means of a full table [N, P, N] */
const intervalMeans = (t: Float32Array, n: number, p: number, iv: Interval): Float64Array =>
  reduceTable(t, n, p, [zeroShotVariant(n, iv)])[0]!;

/** Random unit features [n, p, c] from a seeded generator. */
export function randomUnitFeatures(n: number, p: number, c: number, seed = 1): Float32Array {
  let s = seed >>> 0;
  const z = new Float32Array(n * p * c);
  for (let k = 0; k < z.length; k++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    z[k] = s / 2 ** 32 - 0.5;
  }
  for (let k = 0; k < n * p; k++) {
    let q = 0;
    for (let t = 0; t < c; t++) q += z[k * c + t] ** 2;
    const inv = 1 / Math.sqrt(q);
    for (let t = 0; t < c; t++) z[k * c + t] *= inv;
  }
  return z;
}

/**
 * The machine's GEMM peak for one shape: a session holding nothing but the MSM's product, a Gemm
 * [m, c] x [n, c]^T (the same op, layout and shape as one MSM block, without the reductions;
 * ONNX Runtime's Gemm and MatMul run the same MLAS kernel, measured equal within noise).
 * `sample` returns the GFLOPS of the fastest of `calls` single calls; the benchmark samples it
 * between its timed runs and keeps the best, so the peak sees the same machine state as the MSM.
 */
export class GemmPeak {
  private best = 0;
  private constructor(
    private readonly session: Awaited<ReturnType<typeof createSession>>,
    private readonly feeds: Record<string, InstanceType<typeof ort.Tensor>>,
    private readonly flops: number,
  ) {}

  static async create(m: number, c: number, n = m): Promise<GemmPeak> {
    const g = new GraphBuilder('gemm_peak');
    const a = g.input('a', 'float32', ['M', c]);
    const b = g.input('b', 'float32', ['N', c]);
    // only the first row leaves the session: copying the whole [m, n] product out to JavaScript
    // would add an allocation and a copy that the MSM (whose product stays inside) never pays
    const prod = g.op('Gemm', [a, b], { transB: 1 });
    g.output(g.op('Slice', [prod, g.constI64([0]), g.constI64([1])]), 'float32', [1, 'N'], 'y');
    const s = await createSession(g.toBytes());
    const feeds = {
      a: new ort.Tensor('float32', randomUnitFeatures(1, m, c, 3), [m, c]),
      b: new ort.Tensor('float32', randomUnitFeatures(1, n, c, 4), [n, c]),
    };
    await s.run(feeds);
    return new GemmPeak(s, feeds, 2 * m * n * c);
  }

  /** Samples `calls` single calls; returns the best GFLOPS seen so far (this and earlier samples). */
  async sample(calls = 5): Promise<number> {
    for (let i = 0; i < calls; i++) {
      const t0 = performance.now();
      await this.session.run(this.feeds);
      this.best = Math.max(this.best, this.flops / ((performance.now() - t0) / 1000) / 1e9);
    }
    return this.best;
  }

  release(): Promise<void> {
    return this.session.release();
  }
}

export interface MsmComparison {
  n: number;
  p: number;
  c: number;
  /** images per row block x per column chunk of each product */
  block: [number, number];
  gemm_peak_gflops: number;
  /** best of the repeated runs; the peak is the best single call sampled before, between and after them */
  straightforward_s: number;
  project_s: number;
  speedup_vs_straightforward: number;
  /** useful flops N(N-1)/2 * 2 P^2 C over the project's time */
  msm_gflops: number;
  msm_fraction_of_peak: number;
  max_abs_diff: number;
  /** the optional int8 precision on the same bank: best time, and its largest score difference to the project's */
  int8_s: number;
  int8_max_abs_diff: number;
  /**
   * the Euclidean form of rows that are not unit (`--norm-exponent`, msm.ts floatBlock) on the
   * same unit bank, where it must give the same distances: best time, largest score difference
   */
  euclidean_s: number;
  euclidean_max_abs_diff: number;
  /**
   * the table with nearest-patch indices (`--density-exponent`, msm.ts nearestTableWithIndices) on
   * the same bank: best time, and whether its distances are the default table's bit for bit
   */
  indexed_s: number;
  indexed_same_distances: boolean;
}

/** One MSM pass both ways on random unit features. */
export function compareMsm(n: number, p: number, c: number, reps = 3): Promise<MsmComparison> {
  return compareOnBank(randomUnitFeatures(n, p, c, 7), n, p, c, reps);
}

/** One MSM pass both ways on the same feature bank Z [n, p, c] (unit vectors). */
export async function compareOnBank(z: Float32Array, n: number, p: number, c: number, reps = 3): Promise<MsmComparison> {
  const both = await PairKernel.create(true);
  const rows = await PairKernel.create(false);
  const int8 = await PairKernel.create(true, 'cpu', undefined, 'int8');
  const a = blockSize(n, p, {});
  const b = Math.max(a, Math.min(n - 1, Math.round(DEFAULT_CHUNK_ROWS / p)));
  const peak = await GemmPeak.create(a * p, c, b * p);
  // warm up both kernels on a small slice
  await nearestDistanceTable(z.subarray(0, 2 * p * c), 2, p, c, both);
  await nearestDistanceTableStraightforward(z.subarray(0, 2 * p * c), 2, p, c, rows);
  await nearestDistanceTable(z.subarray(0, 2 * p * c), 2, p, c, int8);
  // best of `reps` alternating runs of each form: single runs on a shared machine vary by 10-20 %
  let tRef = Infinity,
    tOurs = Infinity,
    tInt8 = Infinity,
    tEuc = Infinity,
    tIdx = Infinity;
  let ref: Float32Array = new Float32Array(0),
    ours: Float32Array = new Float32Array(0),
    ours8: Float32Array = new Float32Array(0),
    oursE: Float32Array = new Float32Array(0),
    oursI: Float32Array = new Float32Array(0);
  for (let k = 0; k < reps; k++) {
    await peak.sample();
    let t0 = performance.now();
    ref = await nearestDistanceTableStraightforward(z, n, p, c, rows);
    tRef = Math.min(tRef, (performance.now() - t0) / 1000);
    t0 = performance.now();
    ours = await nearestDistanceTable(z, n, p, c, both);
    tOurs = Math.min(tOurs, (performance.now() - t0) / 1000);
    t0 = performance.now();
    ours8 = await nearestDistanceTable(z, n, p, c, int8);
    tInt8 = Math.min(tInt8, (performance.now() - t0) / 1000);
    t0 = performance.now();
    oursE = await nearestDistanceTable(z, n, p, c, both, { euclidean: true });
    tEuc = Math.min(tEuc, (performance.now() - t0) / 1000);
    t0 = performance.now();
    oursI = (await nearestTableWithIndices(z, n, p, c, both)).table;
    tIdx = Math.min(tIdx, (performance.now() - t0) / 1000);
  }
  const sRef = intervalMeans(ref, n, p, [0, 0.3]);
  const sOurs = intervalMeans(ours, n, p, [0, 0.3]);
  let diff = 0;
  for (let k = 0; k < sRef.length; k++) diff = Math.max(diff, Math.abs(sRef[k] - sOurs[k]));
  const s8 = intervalMeans(ours8, n, p, [0, 0.3]);
  let diff8 = 0;
  for (let k = 0; k < s8.length; k++) diff8 = Math.max(diff8, Math.abs(s8[k] - sOurs[k]));
  const sE = intervalMeans(oursE, n, p, [0, 0.3]);
  let diffE = 0;
  for (let k = 0; k < sE.length; k++) diffE = Math.max(diffE, Math.abs(sE[k] - sOurs[k]));
  const peakGflops = await peak.sample();
  await peak.release();
  await both.release();
  await rows.release();
  await int8.release();
  const flops = ((n * (n - 1)) / 2) * 2 * p * p * c;
  const gflops = flops / tOurs / 1e9;
  return {
    n,
    p,
    c,
    block: [a, b],
    gemm_peak_gflops: peakGflops,
    straightforward_s: tRef,
    project_s: tOurs,
    speedup_vs_straightforward: tRef / tOurs,
    msm_gflops: gflops,
    msm_fraction_of_peak: gflops / peakGflops,
    max_abs_diff: diff,
    int8_s: tInt8,
    int8_max_abs_diff: diff8,
    euclidean_s: tEuc,
    euclidean_max_abs_diff: diffE,
    indexed_s: tIdx,
    indexed_same_distances: oursI.length === ours.length && oursI.every((v, k) => v === ours[k]),
  };
}

/** MSM pass time for each N; returns the times and the fitted exponent of t ~ N^k. */
export async function scaling(ns: number[], p: number, c: number): Promise<{ n: number[]; seconds: number[]; exponent: number }> {
  const kernel = await PairKernel.create(true);
  const seconds: number[] = [];
  for (const n of ns) {
    const z = randomUnitFeatures(n, p, c, n);
    const t0 = performance.now();
    intervalMeans(await nearestDistanceTable(z, n, p, c, kernel), n, p, [0, 0.3]);
    seconds.push((performance.now() - t0) / 1000);
  }
  await kernel.release();
  // least squares on log t = k log n + b
  const xs = ns.map(Math.log),
    ys = seconds.map(Math.log);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length,
    my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let sxy = 0,
    sxx = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  return { n: ns, seconds, exponent: sxy / sxx };
}
