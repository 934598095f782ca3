import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { decodeRgb } from '../src/image/decode.js';
import { preprocessFor } from '../src/backbones/preprocess.js';
import { resizePil, pilCoefficients } from '../src/image/resample.js';
import { GOLDEN, DATA } from './helpers/paths.js';

test('PIL coefficients sum to 1 in fixed point (within rounding) and cover the support', () => {
  for (const [a, b] of [
    [900, 84],
    [84, 900],
    [10, 7],
    [7, 10],
  ] as const) {
    for (const f of ['bilinear', 'bicubic'] as const) {
      const c = pilCoefficients(a, b, f);
      for (let o = 0; o < b; o++) {
        let s = 0;
        for (let i = 0; i < c.count[o]; i++) s += c.k[o * c.ksize + i];
        assert.ok(Math.abs(s - (1 << 22)) <= c.count[o], `${f} ${a}->${b} out ${o}: sum ${s}`);
        assert.ok(c.start[o] >= 0 && c.start[o] + c.count[o] <= a);
      }
    }
  }
});

test('resizePil: constant image stays constant; identity size is a copy', () => {
  const data = new Uint8Array(13 * 9 * 3).fill(77);
  const img = { width: 13, height: 9, data };
  for (const f of ['bilinear', 'bicubic'] as const) {
    const r = resizePil(img, 5, 20, f);
    assert.equal(r.data.length, 5 * 20 * 3);
    assert.ok(r.data.every((v) => v === 77));
  }
  const same = resizePil(img, 13, 9, 'bicubic');
  assert.deepEqual(same.data, data);
});

test('preprocessing of the 10 bottle images matches golden clip_input / dino_input', async () => {
  const f = SafetensorsFile.open(resolve(GOLDEN, 'bottle10.inputs.safetensors'));
  const images = JSON.parse(f.metadata.images) as string[];
  assert.equal(images.length, 10);
  const clip = f.float32('clip_input');
  const dino = f.float32('dino_input');
  f.close();
  const S = 84;
  const per = 3 * S * S;
  const stats = { clip: { max: 0, sum: 0, bad: 0 }, dino: { max: 0, sum: 0, bad: 0 } };
  for (let i = 0; i < images.length; i++) {
    const img = await decodeRgb(resolve(DATA, images[i]));
    for (const [fam, ref] of [
      ['clip', clip.data],
      ['dino', dino.data],
    ] as const) {
      const x = preprocessFor(fam === 'clip' ? 'clip' : 'dinov2', img, S);
      assert.equal(x.length, per);
      const st = stats[fam];
      for (let j = 0; j < per; j++) {
        const d = Math.abs(x[j] - ref[i * per + j]);
        if (d > st.max) st.max = d;
        if (d > 0) st.bad++;
        st.sum += d;
      }
    }
  }
  const n = 10 * per;
  // measured: bit-exact (max abs err 0) for both; PIL's fixed-point resize and torchvision's
  // float32 normalisation are reproduced exactly, so any difference is a regression
  for (const fam of ['clip', 'dino'] as const) {
    const st = stats[fam];
    console.log(`${fam}: max abs err ${st.max.toExponential(3)}, mean ${(st.sum / n).toExponential(3)}, differing values ${st.bad}/${n}`);
    assert.equal(st.max, 0, `${fam} max abs err ${st.max}`);
  }
});
