/**
 * The public library API as the README shows it: load the offline backbone, decode and
 * preprocess images, extract features, run MuSc, compute metrics.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as api from '../src/index.js';
import { generateSynthetic } from '../src/demo/synthetic.js';

after(api.shutdownCompute);

test('README flow: resnet50 + musc separates injected defects from good surfaces', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'musc-api-'));
  try {
    const set = await generateSynthetic(dir, { good: 7, defective: 3, seed: 5 });
    const files: string[] = [];
    const labels: number[] = [];
    const testDir = join(set.root, set.category, 'test');
    for (const type of (await readdir(testDir)).sort()) {
      for (const f of (await readdir(join(testDir, type))).sort()) {
        files.push(join(testDir, type, f));
        labels.push(type === 'good' ? 0 : 1);
      }
    }
    const backbone = await api.loadBackbone('resnet50');
    const S = backbone.imageSize;
    assert.equal(S, 224);
    assert.equal(api.inputLength(backbone), 3 * S * S); // the library fuses no sizes unless asked (fuseSizes)
    const images = await Promise.all(files.map((f) => api.decodeRgb(f)));
    const batch = new Float32Array(images.length * 3 * S * S);
    for (const [i, img] of images.entries()) batch.set(await backbone.preprocess(img), i * 3 * S * S);
    const features = await backbone.extract(batch, images.length);
    assert.deepEqual(
      features.stages.map((s) => [s.n, s.h, s.w, s.c]),
      [
        [10, 28, 28, 512],
        [10, 14, 14, 1024],
      ],
    );
    assert.deepEqual([features.imageTokens.n, features.imageTokens.d], [10, 2048]);

    const res = await api.musc(features, { imageSize: S });
    assert.equal(res.maps.length, 10 * S * S);
    assert.deepEqual(Array.from(res.imageScores), Array.from(api.imageScoresFromMaps(res.maps, 10)));
    const m = api.computeMetrics({ imageScores: res.imageScores, imageLabels: labels });
    assert.ok(m.image_auroc !== null && m.image_auroc > 0.9, `image AUROC ${m.image_auroc}`);

    // the same features stored as float16 (half the memory): image scores within half precision
    const half = await api.musc(
      { stages: features.stages.map((s) => ({ ...s, data: api.toFloat16(s.data) })), imageTokens: features.imageTokens },
      { imageSize: S },
    );
    for (let i = 0; i < 10; i++)
      assert.ok(
        Math.abs(half.imageScores[i]! - res.imageScores[i]!) <= 2e-3 * res.imageScores[i]!,
        `image ${i}: ${half.imageScores[i]} vs ${res.imageScores[i]}`,
      );
    await backbone.dispose();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
