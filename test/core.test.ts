/**
 * Parity of the MuSc core (LNAMD, MSM, maps, RsCIN) with the reference implementation's outputs
 * in ../shared/golden (tiny random CLIP and DINOv2 backbones on 10 bottle images).
 * Tolerances are the ones stated in issue 2 / golden README §7.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { golden, maxAbsDiff, hasGolden } from './helpers/core-golden.js';
import { layerNormImages, aggregateStage, lnamdTarget } from '../src/core/lnamd.js';
import { intervalBounds, nearestDistanceTable, nearestDistanceTableStraightforward } from '../src/core/msm.js';
import { msmScores, intervalMeans } from './helpers/msm.js';
import { OnnxPairKernel as PairKernel, columnSplit } from '../src/compute/msm-kernel.js';
import { quantizeBank } from '../src/core/kernel.js';
import { scoreStages } from '../src/scoring/tasks.js';
import { upsampleAlignCorners, mapMaxima, imageScoreOf, imageScores, parseImageScoreRule, formatImageScoreRule } from '../src/core/maps.js';
import { rscin, minMaxNormalise, tokenSimilarity } from '../src/core/rscin.js';
import { musc, scorePatches } from '../src/scoring/musc.js';
import { shutdownCompute } from '../src/compute/worker.js';
import type { StageFeatures } from '../src/core/types.js';
import { lcgSigned } from './helpers/lcg.js';

const BACKBONES = ['clip_tiny', 'dinov2_tiny'] as const;
const R_LIST = [1, 3, 5];
const N = 10,
  G = 6,
  P = 36,
  C = 64,
  L = 4;

let kernel: PairKernel;
after(async () => {
  await kernel?.release();
  await shutdownCompute();
});

/** golden patch_tokens [4, 10, 37, C] -> 4 stages of [10, 6, 6, C] (class token dropped). */
function stagesOf(bb: string): StageFeatures<Float32Array>[] {
  const t = golden(`${bb}.outputs.safetensors`).float32('patch_tokens');
  assert.deepEqual(t.shape, [L, N, 37, C]);
  return Array.from({ length: L }, (_, l) => {
    const data = new Float32Array(N * P * C);
    for (let i = 0; i < N; i++) data.set(t.data.subarray(((l * N + i) * 37 + 1) * C, ((l * N + i) * 37 + 37) * C), i * P * C);
    return { n: N, h: G, w: G, c: C, data };
  });
}

/** golden lnamd_features[ri, :, :, l, :] ([3, 10, 36, 4, C]) -> [10, 36, C] */
function goldenZ(bb: string, name: string, ri: number, l: number): Float32Array {
  const t = golden(`${bb}.outputs.safetensors`).float32(name);
  const z = new Float32Array(N * P * C);
  for (let i = 0; i < N; i++)
    for (let p = 0; p < P; p++) {
      const src = (((ri * N + i) * P + p) * L + l) * C;
      z.set(t.data.subarray(src, src + C), (i * P + p) * C);
    }
  return z;
}

function slice(t: { data: Float64Array }, offset: number, len: number): Float64Array {
  return t.data.subarray(offset, offset + len);
}

