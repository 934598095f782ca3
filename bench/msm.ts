/**
 * MSM benchmarks: the machine's GEMM peak for the MSM's shape, the project's block scoring
 * against the straightforward per-image scoring on the same features, and the N-scaling line.
 */
import { performance } from 'node:perf_hooks';
import { GraphBuilder } from '../src/onnx/graph.js';
import { createSession, ort } from '../src/compute/session.js';
import { PairKernel } from '../src/core/msm-kernel.js';
import { nearestDistanceTable, nearestDistanceTableStraightforward, intervalMeans, blockSize, DEFAULT_CHUNK_ROWS } from '../src/core/msm.js';

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

/** Best-of-`reps` GFLOPS of a pure ONNX Runtime MatMul [m, c] x [c, n] (n defaults to m). */
export async function gemmPeak(m: number, c: number, n = m, reps = 5): Promise<number> {
  const g = new GraphBuilder('gemm_peak');
  const a = g.input('a', 'float32', ['M', c]);
  const bt = g.input('bt', 'float32', [c, 'N']);
  g.output(g.op('MatMul', [a, bt]), 'float32', ['M', 'N'], 'y');
  const s = await createSession(g.toBytes());
  const A = randomUnitFeatures(1, m, c, 3);
  const B = randomUnitFeatures(1, c, n, 4);
  const feeds = { a: new ort.Tensor('float32', A, [m, c]), bt: new ort.Tensor('float32', B, [c, n]) };
  await s.run(feeds);
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await s.run(feeds);
    best = Math.min(best, performance.now() - t0);
  }
  await s.release();
  return (2 * m * n * c) / (best / 1000) / 1e9;
}

export interface MsmComparison {
  n: number;
  p: number;
  c: number;
  /** images per row block x per column chunk of each product */
  block: [number, number];
  gemm_peak_gflops: number;
  /** best of the repeated runs */
  straightforward_s: number;
  project_s: number;
  speedup_vs_straightforward: number;
  /** useful flops N(N-1)/2 * 2 P^2 C over the project's time */
  msm_gflops: number;
  msm_fraction_of_peak: number;
  max_abs_diff: number;
}

/** One MSM pass both ways on random unit features. */
export function compareMsm(n: number, p: number, c: number, reps = 3): Promise<MsmComparison> {
  return compareOnBank(randomUnitFeatures(n, p, c, 7), n, p, c, reps);
}

/** One MSM pass both ways on the same feature bank Z [n, p, c] (unit vectors). */
export async function compareOnBank(z: Float32Array, n: number, p: number, c: number, reps = 3): Promise<MsmComparison> {
  const both = await PairKernel.create(true);
  const rows = await PairKernel.create(false);
  const a = blockSize(n, p, {});
  const b = Math.max(a, Math.min(n - 1, Math.round(DEFAULT_CHUNK_ROWS / p)));
  const peak = await gemmPeak(a * p, c, b * p);
  // warm up both kernels on a small slice
  await nearestDistanceTable(z.subarray(0, 2 * p * c), 2, p, c, both);
  await nearestDistanceTableStraightforward(z.subarray(0, 2 * p * c), 2, p, c, rows);
  // best of `reps` alternating runs of each form: single runs on a shared machine vary by 10-20 %
  let tRef = Infinity, tOurs = Infinity;
  let ref: Float32Array = new Float32Array(0), ours: Float32Array = new Float32Array(0);
  for (let k = 0; k < reps; k++) {
    let t0 = performance.now();
    ref = await nearestDistanceTableStraightforward(z, n, p, c, rows);
    tRef = Math.min(tRef, (performance.now() - t0) / 1000);
    t0 = performance.now();
    ours = await nearestDistanceTable(z, n, p, c, both);
    tOurs = Math.min(tOurs, (performance.now() - t0) / 1000);
  }
  const sRef = intervalMeans(ref, n, p, [0, 0.3]);
  const sOurs = intervalMeans(ours, n, p, [0, 0.3]);
  let diff = 0;
  for (let k = 0; k < sRef.length; k++) diff = Math.max(diff, Math.abs(sRef[k] - sOurs[k]));
  await both.release();
  await rows.release();
  const flops = ((n * (n - 1)) / 2) * 2 * p * p * c;
  const gflops = flops / tOurs / 1e9;
  return {
    n, p, c, block: [a, b],
    gemm_peak_gflops: peak,
    straightforward_s: tRef,
    project_s: tOurs,
    speedup_vs_straightforward: tRef / tOurs,
    msm_gflops: gflops,
    msm_fraction_of_peak: gflops / peak,
    max_abs_diff: diff,
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
  const xs = ns.map(Math.log), ys = seconds.map(Math.log);
  const mx = xs.reduce((a, b) => a + b, 0) / xs.length, my = ys.reduce((a, b) => a + b, 0) / ys.length;
  let sxy = 0, sxx = 0;
  for (let i = 0; i < xs.length; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  return { n: ns, seconds, exponent: sxy / sxx };
}
