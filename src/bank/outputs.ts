/**
 * The files `musc predict` writes (every one atomically: temporary name, then rename):
 *
 *   predictions.csv   name,verdict,score,normalized,image_score,threshold,regions,width,height,mask,composite
 *   predictions.json  the same per image with its regions, the bank, the thresholds, skipped inputs
 *   regions.csv       name,region,x,y,width,height,area,peak,mean   (bounding boxes in original pixels)
 *   threshold.json    the thresholds used (what `--threshold FILE` reads back)
 *   masks/<name>.png       defect mask at the original size (255 = defect)
 *   composites/<name>.png  image | heatmap overlay | mask outline, colour bar
 *   maps/<name>.safetensors  (--save-maps) the anomaly map, tensor 'map' F32 [height, width] at the
 *                            original size, raw score units (mask = map >= pixel threshold)
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { formatCsv } from '../io/csv.js';
import { encodeSafetensors, SafetensorsFile } from '../io/safetensors.js';
import { writeThresholdFile } from './calibration.js';
import { renderCompositePng, renderMaskPng } from './render.js';
import type { AnomalyMap, Bank, ImageInput, ImagePrediction } from './types.js';

/** A prediction as written (no map or mask), with the files written for it. */
export type WrittenPrediction = Omit<ImagePrediction, 'map' | 'mask' | 'patch'> & {
  mask_png?: string;
  composite_png?: string;
  /** maps/<name>.safetensors (--save-maps) */
  map_file?: string;
};

/** outputs/<name without extension>.png, keeping sub-folders but never leaving the folder. */
export function pictureName(name: string): string {
  const parts = name.split(/[\\/]/).filter((p) => p && p !== '.' && p !== '..');
  const last = (parts.pop() ?? 'image').replace(/\.[^.]+$/, '');
  return [...parts, `${last}.png`].join('/');
}

/** Writes the mask and composite of one prediction; returns it without its map and mask. */
export async function writePictures(out: string, input: ImageInput, p: ImagePrediction, pictures: boolean): Promise<WrittenPrediction> {
  const { map: _m, mask: _k, patch: _p, ...rest } = p;
  if (!pictures) return rest;
  const rel = pictureName(p.name);
  await writeFileAtomic(join(out, 'masks', rel), await renderMaskPng(p));
  await writeFileAtomic(join(out, 'composites', rel), await renderCompositePng(input.bytes, p));
  return { ...rest, mask_png: `masks/${rel}`, composite_png: `composites/${rel}` };
}

/** Writes maps/<name>.safetensors (tensor 'map' F32 [height, width]); returns its path relative to `out`. */
export async function writeMapFile(out: string, p: ImagePrediction): Promise<string> {
  if (!p.map) throw new Error(`${p.name}: no map to save (predict without opts.maps)`);
  const rel = `maps/${pictureName(p.name).replace(/\.png$/, '.safetensors')}`;
  const { width, height, data } = p.map;
  const meta = { name: p.name, image_score: String(p.imageScore), pixel_threshold: String(p.pixelThreshold) };
  await writeFileAtomic(join(out, rel), encodeSafetensors({ map: { dtype: 'F32', shape: [height, width], data } }, meta));
  return rel;
}

/** Reads a map written by writeMapFile. */
export async function readMapFile(file: string): Promise<AnomalyMap> {
  const f = await SafetensorsFile.open(file);
  try {
    const t = f.float32('map');
    if (t.shape.length !== 2) throw new Error(`${file}: tensor 'map' has shape [${t.shape}], expected [height, width]`);
    return { height: t.shape[0]!, width: t.shape[1]!, data: t.data };
  } finally {
    f.close();
  }
}

export function predictionsCsv(ps: WrittenPrediction[]): string {
  return formatCsv(
    ['name', 'verdict', 'score', 'normalized', 'image_score', 'threshold', 'regions', 'width', 'height', 'mask', 'composite'],
    ps.map((p) => [
      p.name,
      p.verdict,
      p.score,
      p.normalized,
      p.imageScore,
      p.threshold,
      p.regions.length,
      p.width,
      p.height,
      p.mask_png ?? '',
      p.composite_png ?? '',
    ]),
  );
}

export function regionsCsv(ps: Pick<WrittenPrediction, 'name' | 'regions'>[]): string {
  return formatCsv(
    ['name', 'region', 'x', 'y', 'width', 'height', 'area', 'peak', 'mean'],
    ps.flatMap((p) => p.regions.map((r) => [p.name, r.id, r.x, r.y, r.width, r.height, r.area, r.peak, r.mean])),
  );
}

export interface PredictSummary {
  bank: Bank;
  thresholds: { image: number; pixel: number; falseAlarm: number | null; source: string };
  predictions: WrittenPrediction[];
  skipped: { name: string; reason: string }[];
}

/** The tables, predictions.json and threshold.json. */
export async function writePredictTables(out: string, s: PredictSummary): Promise<void> {
  const m = s.bank.manifest;
  const ng = s.predictions.filter((p) => p.verdict === 'NG').length;
  const json = {
    bank: { path: s.bank.path, images: m.images.length, backbone: m.backbone, scoring: m.scoring, software: m.software },
    thresholds: s.thresholds,
    counts: { images: s.predictions.length, ng, ok: s.predictions.length - ng, skipped: s.skipped.length },
    predictions: s.predictions,
    skipped: s.skipped,
  };
  await writeFileAtomic(join(out, 'predictions.json'), JSON.stringify(json, null, 2) + '\n');
  await writeFileAtomic(join(out, 'predictions.csv'), predictionsCsv(s.predictions));
  await writeFileAtomic(join(out, 'regions.csv'), regionsCsv(s.predictions));
  await writeThresholdFile(join(out, 'threshold.json'), {
    image_threshold: s.thresholds.image,
    pixel_threshold: s.thresholds.pixel,
    source: s.thresholds.source,
  });
}