for (const bb of BACKBONES) {
  test(`${bb}: LNAMD matches the reference for every stage and r (1e-6, before and after L2)`, { skip: !hasGolden }, () => {
    const stages = stagesOf(bb);
    const target = lnamdTarget(stages);
    let worstPre = 0,
      worst = 0;
    for (let l = 0; l < L; l++) {
      const normed = layerNormImages(stages[l]);
      for (const [ri, r] of R_LIST.entries()) {
        const pre = aggregateStage(stages[l], normed, r, { ...target, skipL2: true });
        const z = aggregateStage(stages[l], normed, r, target);
        worstPre = Math.max(worstPre, maxAbsDiff(pre, goldenZ(bb, 'lnamd_features_prenorm', ri, l)));
        worst = Math.max(worst, maxAbsDiff(z, goldenZ(bb, 'lnamd_features', ri, l)));
      }
    }
    assert.ok(worstPre < 1e-6, `pre-norm max abs diff ${worstPre}`);
    assert.ok(worst < 1e-6, `normalised max abs diff ${worst}`);
  });

  test(`${bb}: MSM on the reference's Z matches msm_scores_f64input (1e-6) and msm_scores (5e-5)`, { skip: !hasGolden }, async () => {
    kernel ??= await PairKernel.create(true, 'cpu', undefined, 'exact');
    const f = golden(`${bb}.outputs.safetensors`);
    const exact = f.float64('msm_scores_f64input'); // [3, 4, 10, 36]
    const ref32 = f.float64('msm_scores');
    let worstExact = 0,
      worst32 = 0;
    for (let ri = 0; ri < 3; ri++)
      for (let l = 0; l < L; l++) {
        const s = await msmScores(goldenZ(bb, 'lnamd_features', ri, l), N, P, C, [0, 0.3], kernel, { blockImages: 3 });
        const off = (ri * L + l) * N * P;
        worstExact = Math.max(worstExact, maxAbsDiff(s, slice(exact, off, N * P)));
        worst32 = Math.max(worst32, maxAbsDiff(s, slice(ref32, off, N * P)));
      }
    assert.ok(worstExact < 1e-6, `vs f64 reference: ${worstExact}`);
    assert.ok(worst32 < 5e-5, `vs f32 reference: ${worst32}`);
  });

  test(`${bb}: full scoring from patch tokens matches layer means, patch scores, maps and image scores`, { skip: !hasGolden }, async () => {
    const f = golden(`${bb}.outputs.safetensors`);
    const res = await scoreStages(stagesOf(bb), { keepPasses: true, maxRows: 100, precision: 'exact' });
    assert.equal(res.h, G);
    assert.equal(res.w, G);
    assert.ok(maxAbsDiff(res.passes!, f.float64('msm_scores_f64input').data) < 1e-6);
    assert.ok(maxAbsDiff(res.passes!, f.float64('msm_scores').data) < 5e-5);
    // mean over stages per r
    const layerMean = new Float64Array(3 * N * P);
    for (let ri = 0; ri < 3; ri++)
      for (let l = 0; l < L; l++) for (let k = 0; k < N * P; k++) layerMean[ri * N * P + k] += res.passes![(ri * L + l) * N * P + k] / L;
    assert.ok(maxAbsDiff(layerMean, f.float64('msm_layer_mean').data) < 5e-5);
    assert.ok(maxAbsDiff(res.patch, f.float64('patch_scores_f64input').data) < 1e-6);
    assert.ok(maxAbsDiff(res.patch, f.float64('patch_scores').data) < 5e-5);
    const maps = upsampleAlignCorners(res.patch, N, G, G, 84, 84);
    assert.ok(maxAbsDiff(maps, f.float64('anomaly_maps').data) < 5e-5);
    assert.ok(maxAbsDiff(mapMaxima(maps, N), f.float64('image_scores').data) < 5e-5);
  });

  test(`${bb}: the fast precision (the reference's float32 matmul form) matches msm_scores and patch_scores (5e-5)`, {
    skip: !hasGolden,
  }, async () => {
    const f = golden(`${bb}.outputs.safetensors`);
    const res = await scoreStages(stagesOf(bb), { keepPasses: true, precision: 'fast' });
    assert.ok(maxAbsDiff(res.passes!, f.float64('msm_scores').data) < 5e-5);
    assert.ok(maxAbsDiff(res.patch, f.float64('patch_scores').data) < 5e-5);
  });

  test(`${bb}: maps upsampled from the reference's patch scores match anomaly_maps (1e-6) and image scores`, { skip: !hasGolden }, () => {
    const f = golden(`${bb}.outputs.safetensors`);
    const maps = upsampleAlignCorners(f.float64('patch_scores').data, N, G, G, 84, 84);
    assert.ok(maxAbsDiff(maps, f.float64('anomaly_maps').data) < 1e-6);
    assert.ok(maxAbsDiff(mapMaxima(f.float64('anomaly_maps').data, N), f.float64('image_scores').data) === 0);
  });

  test(`${bb}: RsCIN fed with the reference's image scores and class tokens matches both k lists (1e-6)`, { skip: !hasGolden }, () => {
    const f = golden(`${bb}.outputs.safetensors`);
    const scores = f.float64('image_scores').data;
    const ct = f.float32('class_tokens');
    const tokens = { n: ct.shape[0], d: ct.shape[1], data: ct.data };
    assert.ok(maxAbsDiff(minMaxNormalise(scores), f.float64('rscin_scores_norm').data) < 1e-12);
    // the reference's similarity is float32 (DINO's entries are ~67, where one float32 ulp is 7.6e-6): relative 1e-6
    const sim = tokenSimilarity(tokens),
      simRef = f.float64('rscin_similarity').data;
    for (let k = 0; k < sim.length; k++) assert.ok(Math.abs(sim[k] - simRef[k]) <= 1e-6 * Math.max(1, Math.abs(simRef[k])));
    assert.ok(maxAbsDiff(rscin(scores, tokens, [1, 2, 3]), f.float64('rscin_k123').data) < 1e-6);
    assert.ok(maxAbsDiff(rscin(scores, tokens, [1, 8, 9]), f.float64('rscin_k189').data) < 1e-6);
    // switched off
    assert.deepEqual(Array.from(rscin(scores, tokens, [0])), Array.from(scores));
  });

  test(`${bb}: the public API (compute worker) gives the reference's maps, image scores and RsCIN scores`, {
    skip: !hasGolden,
  }, async () => {
    const f = golden(`${bb}.outputs.safetensors`);
    const ct = f.float32('class_tokens');
    const res = await musc(
      { stages: stagesOf(bb), imageTokens: { n: N, d: ct.shape[1], data: ct.data } },
      { imageSize: 84, kList: [1, 2, 3], precision: 'exact' },
    );
    assert.ok(maxAbsDiff(res.maps, f.float64('anomaly_maps').data) < 5e-5);
    assert.ok(maxAbsDiff(res.imageScores, f.float64('image_scores').data) < 5e-5);
    assert.ok(maxAbsDiff(res.rscinScores, f.float64('rscin_k123').data) < 1e-5);
  });
}

