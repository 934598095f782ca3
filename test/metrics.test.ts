/**
 * Metrics parity against the MuSc golden data (sklearn 1.2.1 / skimage 0.19.3 numbers, 1e-9
 * absolute), hand-checkable unit cases, a brute-force cross-check and a ~20M-pixel scaling run.
 */
import { test } from 'node:test';
import { mulberry32 } from '../src/demo/synthetic.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { SafetensorsFile } from '../src/io/safetensors.js';
import {
  aupro, auproCurve, averagePrecisionScore, binaryMetrics, computeMetrics, f1Max, f1OptimalThreshold,
  labelImages, labelRegions, numpyArange, proMusc, proMuscCurve, rocAucScore, rocCurve, type PixelInput,
} from '../src/metrics/index.js';
import { argsortAscending } from '../src/metrics/sort.js';
import { evaluate } from '../src/metrics/evaluator.js';
import { isNg, madThreshold } from '../src/threshold.js';
import { goldenPath } from './helpers/paths.js';

const TOL = 1e-9;

/** max |a-b| over a metric; records it for the summary printed at the end */
const maxErr = new Map<string, number>();
function close(name: string, actual: number | null, expected: number, tol = TOL): void {
  assert.ok(actual !== null && Number.isFinite(actual), `${name}: got ${actual}`);
  const err = Math.abs(actual - expected);
  maxErr.set(name, Math.max(maxErr.get(name) ?? 0, err));
  assert.ok(err <= tol, `${name}: got ${actual}, expected ${expected} (|diff| ${err} > ${tol})`);
}
function closeArrays(name: string, actual: ArrayLike<number>, expected: ArrayLike<number>, tol = TOL): void {
  assert.equal(actual.length, expected.length, `${name}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const e = Math.abs(actual[i] - expected[i]);
    if (!(e <= worst)) { worst = e; at = i; }
  }
  maxErr.set(name, Math.max(maxErr.get(name) ?? 0, worst));
  assert.ok(worst <= tol, `${name}: max |diff| ${worst} at ${at} (got ${actual[at]}, expected ${expected[at]})`);
}

// ------------------------------------------------------------------ golden data

interface GoldenJson {
  metrics_case: {
    musc: Record<string, number>;
    aupro_mvtec_official_limit0p3: number;
    num_regions_8conn: number;
    num_regions_4conn: number;
    num_unique_scores: number;
    musc_pro_num_thresholds: number;
    musc_pro_points_below_fpr_limit: number;
  };
  clip_tiny: BackboneJson;
  dinov2_tiny: BackboneJson;
}
interface BackboneJson {
  metrics: Record<string, number>;
  metrics_image_alt: Record<string, Record<string, number>>;
  pro_num_thresholds: number;
  pro_points_below_fpr_limit: number;
}
const golden = JSON.parse(readFileSync(goldenPath('golden_metrics.json'), 'utf8')) as GoldenJson;

function load(file: string, names: string[]): Record<string, Float64Array> {
  const f = SafetensorsFile.open(goldenPath(file));
  try {
    const out: Record<string, Float64Array> = {};
    for (const n of names) out[n] = f.float64(n).data; // exact for F32/F64/I32/I64
    return out;
  } finally {
    f.close();
  }
}
function loadInt(file: string, name: string): Int32Array {
  const f = SafetensorsFile.open(goldenPath(file));
  try {
    return f.int32(name).data;
  } finally {
    f.close();
  }
}

const mc = load('metrics_case.safetensors', [
  'maps', 'image_labels', 'image_scores', 'musc_pro_curve_fpr_normalized', 'musc_pro_curve_pro',
  'mvtec_pro_curve_fpr', 'mvtec_pro_curve_pro', 'mvtec_thresholds',
]);
const mcMasks = loadInt('metrics_case.safetensors', 'masks');
const mcPixels: PixelInput = { maps: mc.maps, masks: mcMasks, n: 6, h: 64, w: 64 };

test('metrics_case: image metrics (ties, incl. a normal/anomalous tie)', () => {
  const g = golden.metrics_case.musc;
  const r = computeMetrics({ imageScores: mc.image_scores, imageLabels: mc.image_labels });
  close('metrics_case.image_auroc', r.image_auroc, g.image_auroc);
  close('metrics_case.image_f1', r.image_f1max, g.image_f1);
  close('metrics_case.image_ap', r.image_ap, g.image_ap);
  assert.equal(r.pixel_auroc, null);
  assert.equal(r.aupro, null);
  close('metrics_case.image_auroc', rocAucScore(mc.image_scores, mc.image_labels), g.image_auroc);
  close('metrics_case.image_ap', averagePrecisionScore(mc.image_scores, mc.image_labels), g.image_ap);
  close('metrics_case.image_f1', f1Max(mc.image_scores, mc.image_labels), g.image_f1);
});

const mcResult = computeMetrics({
  imageScores: mc.image_scores, imageLabels: mc.image_labels, maps: mc.maps, masks: mcMasks, height: 64, width: 64,
});

test('evaluate: the golden metrics through the evaluator; curve, F1-optimal and label-free thresholds, decisions', async () => {
  const g = golden.metrics_case.musc;
  const e = await evaluate({ imageScores: mc.image_scores, labels: mc.image_labels, maps: mc.maps, masks: mcMasks, size: 64, decision: { method: 'mad', k: 2 } });
  const m = e.metrics!;
  close('metrics_case.image_auroc', m.image_auroc, g.image_auroc);
  close('metrics_case.image_f1', m.image_f1max, g.image_f1);
  close('metrics_case.pixel_auroc', m.pixel_auroc, g.pixel_auroc);
  close('metrics_case.pixel_aupro_musc', m.pixel_pro, g.pixel_aupro);
  close('metrics_case.aupro_mvtec', m.aupro, golden.metrics_case.aupro_mvtec_official_limit0p3);
  assert.deepEqual(m, mcResult, 'the same numbers as computeMetrics');
  close('metrics_case.image_auroc', e.curves.roc!.auc, g.image_auroc);
  const c = rocCurve(mc.image_scores, mc.image_labels);
  assert.deepEqual(e.curves.roc!.fpr, Array.from(c.fpr));
  assert.deepEqual(e.curves.roc!.tpr, Array.from(c.tpr));
  const f1 = e.thresholds.f1!;
  assert.equal(f1.threshold, f1OptimalThreshold(mc.image_scores, mc.image_labels).threshold);
  close('metrics_case.image_f1', f1.f1, g.image_f1);
  close('metrics_case.image_f1', (2 * f1.precision * f1.recall) / (f1.precision + f1.recall), g.image_f1);
  const t = madThreshold(mc.image_scores, 2);
  assert.equal(e.thresholds.labelFree!.threshold, t);
  assert.deepEqual(e.decisions!.decisions, Array.from(mc.image_scores, (s) => (isNg(s, t) ? 'NG' : 'OK')));
  // without labels: no metrics, no curve, no F1 threshold; no decisions unless a rule is given
  const u = await evaluate({ imageScores: mc.image_scores, labels: null, maps: mc.maps, masks: mcMasks, size: 64 });
  assert.deepEqual([u.metrics, u.curves.roc, u.thresholds.f1, u.decisions], [null, null, null, undefined]);
  assert.equal(u.thresholds.labelFree!.threshold, madThreshold(mc.image_scores, 3));
  await assert.rejects(evaluate({ imageScores: mc.image_scores, labels: mc.image_labels, maps: mc.maps, masks: mcMasks }), /size is required/);
  assert.equal((await evaluate({ imageScores: mc.image_scores, labels: mc.image_labels, metrics: null })).metrics, null);
});

test('metrics_case: pixel AUROC', () => close('metrics_case.pixel_auroc', mcResult.pixel_auroc, golden.metrics_case.musc.pixel_auroc));
test('metrics_case: pixel F1-max', () => close('metrics_case.pixel_f1', mcResult.pixel_f1max, golden.metrics_case.musc.pixel_f1));
test('metrics_case: pixel AP', () => close('metrics_case.pixel_ap', mcResult.pixel_ap, golden.metrics_case.musc.pixel_ap));
test('metrics_case: MuSc PRO (cal_pro_score)', () => {
  close('metrics_case.pixel_aupro_musc', mcResult.pixel_pro, golden.metrics_case.musc.pixel_aupro);
  close('metrics_case.pixel_aupro_musc', proMusc(mcPixels), golden.metrics_case.musc.pixel_aupro);
  assert.equal(mcResult.counts.musc_pro_thresholds, golden.metrics_case.musc_pro_num_thresholds);
});
test('metrics_case: MVTec official AUPRO', () => {
  close('metrics_case.aupro_mvtec', mcResult.aupro, golden.metrics_case.aupro_mvtec_official_limit0p3);
  close('metrics_case.aupro_mvtec', aupro(mcPixels), golden.metrics_case.aupro_mvtec_official_limit0p3);
});
test('metrics_case: region counts and distinct scores', () => {
  assert.equal(labelImages(mcMasks, 6, 64, 64, 8).count, golden.metrics_case.num_regions_8conn);
  assert.equal(labelImages(mcMasks, 6, 64, 64, 4).count, golden.metrics_case.num_regions_4conn);
  assert.equal(mcResult.counts.regions, 9);
  assert.equal(mcResult.counts.distinct_pixel_scores, golden.metrics_case.num_unique_scores);
});
test('metrics_case: MuSc PRO curve equals the arrays given to auc', () => {
  const c = proMuscCurve(mcPixels);
  assert.equal(c.fpr.length, golden.metrics_case.musc_pro_points_below_fpr_limit);
  closeArrays('metrics_case.musc_curve_fpr', c.fpr, mc.musc_pro_curve_fpr_normalized);
  closeArrays('metrics_case.musc_curve_pro', c.pro, mc.musc_pro_curve_pro);
});
test('metrics_case: MVTec PRO curve and thresholds', () => {
  const c = auproCurve(mcPixels);
  closeArrays('metrics_case.mvtec_thresholds', c.thresholds, mc.mvtec_thresholds);
  closeArrays('metrics_case.mvtec_curve_fpr', c.fpr, mc.mvtec_pro_curve_fpr);
  closeArrays('metrics_case.mvtec_curve_pro', c.pro, mc.mvtec_pro_curve_pro);
});

// ------------------------------------------------------------------ tiny backbones on bottle10

const bottle = load('bottle10.inputs.safetensors', ['labels']);
const bottleMasks = loadInt('bottle10.inputs.safetensors', 'masks_int');

for (const backbone of ['clip_tiny', 'dinov2_tiny'] as const) {
  const o = load(`${backbone}.outputs.safetensors`, [
    'anomaly_maps', 'rscin_k123', 'rscin_k189', 'image_scores', 'pro_curve_fpr_normalized', 'pro_curve_pro',
  ]);
  const g = golden[backbone];
  const px: PixelInput = { maps: o.anomaly_maps, masks: bottleMasks, n: 10, h: 84, w: 84 };
  const r = computeMetrics({
    imageScores: o.rscin_k123, imageLabels: bottle.labels, maps: o.anomaly_maps, masks: bottleMasks, height: 84, width: 84,
  });
  test(`${backbone}: image AUROC (RsCIN k=[1,2,3])`, () => close(`${backbone}.image_auroc`, r.image_auroc, g.metrics.image_auroc));
  test(`${backbone}: image F1-max (RsCIN k=[1,2,3])`, () => close(`${backbone}.image_f1`, r.image_f1max, g.metrics.image_f1));
  test(`${backbone}: image AP (RsCIN k=[1,2,3])`, () => close(`${backbone}.image_ap`, r.image_ap, g.metrics.image_ap));
  for (const [alt, scores] of [['rscin_k189', o.rscin_k189], ['no_rscin_max', o.image_scores]] as const) {
    test(`${backbone}: image metrics (${alt})`, () => {
      const m = binaryMetrics(scores, bottle.labels);
      const e = g.metrics_image_alt[alt];
      close(`${backbone}.${alt}.image_auroc`, m.auroc, e.image_auroc);
      close(`${backbone}.${alt}.image_f1`, m.f1max, e.image_f1);
      close(`${backbone}.${alt}.image_ap`, m.ap, e.image_ap);
    });
  }
  test(`${backbone}: pixel AUROC`, () => close(`${backbone}.pixel_auroc`, r.pixel_auroc, g.metrics.pixel_auroc));
  test(`${backbone}: pixel F1-max`, () => close(`${backbone}.pixel_f1`, r.pixel_f1max, g.metrics.pixel_f1));
  test(`${backbone}: pixel AP`, () => close(`${backbone}.pixel_ap`, r.pixel_ap, g.metrics.pixel_ap));
  test(`${backbone}: MuSc PRO and its curve`, () => {
    close(`${backbone}.pixel_aupro_musc`, r.pixel_pro, g.metrics.pixel_aupro);
    const c = proMuscCurve(px);
    assert.equal(c.numThresholds, g.pro_num_thresholds);
    assert.equal(c.fpr.length, g.pro_points_below_fpr_limit);
    closeArrays(`${backbone}.musc_curve_fpr`, c.fpr, o.pro_curve_fpr_normalized);
    closeArrays(`${backbone}.musc_curve_pro`, c.pro, o.pro_curve_pro);
  });
  test(`${backbone}: MVTec official AUPRO`, () =>
    close(`${backbone}.aupro_mvtec`, r.aupro, g.metrics.pixel_aupro_mvtec_official_limit0p3));
}

// ------------------------------------------------------------------ hand-checkable cases

test('perfect separation gives AUROC = AP = F1 = 1', () => {
  const m = binaryMetrics(new Float64Array([0.1, 0.2, 0.8, 0.9]), new Int32Array([0, 0, 1, 1]));
  assert.equal(m.auroc, 1);
  assert.equal(m.ap, 1);
  assert.equal(m.f1max, 1);
  assert.equal(m.f1Threshold, 0.8);
  assert.deepEqual(f1OptimalThreshold(new Float64Array([0.1, 0.2, 0.8, 0.9]), [0, 0, 1, 1]), { threshold: 0.8, f1: 1 });
});

test('reversed scores give AUROC 0; all-tied scores give AUROC 0.5', () => {
  assert.equal(rocAucScore(new Float64Array([0.9, 0.8, 0.2, 0.1]), [0, 0, 1, 1]), 0);
  const tied = binaryMetrics(new Float64Array([0.3, 0.3, 0.3, 0.3, 0.3]), [0, 1, 0, 1, 1]);
  assert.equal(tied.auroc, 0.5);
  assert.equal(tied.ap, 0.6); // one point: recall 1, precision 3/5
  assert.equal(tied.f1max, (2 * 0.6 * 1) / (0.6 + 1)); // 0.7499999999999999 in float64, as numpy
  assert.equal(tied.distinct, 1);
});

test('one class only: metrics are undefined (NaN / null)', () => {
  assert.ok(Number.isNaN(rocAucScore(new Float64Array([0.1, 0.2]), [1, 1])));
  const r = computeMetrics({
    imageScores: new Float64Array([0.1, 0.2]), imageLabels: [0, 0],
    maps: new Float32Array(8), masks: new Uint8Array(8), height: 2, width: 2,
  });
  assert.equal(r.image_auroc, null);
  assert.equal(r.pixel_auroc, null); // no defect pixel
  assert.equal(r.pixel_pro, null);
  assert.equal(r.aupro, null);
  assert.equal(r.counts.pixels, 8);
});

test('rocCurve matches sklearn 1.2.1 roc_curve (drop_intermediate, thresholds[0] = max+1)', () => {
  // sklearn: roc_curve([0,0,1,1], [0.1,0.4,0.35,0.8]) -> fpr [0,0,.5,.5,1], tpr [0,.5,.5,1,1]
  const c = rocCurve(new Float64Array([0.1, 0.4, 0.35, 0.8]), [0, 0, 1, 1]);
  assert.deepEqual([...c.fpr], [0, 0, 0.5, 0.5, 1]);
  assert.deepEqual([...c.tpr], [0, 0.5, 0.5, 1, 1]);
  assert.deepEqual([...c.thresholds], [1.8, 0.8, 0.4, 0.35, 0.1]);
  // collinear middle points are dropped
  const d = rocCurve(new Float64Array([4, 3, 2, 1]), [1, 1, 1, 0]);
  assert.deepEqual([...d.tpr], [0, 1 / 3, 1, 1]);
});

test('connected components: diagonal-touching pair is 1 region (8-conn), 2 (4-conn)', () => {
  const m = new Uint8Array([
    1, 0, 0,
    0, 1, 0,
    0, 0, 0,
  ]);
  assert.equal(labelRegions(m, 3, 3, 8).count, 1);
  assert.equal(labelRegions(m, 3, 3, 4).count, 2);
  const r = labelRegions(new Int32Array([0, 2, 0, 2, 0, 0, 0, 0, 1]), 3, 3);
  assert.deepEqual([...r.labels], [0, 1, 0, 1, 0, 0, 0, 0, 2]); // raster order numbering
  assert.deepEqual([...r.areas], [0, 2, 1]);
  // regions never cross image borders
  assert.equal(labelImages(new Uint8Array([0, 1, 1, 0]), 2, 1, 2).count, 2);
});

test('numpyArange reproduces numpy float arange (length ceil, fill start + i*(x1-x0))', () => {
  const a = numpyArange(0, 1, 0.1);
  assert.equal(a.length, 10);
  assert.equal(a[3], 0 + 3 * 0.1);
  // numpy: len(np.arange(1, 1.3, 0.1)) == 4 (0.30000000000000004/0.1 > 3), len(np.arange(0, 0.3, 0.1)) == 3
  assert.equal(numpyArange(1, 1.3, 0.1).length, 4);
  assert.equal(numpyArange(0, 0.3, 0.1).length, 3);
});

test('argsortAscending orders float64 exactly (shared upper halves, negatives, ties)', () => {
  const rnd = rng(7);
  const base = [1, 1 + 2 ** -40, 1 + 2 ** -45, -1, -1 - 2 ** -40, 0, -0, 0.5, 0.5, -3e-300, 3e-300];
  const x = new Float64Array(5000);
  for (let i = 0; i < x.length; i++) x[i] = i < base.length ? base[i] : base[Math.floor(rnd() * base.length)] + (rnd() < 0.5 ? 0 : (rnd() - 0.5) * 2 ** -30);
  const o = argsortAscending(x);
  for (let i = 1; i < x.length; i++) assert.ok(x[o[i - 1]] <= x[o[i]], `order broken at ${i}`);
  assert.deepEqual([...o].sort((a, b) => a - b), Array.from({ length: x.length }, (_, i) => i));
  const f = new Float32Array([3, -1, 2, -0, 0, -5.5, 2]);
  assert.deepEqual([...argsortAscending(f)].map((i) => f[i]), [-5.5, -1, -0, 0, 2, 2, 3]);
});

// ------------------------------------------------------------------ brute force cross-check

const rng = mulberry32;

/** union-find labelling, independent of regions.ts */
function bruteRegions(masks: ArrayLike<number>, n: number, h: number, w: number, conn: 4 | 8): Int32Array {
  const parent = Int32Array.from({ length: masks.length }, (_, i) => i);
  const find = (i: number): number => {
    if (parent[i] !== i) parent[i] = find(parent[i]);
    return parent[i];
  };
  for (let im = 0; im < n; im++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const p = im * h * w + y * w + x;
    if (masks[p] === 0) continue;
    const nb = conn === 8 ? [[0, 1], [1, -1], [1, 0], [1, 1]] : [[0, 1], [1, 0]];
    for (const [dy, dx] of nb) {
      const yy = y + dy, xx = x + dx;
      if (yy >= h || xx < 0 || xx >= w) continue;
      const q = im * h * w + yy * w + xx;
      if (masks[q] !== 0) parent[find(p)] = find(q);
    }
  }
  const ids = new Map<number, number>();
  const out = new Int32Array(masks.length);
  for (let p = 0; p < masks.length; p++) {
    if (masks[p] === 0) continue;
    const root = find(p);
    if (!ids.has(root)) ids.set(root, ids.size + 1);
    out[p] = ids.get(root)!;
  }
  return out;
}

/** O(T*P) reference of every metric, written straight from the definitions */
function bruteForce(scores: Float64Array, masks: Uint8Array, n: number, h: number, w: number) {
  const P = masks.reduce((a, m) => a + (m ? 1 : 0), 0);
  const F = masks.length - P;
  // AUROC = Mann-Whitney U / (P*F)
  let u = 0;
  for (let i = 0; i < scores.length; i++) if (masks[i]) for (let j = 0; j < scores.length; j++) if (!masks[j]) {
    u += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
  }
  const distinct = [...new Set(scores)].sort((a, b) => b - a);
  const regions = bruteRegions(masks, n, h, w, 8);
  const R = Math.max(...regions);
  const area = new Array<number>(R + 1).fill(0);
  for (const r of regions) if (r) area[r]++;
  let ap = 0, rPrev = 0, f1 = 0;
  const fx = [0], fy = [0];
  for (const t of distinct) {
    let tp = 0, fp = 0;
    const tpR = new Array<number>(R + 1).fill(0);
    for (let i = 0; i < scores.length; i++) if (scores[i] >= t) { if (masks[i]) { tp++; tpR[regions[i]]++; } else fp++; }
    const prec = tp / (tp + fp), rec = tp / P;
    ap += (rec - rPrev) * prec;
    rPrev = rec;
    if (tp > 0) f1 = Math.max(f1, (2 * prec * rec) / (prec + rec));
    fx.push(fp / F);
    let s = 0;
    for (let r = 1; r <= R; r++) s += tpR[r] / area[r];
    fy.push(s / R);
  }
  fx.push(1); fy.push(1);
  // official AUPRO: trapezoid up to 0.3 with interpolation, / 0.3
  let auproArea = 0;
  for (let k = 1; k < fx.length; k++) {
    if (fx[k] <= 0.3) auproArea += ((fx[k] - fx[k - 1]) * (fy[k] + fy[k - 1])) / 2;
    else {
      if (fx[k - 1] < 0.3) {
        const yi = fy[k - 1] + ((fy[k] - fy[k - 1]) * (0.3 - fx[k - 1])) / (fx[k] - fx[k - 1]);
        auproArea += ((0.3 - fx[k - 1]) * (yi + fy[k - 1])) / 2;
      }
      break;
    }
  }
  // MuSc cal_pro_score, literally
  let mn = Infinity, mx = -Infinity;
  for (const v of scores) { mn = Math.min(mn, v); mx = Math.max(mx, v); }
  const step = (mx - mn) / 200;
  const len = Math.ceil((mx - mn) / step);
  const d = mn + step - mn;
  const mx_: number[] = [], my_: number[] = [];
  for (let i = 0; i < len; i++) {
    const th = i === 0 ? mn : i === 1 ? mn + step : mn + i * d;
    let fp = 0;
    const tpR = new Array<number>(R + 1).fill(0);
    for (let p = 0; p < scores.length; p++) if (scores[p] > th) { if (masks[p]) tpR[regions[p]]++; else fp++; }
    let s = 0;
    for (let r = 1; r <= R; r++) s += tpR[r] / area[r];
    if (fp / F < 0.3) { mx_.push(fp / F); my_.push(s / R); }
  }
  const lo = Math.min(...mx_), hi = Math.max(...mx_);
  const xs = mx_.map((v) => (v - lo) / (hi - lo));
  let musc = 0;
  for (let k = 1; k < xs.length; k++) musc += ((xs[k] - xs[k - 1]) * (my_[k] + my_[k - 1])) / 2;
  return { auroc: u / (P * F), ap, f1, aupro: auproArea / 0.3, musc: -musc, regions: R, distinct: distinct.length };
}

test('random small stacks agree with an O(T*P) brute force (ties, 8-conn regions)', () => {
  const rnd = rng(12345);
  for (let trial = 0; trial < 4; trial++) {
    const n = 3, h = 13, w = 11;
    const size = n * h * w;
    const masks = new Uint8Array(size);
    for (let k = 0; k < 5; k++) { // random rectangles, some touching diagonally
      const im = Math.floor(rnd() * n), y0 = Math.floor(rnd() * h), x0 = Math.floor(rnd() * w);
      const hh = 1 + Math.floor(rnd() * 4), ww = 1 + Math.floor(rnd() * 4);
      for (let y = y0; y < Math.min(h, y0 + hh); y++) for (let x = x0; x < Math.min(w, x0 + ww); x++) masks[im * h * w + y * w + x] = 1;
    }
    masks[h * w + 2 * w + 2] = 1; masks[h * w + 3 * w + 3] = 1; // a diagonal pair
    const maps = new Float64Array(size);
    const quant = trial % 2 === 0 ? 40 : 0; // quantised scores -> many ties
    for (let i = 0; i < size; i++) {
      const v = rnd() + (masks[i] ? 0.4 * rnd() : 0);
      maps[i] = quant ? Math.round(v * quant) / quant : v;
    }
    const b = bruteForce(maps, masks, n, h, w);
    const r = computeMetrics({ imageScores: new Float64Array([1, 0, 0]), imageLabels: [1, 0, 1], maps, masks, height: h, width: w });
    assert.equal(r.counts.regions, b.regions);
    assert.equal(r.counts.distinct_pixel_scores, b.distinct);
    close('brute.pixel_auroc', r.pixel_auroc, b.auroc, 1e-12);
    close('brute.pixel_ap', r.pixel_ap, b.ap, 1e-12);
    close('brute.pixel_f1', r.pixel_f1max, b.f1, 1e-12);
    close('brute.aupro', r.aupro, b.aupro, 1e-12);
    close('brute.pixel_pro_musc', r.pixel_pro, b.musc, 1e-12);
    // the same masks with Float32 maps give the same answers as the float64 copy of them
    const m32 = Float32Array.from(maps);
    const r32 = computeMetrics({ imageScores: [1, 0, 0], imageLabels: [1, 0, 1], maps: m32, masks, height: h, width: w });
    const r64 = computeMetrics({ imageScores: [1, 0, 0], imageLabels: [1, 0, 1], maps: Float64Array.from(m32), masks, height: h, width: w });
    assert.deepEqual(r32, r64);
  }
});

// ------------------------------------------------------------------ scaling

test('scaling: ~20M pixels (75 maps of 516x516), Float32 maps, one sort', () => {
  const n = 75, h = 516, w = 516, hw = h * w;
  const rnd = rng(99);
  const maps = new Float32Array(n * hw);
  const masks = new Uint8Array(n * hw);
  const labels = new Int32Array(n);
  const scores = new Float64Array(n);
  for (let im = 0; im < n; im++) {
    if (im % 3 === 0) {
      labels[im] = 1;
      for (let k = 0; k < 3; k++) {
        const y0 = Math.floor(rnd() * (h - 60)), x0 = Math.floor(rnd() * (w - 60));
        for (let y = y0; y < y0 + 10 + k * 15; y++) for (let x = x0; x < x0 + 40; x++) masks[im * hw + y * w + x] = 1;
      }
    }
    for (let p = 0; p < hw; p++) {
      const i = im * hw + p;
      maps[i] = Math.round((rnd() + (masks[i] ? 0.5 * rnd() : 0)) * 4096) / 4096; // ties, like quantised maps
    }
    scores[im] = labels[im] + rnd();
  }
  const r = computeMetrics({ imageScores: scores, imageLabels: labels, maps, masks, height: h, width: w });
  assert.equal(r.counts.pixels, n * hw);
  assert.ok(r.counts.pixels > 19_900_000);
  assert.equal(r.image_auroc, 1);
  for (const k of ['pixel_auroc', 'pixel_f1max', 'pixel_ap', 'pixel_pro', 'aupro'] as const) {
    const v = r[k];
    assert.ok(v !== null && v > 0 && v < 1, `${k} = ${v}`);
  }
  assert.ok(r.pixel_auroc! > 0.6);
});

test('report max abs errors', () => {
  const rows = [...maxErr.entries()].map(([k, v]) => `${k}: ${v.toExponential(2)}`);
  console.log(`max |diff| per metric:\n  ${rows.join('\n  ')}`);
});
