/**
 * Few-shot semantics (paper appendix A.6): reference images join the scoring pool (MuSc with
 * references) or score alone (MuSc+). Checked against brute force on small random features.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { scoreStages } from '../src/scoring/tasks.js';
import { musc } from '../src/scoring/musc.js';
import { msmScores } from './helpers/msm.js';
import { OnnxPairKernel as PairKernel } from '../src/compute/msm-kernel.js';
import { shutdownCompute } from '../src/compute/worker.js';
import type { StageFeatures } from '../src/core/types.js';
import { lcgSigned } from './helpers/lcg.js';

after(shutdownCompute);

const rng = lcgSigned;

/** One stage of n images on a 2x2 grid with c channels. */
function stage(n: number, c: number, seed: number): StageFeatures<Float32Array> {
  const r = rng(seed);
  return { n, h: 2, w: 2, c, data: new Float32Array(n * 4 * c).map(r) };
}

/** Z as LNAMD r=1 makes it (layer norm per image, then L2 per patch), computed naively. */
function zOf(s: StageFeatures<Float32Array>): Float64Array[][] {
  const out: Float64Array[][] = [];
  const per = s.h * s.w * s.c;
  for (let i = 0; i < s.n; i++) {
    const x = s.data.subarray(i * per, (i + 1) * per);
    const mean = x.reduce((a, b) => a + b, 0) / per;
    const v = x.reduce((a, b) => a + (b - mean) ** 2, 0) / per;
    const img: Float64Array[] = [];
    for (let p = 0; p < s.h * s.w; p++) {
      const f = Float64Array.from(x.subarray(p * s.c, (p + 1) * s.c), (t) => (t - mean) / Math.sqrt(v + 1e-5));
      const nrm = Math.hypot(...f);
      img.push(f.map((t) => t / nrm));
    }
    out.push(img);
  }
  return out;
}

function nn(z: Float64Array[][], i: number, p: number, j: number): number {
  return Math.min(...z[j].map((q) => Math.hypot(...z[i][p].map((t, k) => t - q[k]))));
}

test('few-shot MuSc: references join the pool, are not scored, and the interval uses N_test - 1 + N_ref values', async () => {
  const nTest = 5, nRef = 3, c = 6;
  const s = stage(nTest + nRef, c, 11);
  const res = await scoreStages([s], { rList: [1], references: nRef, interval: [0, 0.3], precision: 'exact' });
  assert.equal(res.n, nTest);
  assert.equal(res.patch.length, nTest * 4);
  const z = zOf(s);
  const m = nTest - 1 + nRef; // 7 values; int(7 * 0.3) = 2
  for (let i = 0; i < nTest; i++) for (let p = 0; p < 4; p++) {
    const d: number[] = [];
    for (let j = 0; j < nTest + nRef; j++) if (j !== i) d.push(nn(z, i, p, j));
    assert.equal(d.length, m);
    d.sort((a, b) => a - b);
    const expect = (d[0] + d[1]) / 2;
    assert.ok(Math.abs(res.patch[i * 4 + p] - expect) < 1e-5, `image ${i} patch ${p}: ${res.patch[i * 4 + p]} vs ${expect}`);
  }
});

test('MuSc+: each test patch is scored by its minimum distance over the references alone', async () => {
  const nTest = 4, nRef = 2, c = 6;
  const s = stage(nTest + nRef, c, 5);
  const res = await scoreStages([s], { rList: [1], references: nRef, mode: 'musc-plus', precision: 'exact' });
  const z = zOf(s);
  for (let i = 0; i < nTest; i++) for (let p = 0; p < 4; p++) {
    const expect = Math.min(nn(z, i, p, 4), nn(z, i, p, 5));
    assert.ok(Math.abs(res.patch[i * 4 + p] - expect) < 1e-5);
  }
});

test('few-shot and MuSc+ tables are the same under every tiling (row blocks straddling the references)', async () => {
  const n = 8, scored = 5, c = 6;
  const z = zOf(stage(n, c, 21));
  const flat = new Float32Array(n * 4 * c);
  z.forEach((img, i) => img.forEach((f, p) => flat.set(f, (i * 4 + p) * c)));
  const kernel = await PairKernel.create(true, 'cpu', undefined, 'exact');
  for (const referencesOnly of [false, true]) {
    const base = await msmScores(flat, n, 4, c, [0, 0.3], kernel, { scored, referencesOnly, blockImages: n });
    for (const [blockImages, colImages] of [[1, 1], [2, 3], [3, 2], [4, 1]]) {
      const s = await msmScores(flat, n, 4, c, [0, 0.3], kernel, { scored, referencesOnly, blockImages, colImages });
      for (let k = 0; k < base.length; k++) assert.ok(Math.abs(s[k] - base[k]) < 1e-6, `referencesOnly ${referencesOnly}, tiling ${blockImages}x${colImages}, value ${k}`);
    }
    // and the one-block table against brute force
    for (let i = 0; i < scored; i++) for (let p = 0; p < 4; p++) {
      const d: number[] = [];
      for (let j = referencesOnly ? scored : 0; j < n; j++) if (j !== i) d.push(nn(z, i, p, j));
      d.sort((a, b) => a - b);
      const expect = referencesOnly ? d[0] : (d[0] + d[1]) / 2; // 7 values: int(7 * 0.3) = 2
      assert.ok(Math.abs(base[i * 4 + p] - expect) < 1e-5);
    }
  }
  await kernel.release();
});

test('MuSc+: a reference identical to a test image drives that image\'s patch scores to zero', async () => {
  const nTest = 4, c = 8;
  const s = stage(nTest + 1, c, 3);
  const per = 4 * c;
  s.data.copyWithin(nTest * per, 2 * per, 3 * per); // reference := test image 2
  const res = await scoreStages([s], { rList: [1, 3], references: 1, mode: 'musc-plus' });
  for (let p = 0; p < 4; p++) assert.ok(res.patch[2 * 4 + p] < 1e-3, `patch ${p}: ${res.patch[2 * 4 + p]}`);
  for (const i of [0, 1, 3]) assert.ok(Math.max(...res.patch.subarray(i * 4, i * 4 + 4)) > 0.1);
});

test('few-shot through the public API: results and RsCIN cover only the test images', async () => {
  const s = stage(7, 6, 9);
  const tokens = { n: 7, d: 3, data: new Float32Array(21).map(rng(2)) };
  const res = await musc({ stages: [s], imageTokens: tokens }, { imageSize: 8, references: 2, kList: [1, 2] });
  assert.equal(res.imageScores.length, 5);
  assert.equal(res.rscinScores.length, 5);
  assert.equal(res.maps.length, 5 * 64);
  await assert.rejects(musc({ stages: [s], imageTokens: tokens }, { imageSize: 8, mode: 'musc-plus' }), /needs reference/);
});