test('msm_edge: N = 5 matches the reference; N = 4 is finite (k >= 1 guard) and equals the nearest image distance', {
  skip: !hasGolden,
}, async () => {
  kernel ??= await PairKernel.create(true, 'cpu', undefined, 'exact');
  const f = golden('msm_edge.safetensors');
  const z5 = f.float32('N5.Z');
  const s5 = await msmScores(z5.data, 5, 36, 64, [0, 0.3], kernel);
  assert.ok(maxAbsDiff(s5, f.float64('N5.msm').data) < 5e-5);
  const z4 = f.float32('N4.Z');
  assert.ok(
    f.float64('N4.msm').data.every((v) => Number.isNaN(v)),
    'the reference gives NaN for N = 4',
  );
  const s4 = await msmScores(z4.data, 4, 36, 64, [0, 0.3], kernel);
  assert.ok(s4.every((v) => Number.isFinite(v)));
  // with k = 1 the score is the smallest nearest-patch distance over the other images
  const dist = await nearestDistanceTable(z4.data, 4, 36, 64, kernel);
  for (let i = 0; i < 4; i++)
    for (let p = 0; p < 36; p++) {
      let m = Infinity;
      for (let j = 0; j < 4; j++) if (j !== i) m = Math.min(m, dist[(i * 36 + p) * 4 + j]);
      assert.equal(s4[i * 36 + p], m);
    }
});

