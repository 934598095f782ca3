/**
 * A `musc predict` output folder for the report tests: the synthetic generator's images
 * (src/demo/synthetic.ts), a bank of its first good images built on the fake backbone
 * (test/helpers/cli-fakes.ts, unit image tokens as the real backbones give), the rest predicted
 * and written with the library calls `musc predict` makes (src/bank/outputs.ts): predictions.csv
 * and .json, regions.csv, threshold.json, masks/, composites/. Callers stop the compute worker
 * (src/compute/worker.ts shutdownCompute) when done.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildBank, closeBank, openBank, predict, thresholdsOf } from '../../src/bank/index.js';
import { type WrittenPrediction, writePictures, writePredictTables } from '../../src/bank/outputs.js';
import { calibrationFor } from '../../src/bank/predict.js';
import type { ImageInput } from '../../src/bank/types.js';
import { generateSynthetic } from '../../src/demo/synthetic.js';
import { unitTokenBackbone } from './cli-fakes.js';

export interface PredictFixture {
  /** the predict output folder */
  out: string;
  bank: string;
  predictions: WrittenPrediction[];
  thresholds: { image: number; pixel: number };
}

async function imagesUnder(root: string, folder: string): Promise<ImageInput[]> {
  const files = (await readdir(join(root, folder))).filter((f) => f.endsWith('.png')).sort();
  return Promise.all(files.map(async (f) => ({ name: `${folder}/${f}`, bytes: await readFile(join(root, folder, f)) })));
}

/** Generates the images, builds the bank (`bankGood` good images) and predicts the others into <dir>/predict. */
export async function makePredictFixture(
  dir: string,
  o: { good?: number; defective?: number; bankGood?: number; seed?: number } = {},
): Promise<PredictFixture> {
  const set = await generateSynthetic(join(dir, 'data'), { good: o.good ?? 14, defective: o.defective ?? 6, size: 64, seed: o.seed ?? 31 });
  const test = join(set.root, set.category, 'test');
  const good = await imagesUnder(test, 'good');
  const nBank = o.bankGood ?? 9;
  const defective = (await readdir(test)).filter((d) => d !== 'good').sort();
  const inputs = [...good.slice(nBank), ...(await Promise.all(defective.map((d) => imagesUnder(test, d)))).flat()];
  const bb = unitTokenBackbone();
  const built = await buildBank(good.slice(0, nBank), { out: join(dir, 'surface.bank'), backbone: bb });
  const bank = await openBank(built.path);
  const out = join(dir, 'predict');
  try {
    const res = await predict(bank, inputs, { loadBackbone: async () => bb, maps: true });
    const predictions: WrittenPrediction[] = [];
    for (const p of res.predictions) predictions.push(await writePictures(out, inputs.find((i) => i.name === p.name)!, p, true));
    const th = thresholdsOf(calibrationFor(bank), undefined, {});
    const source = `bank ${bank.path} calibration, false-alarm ${th.falseAlarm}`;
    await writePredictTables(out, {
      bank,
      thresholds: { image: th.image, pixel: th.pixel, falseAlarm: th.falseAlarm, source },
      predictions,
      skipped: res.skipped,
    });
    return { out, bank: bank.path, predictions, thresholds: { image: th.image, pixel: th.pixel } };
  } finally {
    await closeBank(bank);
  }
}
