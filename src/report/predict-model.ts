/**
 * The report's view of a `musc predict` output folder (src/bank/outputs.ts writes it):
 *
 *   <out>/predictions.json     bank, thresholds, per image verdict, scores, regions, picture files (required)
 *   <out>/composites/<name>.png image | heatmap overlay | mask outline, colour bar (optional: --no-pictures)
 *
 * The page lists the images with their verdicts and regions and lets the image threshold move;
 * verdicts follow the one NG rule (src/threshold.ts isNg), as predict's.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { jet } from '../outputs/heatmaps.js';
import { ReportError } from './model.js';
import type { PagePredict, PredictItem, PredictRegion } from './page-data.js';

export const PREDICTIONS_FILE = 'predictions.json';

/** True when the folder holds predict outputs (predictions.json) rather than `musc run` categories. */
export async function isPredictFolder(outDir: string): Promise<boolean> {
  return stat(join(outDir, PREDICTIONS_FILE)).then(
    (s) => s.isFile(),
    () => false,
  );
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** 'composites/a b.png' -> 'composites/a%20b.png' (each segment encoded; never leaves the folder). */
function relUrl(rel: unknown): string | null {
  if (typeof rel !== 'string' || rel === '') return null;
  const parts = rel.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return null;
  return parts.map(encodeURIComponent).join('/');
}

function region(r: Record<string, unknown>): PredictRegion {
  const n = (k: string): number => num(r[k]) ?? Number.NaN;
  return { id: n('id'), x: n('x'), y: n('y'), width: n('width'), height: n('height'), area: n('area'), peak: n('peak'), mean: n('mean') };
}

function item(p: Record<string, unknown>, file: string, i: number): PredictItem {
  if (typeof p.name !== 'string' || (p.verdict !== 'OK' && p.verdict !== 'NG') || !Array.isArray(p.regions)) {
    throw new ReportError(`${file}: predictions[${i}] needs a name, a verdict OK|NG and regions`);
  }
  return {
    name: p.name,
    verdict: p.verdict,
    score: num(p.score),
    normalized: num(p.normalized),
    imageScore: num(p.imageScore),
    width: num(p.width) ?? 0,
    height: num(p.height) ?? 0,
    regions: (p.regions as Record<string, unknown>[]).map(region),
    composite: relUrl(p.composite_png),
  };
}

/** The heatmaps' colours from 0 (left) to 1 (right) as a CSS gradient (the jet map the composites use). */
export function colourGradient(stops = 11): string {
  const c = Array.from({ length: stops }, (_, i) => `rgb(${jet(i / (stops - 1)).join(',')})`);
  return `linear-gradient(to right, ${c.join(', ')})`;
}

/** Reads predictions.json of a predict folder; a ReportError names the file and the problem. */
export async function readPredictOutputs(outDir: string): Promise<PagePredict> {
  const file = join(outDir, PREDICTIONS_FILE);
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new ReportError(`${file}: cannot read: ${(e as Error).message}`);
  }
  const t = (j.thresholds ?? {}) as Record<string, unknown>;
  const image = num(t.image),
    pixel = num(t.pixel);
  if (image === null || pixel === null || !Array.isArray(j.predictions)) {
    throw new ReportError(`${file}: not a musc predict file (expected thresholds.image, thresholds.pixel and predictions[])`);
  }
  const preds = j.predictions as Record<string, unknown>[];
  const items = preds.map((p, i) => item(p, file, i));
  const bank = (j.bank ?? {}) as { path?: unknown; images?: unknown; backbone?: { name?: unknown } };
  const cs = preds.find((p) => p.colourScale)?.colourScale as Record<string, unknown> | undefined;
  const lo = num(cs?.lo),
    hi = num(cs?.hi),
    ct = num(cs?.threshold);
  return {
    bank: {
      path: String(bank.path ?? ''),
      images: num(bank.images) ?? 0,
      backbone: typeof bank.backbone?.name === 'string' ? bank.backbone.name : null,
    },
    thresholds: { image, pixel, falseAlarm: num(t.falseAlarm), source: String(t.source ?? '') },
    colourScale: lo !== null && hi !== null && ct !== null ? { lo, hi, threshold: ct, gradient: colourGradient() } : null,
    items,
    skipped: Array.isArray(j.skipped)
      ? (j.skipped as { name: string; reason: string }[]).map((s) => ({ name: String(s.name), reason: String(s.reason) }))
      : [],
  };
}