test('interval bounds follow the reference (int truncation, swap, absolute counts) with the k >= 1 guard', () => {
  assert.deepEqual(intervalBounds(9, [0, 0.3]), [0, 2]); // N = 10: int(9 * 0.3) = 2
  assert.deepEqual(intervalBounds(4, [0, 0.3]), [0, 1]); // N = 5
  assert.deepEqual(intervalBounds(3, [0, 0.3]), [0, 1]); // N = 4: reference k = 0 (NaN), guard keeps 1
  assert.deepEqual(intervalBounds(99, [0.1, 0.3]), [9, 29]);
  assert.deepEqual(intervalBounds(99, [0.3, 0.1]), [9, 29]); // swapped
  assert.deepEqual(intervalBounds(99, [0, 5]), [0, 5]); // absolute count
  assert.deepEqual(intervalBounds(1, [0, 1]), [0, 1]); // N = 2
  assert.deepEqual(intervalBounds(9, [1, 1]), [1, 2]);
  assert.throws(() => intervalBounds(0, [0, 0.3]), /at least 2 images/);
});

test('interval means: hand-checkable table', () => {
  // N = 4, P = 1: dist[i, 0, j]
  const d = new Float32Array([0, 1, 2, 3, 4, 0, 6, 8, 1, 1, 0, 1, 5, 3, 4, 0]);
  assert.deepEqual(Array.from(intervalMeans(d, 4, 1, [0, 2])), [1.5, 5, 1, 3.5]);
  assert.deepEqual(Array.from(intervalMeans(d, 4, 1, [1, 3])), [2.5, 7, 1, 4.5]);
});

/** rows [m, c] of seeded random unit vectors */
function unitRows(m: number, c: number, seed: number): Float32Array {
  const rnd = lcgSigned(seed);
  const z = new Float32Array(m * c).map(rnd);
  for (let k = 0; k < m; k++) {
    let s = 0;
    for (let t = 0; t < c; t++) s += z[k * c + t] ** 2;
    for (let t = 0; t < c; t++) z[k * c + t] /= Math.sqrt(s);
  }
  return z;
}

for (const [precision, p] of [
  ['exact', 7],
  ['exact', 12],
  ['fast', 12],
  ['fast', 15],
] as const) {
  const blockTitle =
    `both-directions block scoring equals the straightforward per-image scoring ` +
    `(${precision}, P = ${p}: column split ${columnSplit(p)}, uneven blocks)`;
  test(blockTitle, async () => {
    const both = await PairKernel.create(true, 'cpu', undefined, precision);
    const rows = await PairKernel.create(false, 'cpu', undefined, precision);
    const n = 11,
      c = 16;
    const z = unitRows(n * p, c, 7 + p);
    const a = await nearestDistanceTable(z, n, p, c, both, { blockImages: 4 });
    const a1 = await nearestDistanceTable(z, n, p, c, both, { blockImages: 1, colImages: 3 });
    const b = await nearestDistanceTableStraightforward(z, n, p, c, rows);
    await rows.release();
    await both.release();
    // the fast form's float32 cancellation (2 - 2 a.b) bounds its agreement with float64
    const tolBrute = precision === 'exact' ? 1e-4 : 2e-3;
    for (let i = 0; i < n; i++)
      for (let q = 0; q < p; q++)
        for (let j = 0; j < n; j++) {
          if (i === j) continue;
          // exact distance by brute force in float64
          let best = Infinity;
          for (let u = 0; u < p; u++) {
            let s = 0;
            for (let t = 0; t < c; t++) s += (z[(i * p + q) * c + t] - z[(j * p + u) * c + t]) ** 2;
            best = Math.min(best, Math.sqrt(s));
          }
          const k = (i * p + q) * n + j;
          assert.ok(Math.abs(a[k] - b[k]) < 1e-5, `block vs straightforward at ${i},${q},${j}`);
          assert.ok(Math.abs(a1[k] - b[k]) < 1e-5, `one-image blocks vs straightforward at ${i},${q},${j}`);
          assert.ok(Math.abs(a[k] - best) < tolBrute, `block vs brute force at ${i},${q},${j}: ${a[k]} vs ${best}`);
        }
  });
}

const int8Title =
  'int8 precision: the block table is the integer arithmetic on the quantized bank, within the quantization bound of float64';
