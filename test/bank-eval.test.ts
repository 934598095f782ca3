/**
 * The bank studies' evaluator (bench/bank-eval.ts) on a hand-made predict output: verdict counts,
 * image AUROC, pixel AUROC of saved maps against masks where any non-zero pixel is a defect, and
 * mask precision / recall / IoU at the pixel threshold.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { evaluatePredictions, type Truth } from '../bench/bank-eval.js';
import { writeMapFile } from '../src/bank/outputs.js';
import type { ImagePrediction } from '../src/bank/types.js';
import { tempDir } from './helpers/cli-env.js';

/** A prediction of a 3 x 2 image with map `data` (the fields the evaluator and writeMapFile use). */
function prediction(name: string, score: number, data: number[]): ImagePrediction {
  return {
    name,
    score,
    imageScore: Math.max(...data),
    threshold: 0.5,
    pixelThreshold: 0.6,
    width: 3,
    height: 2,
    verdict: score >= 0.5 ? 'NG' : 'OK',
    map: { width: 3, height: 2, data: Float32Array.from(data) },
  } as ImagePrediction;
}

test('bank-eval: verdicts, image AUROC, pixel AUROC (non-zero mask pixels are defects), mask IoU', async () => {
  const { dir, cleanup } = await tempDir('bank-eval');
  try {
    const ps = [
      prediction('good/a.png', 0.2, [0.1, 0.1, 0.2, 0.1, 0.1, 0.1]),
      prediction('good/b.png', 0.55, [0.1, 0.1, 0.7, 0.1, 0.1, 0.1]), // a false alarm with one masked pixel
      prediction('crack/c.png', 0.9, [0.1, 0.8, 0.9, 0.1, 0.65, 0.3]),
    ];
    const rows = [];
    for (const p of ps) rows.push({ ...p, map: undefined, map_file: await writeMapFile(dir, p) });
    await writeFile(join(dir, 'predictions.json'), JSON.stringify({ predictions: rows }));
    // crack mask: values 1 (non-zero but dark) and 255; pixel 2 (score 0.9) is a defect, so is pixel 5 (0.3)
    const mask = join(dir, 'c_mask.png');
    await sharp(Buffer.from([0, 255, 1, 0, 0, 9]), { raw: { width: 3, height: 2, channels: 1 } })
      .png()
      .toFile(mask);
    const truth: Record<string, Truth> = {
      'good/a.png': { label: 0, masks: null },
      'good/b.png': { label: 0, masks: null },
      'crack/c.png': { label: 1, masks: [mask] },
    };
    const e = await evaluatePredictions(dir, (n) => truth[n]);
    assert.deepEqual([e.found, e.defective, e.flagged, e.good], [1, 1, 1, 2]);
    assert.equal(e.image_auroc, 1);
    // 18 pixels: defects 0.8, 0.9, 0.3; AUROC = (pairs defect > normal + ties / 2) / (3 x 15)
    const defects = [0.8, 0.9, 0.3],
      normal = [0.1, 0.1, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.65];
    let wins = 0;
    for (const d of defects) for (const n of normal) wins += d > n ? 1 : d === n ? 0.5 : 0;
    assert.ok(Math.abs(e.pixel!.pixel_auroc - wins / 45) < 1e-12, `pixel AUROC ${e.pixel!.pixel_auroc} vs ${wins / 45}`);
    assert.equal(e.pixel!.defect_pixels, 3);
    // mask = map >= 0.6: b's 0.7 (fp), c's 0.8 and 0.9 (tp), c's 0.65 (fp); c's 0.3 is missed (fn)
    assert.equal(e.pixel!.mask_precision, 2 / 4);
    assert.equal(e.pixel!.mask_recall, 2 / 3);
    assert.equal(e.pixel!.mask_iou, 2 / 5);
  } finally {
    await cleanup();
  }
});
