/**
 * The files the predict page offers for download (no Node.js dependency: bundled into the page
 * script, and tested in Node):
 *   ng-list.csv      name,score,normalized,regions of the NG images at a threshold (the one NG rule)
 *   threshold.json   the format src/bank/calibration.ts writeThresholdFile writes and
 *                    `musc predict --threshold FILE` (readThresholdArg) reads back
 */
import { formatCsv } from '../outputs/csv.js';
import { isNg } from '../threshold.js';
import type { PredictItem } from './page-data.js';

/** The NG images at threshold t, in the given order, as CSV (NG iff score >= t; a missing score is NG). */
export function ngListCsv(items: PredictItem[], t: number): string {
  const ng = items.filter((it) => isNg(it.score ?? Number.NaN, t));
  return formatCsv(
    ['name', 'score', 'normalized', 'regions'],
    ng.map((it) => [it.name, it.score ?? Number.NaN, it.normalized ?? Number.NaN, it.regions.length]),
  );
}

/** threshold.json text, byte for byte as writeThresholdFile writes it. */
export function thresholdFileText(image: number, pixel: number, source: string): string {
  return `${JSON.stringify({ format: 'musc-threshold', image_threshold: image, pixel_threshold: pixel, source }, null, 2)}\n`;
}