test(int8Title, async () => {
  const n = 7,
    p = 12,
    c = 20;
  const z = unitRows(n * p, c, 3);
  const k8 = await PairKernel.create(true, 'cpu', undefined, 'int8');
  const tables = [
    await nearestDistanceTable(z, n, p, c, k8, { blockImages: 2, colImages: 3 }),
    await nearestDistanceTable(z, n, p, c, k8, { blockImages: 1, colImages: 6 }),
  ];
  await k8.release();
  const bank = quantizeBank(z, n, p, c);
  assert.ok(bank.step > 0 && bank.step <= 1 / 127);
  const twoSS = Math.fround(2 * bank.step * bank.step);
  // |d^2 error| <= 2 (step sqrt(C) + C step^2 / 4) for unit vectors; |d error| <= sqrt of that
  const bound = Math.sqrt(2 * (bank.step * Math.sqrt(c) + (c * bank.step ** 2) / 4));
  for (let i = 0; i < n; i++)
    for (let q = 0; q < p; q++)
      for (let j = 0; j < n; j++) {
        if (i === j) continue;
        let bestInt = -Infinity,
          best = Infinity;
        for (let u = 0; u < p; u++) {
          let dot = 0,
            d2 = 0;
          for (let t = 0; t < c; t++) {
            dot += (bank.q8[(i * p + q) * c + t]! - 128) * (bank.r8[(j * c + t) * p + u]! - 128);
            d2 += (z[(i * p + q) * c + t] - z[(j * p + u) * c + t]) ** 2;
          }
          bestInt = Math.max(bestInt, dot);
          best = Math.min(best, Math.sqrt(d2));
        }
        const d2f = Math.fround(2 - Math.fround(twoSS * Math.fround(bestInt)));
        const expect = Math.fround(d2f > 0 ? Math.sqrt(d2f) : 0);
        for (const t of tables) {
          const got = t[(i * p + q) * n + j];
          assert.equal(got, expect, `int8 table at ${i},${q},${j}: ${got} vs integer arithmetic ${expect}`);
          assert.ok(Math.abs(got - best) <= bound, `int8 vs float64 at ${i},${q},${j}: ${got} vs ${best} (bound ${bound})`);
        }
      }
});

test('column split: the divisor of P nearest sqrt(P)', () => {
  assert.deepEqual([196, 784, 1369, 7, 12, 15, 1, 2, 1024 * 3].map(columnSplit), [14, 28, 37, 1, 3, 3, 1, 1, 48]);
});

test('LNAMD with stages of different grids and channels (CNN case) equals unfold -> resize -> adaptive pool', () => {
  // stage 0: 4x4 grid, 3 channels; stage 1: 2x2 grid, 5 channels -> pooled to 3 and resized to 4x4
  const s1: StageFeatures = { n: 1, h: 2, w: 2, c: 5, data: Float32Array.from({ length: 20 }, (_, k) => Math.sin(k * 1.7)) };
  const normed = layerNormImages(s1);
  const r = 3;
  const z = aggregateStage(s1, normed, r, { gridH: 4, gridW: 4, channels: 3, skipL2: true });
  // reference order, written naively: unfold on the 2x2 grid ([C*r*r] per position) ...
  const L = 5 * r * r;
  const unf = new Float64Array(4 * L);
  for (let y = 0; y < 2; y++)
    for (let x = 0; x < 2; x++)
      for (let ch = 0; ch < 5; ch++)
        for (let ky = 0; ky < r; ky++)
          for (let kx = 0; kx < r; kx++) {
            const yy = y + ky - 1,
              xx = x + kx - 1;
            unf[(y * 2 + x) * L + ch * 9 + ky * 3 + kx] = yy < 0 || yy >= 2 || xx < 0 || xx >= 2 ? 0 : normed[(yy * 2 + xx) * 5 + ch];
          }
  // ... bilinear resize each of the L maps to 4x4 (align_corners=false) ...
  const src = (d: number) => Math.max((d + 0.5) * 0.5 - 0.5, 0);
  const res = new Float64Array(16 * L);
  for (let y = 0; y < 4; y++)
    for (let x = 0; x < 4; x++) {
      const sy = src(y),
        sx = src(x);
      const y0 = Math.floor(sy),
        x0 = Math.floor(sx),
        y1 = Math.min(y0 + 1, 1),
        x1 = Math.min(x0 + 1, 1);
      const ly = sy - y0,
        lx = sx - x0;
      for (let k = 0; k < L; k++) {
        const v = (yy: number, xx: number) => unf[(yy * 2 + xx) * L + k];
        res[(y * 4 + x) * L + k] = (1 - ly) * ((1 - lx) * v(y0, x0) + lx * v(y0, x1)) + ly * ((1 - lx) * v(y1, x0) + lx * v(y1, x1));
      }
    }
  // ... then adaptive average pooling L -> 3
  for (let q = 0; q < 16; q++)
    for (let t = 0; t < 3; t++) {
      const s0 = Math.floor((t * L) / 3),
        e0 = Math.ceil(((t + 1) * L) / 3);
      let s = 0;
      for (let k = s0; k < e0; k++) s += res[q * L + k];
      assert.ok(Math.abs(z[q * 3 + t] - s / (e0 - s0)) < 1e-6);
    }
});

