/**
 * The evaluator of `musc predict` outputs against the truth (used by bank-study.ts and
 * bank-latency.ts; the metric functions are src/metrics/'s):
 *
 *   image: recall of defective images and false-alarm rate of good ones at the predict threshold
 *          (the verdicts: confusionAt with the one NG rule), image AUROC of `score` (and of
 *          `image_score`, the map maximum before RsCIN)
 *   pixel: with maps/ (`musc predict --save-maps`): pixel AUROC and AP of the maps at the original
 *          size against the ground-truth masks (any non-zero mask pixel = defect; good images all
 *          zero), all pixels of all images pooled; mask precision, recall and IoU at the pixel
 *          threshold (the masks predict writes: map >= pixel threshold)
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readMapFile } from '../src/bank/outputs.js';
import { decodeMask } from '../src/image/decode.js';
import { confusionAt } from '../src/metrics/confusion.js';
import { binaryMetrics } from '../src/metrics/roc.js';
import { madStatistics, median } from '../src/threshold.js';

/** The truth of one predicted image: 0 good / 1 defective, and its mask files (null: all zero). */
export interface Truth {
  label: 0 | 1;
  masks: string[] | null;
}

/** One row of predictions.json (the fields used here). */
interface PredictionRow {
  name: string;
  score: number;
  imageScore: number;
  threshold: number;
  pixelThreshold: number;
  width: number;
  height: number;
  map_file?: string;
}

export interface PixelEvaluation {
  pixels: number;
  defect_pixels: number;
  pixel_auroc: number;
  pixel_ap: number;
  mask_precision: number | null;
  mask_recall: number | null;
  mask_iou: number;
}

export interface PredictEvaluation {
  images: number;
  defective: number;
  good: number;
  /** defective images judged NG / defective images */
  recall: number;
  /** good images judged NG / good images */
  false_alarm: number;
  found: number;
  flagged: number;
  image_auroc: number;
  image_auroc_image_score: number;
  image_threshold: number;
  pixel_threshold: number;
  /** null without maps/ */
  pixel: PixelEvaluation | null;
}

async function readPredictions(dir: string): Promise<PredictionRow[]> {
  const json = JSON.parse(await readFile(join(dir, 'predictions.json'), 'utf8')) as { predictions: PredictionRow[] };
  if (!json.predictions?.length) throw new Error(`${dir}/predictions.json: no predictions`);
  return json.predictions;
}

/** The truth mask of an image as 0/1 [height * width] (union of its mask files; any non-zero pixel is a defect). */
async function truthMask(t: Truth, p: PredictionRow): Promise<Uint8Array> {
  const out = new Uint8Array(p.width * p.height);
  for (const f of t.masks ?? []) {
    const m = await decodeMask(f);
    if (m.width !== p.width || m.height !== p.height)
      throw new Error(`${f}: mask is ${m.width}x${m.height}, image ${p.name} is ${p.width}x${p.height}`);
    for (let k = 0; k < out.length; k++) if (m.data[k] !== 0) out[k] = 1;
  }
  return out;
}

async function evaluatePixels(dir: string, rows: PredictionRow[], truths: Truth[]): Promise<PixelEvaluation> {
  const total = rows.reduce((a, p) => a + p.width * p.height, 0);
  const maps = new Float32Array(total); // all pixels of all images, image after image
  const masks = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < rows.length; i++) {
    const p = rows[i]!;
    const map = await readMapFile(join(dir, p.map_file!));
    if (map.width !== p.width || map.height !== p.height)
      throw new Error(`${p.map_file}: map is ${map.width}x${map.height}, the image ${p.width}x${p.height}`);
    maps.set(map.data, at);
    masks.set(await truthMask(truths[i]!, p), at);
    at += map.data.length;
  }
  const m = binaryMetrics(maps, masks);
  const c = confusionAt(maps, masks, rows[0]!.pixelThreshold);
  return {
    pixels: total,
    defect_pixels: m.positives,
    pixel_auroc: m.auroc,
    pixel_ap: m.ap,
    mask_precision: c.precision,
    mask_recall: c.recall,
    mask_iou: c.tp / (c.tp + c.fp + c.fn),
  };
}

/**
 * Where predicted images fall against the bank's calibration: robust z-scores (score - median) /
 * (1.4826 MAD) of their `score` against the bank's leave-one-out `scores` (calibration.json), the
 * median over the good and over the defective images. The threshold is median + z(1 - a) sigma, so
 * a calibration made in the predict condition puts good images near 0.
 */
export async function calibrationZ(
  dir: string,
  bank: string,
  truthOf: (name: string) => Truth | undefined,
): Promise<{ z_good_median: number; z_defective_median: number }> {
  const cal = JSON.parse(await readFile(join(bank, 'calibration.json'), 'utf8')) as { scores: number[] };
  const { median: med, sigma } = madStatistics(cal.scores);
  const rows = await readPredictions(dir);
  const zOf = (label: 0 | 1) => median(rows.filter((p) => truthOf(p.name)?.label === label).map((p) => (p.score - med) / sigma));
  return { z_good_median: zOf(0), z_defective_median: zOf(1) };
}

/** Evaluates the predict output folder `dir`; `truthOf(name)` gives each predicted image's truth. */
export async function evaluatePredictions(dir: string, truthOf: (name: string) => Truth | undefined): Promise<PredictEvaluation> {
  const rows = await readPredictions(dir);
  const truths = rows.map((p) => {
    const t = truthOf(p.name);
    if (!t) throw new Error(`${dir}/predictions.json: no truth for '${p.name}'`);
    return t;
  });
  for (const p of rows)
    if (p.threshold !== rows[0]!.threshold || p.pixelThreshold !== rows[0]!.pixelThreshold)
      throw new Error(`${dir}: thresholds differ between images (${p.name})`);
  const labels = Uint8Array.from(truths, (t) => t.label);
  const scores = Float64Array.from(rows, (p) => p.score);
  const c = confusionAt(scores, labels, rows[0]!.threshold);
  const withMaps = rows.every((p) => p.map_file);
  return {
    images: rows.length,
    defective: c.tp + c.fn,
    good: c.fp + c.tn,
    recall: c.tp / (c.tp + c.fn),
    false_alarm: c.fp / (c.fp + c.tn),
    found: c.tp,
    flagged: c.fp,
    image_auroc: binaryMetrics(scores, labels).auroc,
    image_auroc_image_score: binaryMetrics(
      Float64Array.from(rows, (p) => p.imageScore),
      labels,
    ).auroc,
    image_threshold: rows[0]!.threshold,
    pixel_threshold: rows[0]!.pixelThreshold,
    pixel: withMaps ? await evaluatePixels(dir, rows, truths) : null,
  };
}