test('scorePatches rejects fewer than 2 images and inconsistent stages with clear errors', async () => {
  const one: StageFeatures = { n: 1, h: 2, w: 2, c: 3, data: new Float32Array(12) };
  await assert.rejects(scorePatches([one]), /at least 2 images/);
  const bad: StageFeatures = { n: 2, h: 2, w: 2, c: 3, data: new Float32Array(5) };
  await assert.rejects(scorePatches([bad]), /data length/);
});

test('scoring in the compute worker stops at the next block when cancelled (Ctrl-C)', async () => {
  const { ComputeWorker } = await import('../src/compute/worker.js');
  const w = new ComputeWorker(); // its own worker: cancellation is sticky
  const n = 40,
    h = 14,
    c = 256;
  const stage: StageFeatures = { n, h, w: h, c, data: new Float32Array(n * h * h * c).map((_, k) => Math.sin(k * 0.61)) };
  const started = Date.now();
  const p = w.call(new URL('../src/scoring/tasks.js', import.meta.url).href, 'scoreStages', [[stage], { rList: [1, 3, 5], maxRows: 196 }]);
  setTimeout(() => w.cancel(), 300);
  await assert.rejects(p, (e: Error) => e.name === 'InterruptedError');
  assert.ok(Date.now() - started < 20_000);
  await w.terminate();
});

test('image score rules: max = mapMaxima; top:F = mean of the top round(F * pixels) values (brute force); NaN left out', () => {
  const n = 3,
    per = 200;
  const maps = new Float32Array(n * per);
  let seed = 7;
  for (let k = 0; k < maps.length; k++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    maps[k] = (seed / 2147483648) * 10;
  }
  assert.deepEqual(Array.from(imageScores(maps, n, parseImageScoreRule('max'))), Array.from(mapMaxima(maps, n)));
  for (const f of [0.005, 0.025, 0.1, 1]) {
    const got = imageScores(maps, n, parseImageScoreRule(`top:${f}`));
    for (let i = 0; i < n; i++) {
      const v = Array.from(maps.subarray(i * per, (i + 1) * per)).sort((a, b) => b - a);
      const k = Math.max(1, Math.round(per * f));
      const want = v.slice(0, k).reduce((a, b) => a + b, 0) / k;
      assert.ok(Math.abs(got[i]! - want) < 1e-9, `top:${f} image ${i}: ${got[i]} vs ${want}`);
    }
  }
  assert.equal(imageScoreOf([1, Number.NaN, 3, 2], { kind: 'top', fraction: 0.5 }), 2.5); // 3 valid values: top 2
  assert.equal(imageScoreOf([1, Number.NaN, 3], { kind: 'max' }), 3);
  assert.equal(formatImageScoreRule(parseImageScoreRule('top:0.025')), 'top:0.025');
  for (const bad of ['top:0', 'top:1.5', 'top:', 'mean', 'top:x'])
    assert.throws(() => parseImageScoreRule(bad), /expected 'max' or 'top:F'/);
});
