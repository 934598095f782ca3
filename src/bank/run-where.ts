/**
 * Where, for `musc run`: the same masks, regions and composites as `musc predict`, written next to
 * a category's scores (<out>/<category>/):
 *
 *   regions.csv                     path,region,x,y,width,height,area,peak,mean (original pixels)
 *   masks/<defect>/<stem>.png       defect mask at the original image size, every image
 *   composites/<defect>/<stem>.png  image | heatmap overlay | mask outline, NG images only
 *
 * Pixel threshold: the bank rule (calibration.ts) over the map maxima of the images the run
 * judged OK (its `decision` column: F1-optimal with labels, else the false-alarm rule), i.e. the
 * normal images' maxima; all images when fewer than 2 are OK. A run keeps S x S maps only, so the
 * map at the original size is the S x S map resized (bilinear, align corners, as the maps are).
 */
import { join } from 'node:path';
import { mapMaxima, upsampleAlignCorners } from '../core/maps.js';
import { decodeRgb, type RgbImage } from '../image/decode.js';
import { writeFileAtomic } from '../io/atomic.js';
import { heatmapPaths } from '../outputs/heatmaps.js';
import type { CategoryResult } from '../outputs/result.js';
import { median } from '../threshold.js';
import { DEFAULT_FALSE_ALARM, falseAlarmThreshold } from './calibration.js';
import { regionsCsv } from './outputs.js';
import { regionsOf } from './regions.js';
import { renderCompositePng, renderMaskPng } from './render.js';
import type { ColourScale, Region } from './types.js';

export interface RunWhere {
  pixelThreshold: number;
  masks: number;
  composites: number;
  regions: number;
}

/** The pixel threshold and colour scale of a run (see the module comment). */
export function runPixelScale(
  r: Pick<CategoryResult, 'maps' | 'imageScores' | 'decisions' | 'size'>,
  falseAlarm = DEFAULT_FALSE_ALARM,
): ColourScale {
  const n = r.imageScores.length,
    plane = r.size * r.size;
  const ok = [...Array(n).keys()].filter((i) => r.decisions?.decisions[i] === 'OK');
  const base = ok.length >= 2 ? ok : [...Array(n).keys()];
  const maxima = mapMaxima(r.maps, n); // not the image scores: those may be a top-fraction mean (--image-score)
  const pixel = falseAlarmThreshold(
    base.map((i) => maxima[i]!),
    falseAlarm,
  );
  const lo = Math.min(pixel, median(base.map((i) => median(r.maps.subarray(i * plane, (i + 1) * plane)))));
  return { lo, hi: pixel > lo ? 2 * pixel - lo : lo + 1e-12, threshold: pixel };
}

export async function writeRunWhere(dir: string, r: CategoryResult, composites: boolean): Promise<RunWhere> {
  const scale = runPixelScale(r);
  const S = r.size,
    plane = S * S;
  const paths = heatmapPaths(
    r.items,
    r.items.map((_, i) => i),
  );
  const rows: { name: string; regions: Region[] }[] = [];
  const out: RunWhere = { pixelThreshold: scale.threshold, masks: 0, composites: 0, regions: 0 };
  for (const [i, it] of r.items.entries()) {
    let img: RgbImage;
    try {
      img = await decodeRgb(it.path);
    } catch {
      continue; // it was read for scoring; changed since: no picture
    }
    const map = {
      width: img.width,
      height: img.height,
      data: upsampleAlignCorners(r.maps.subarray(i * plane, (i + 1) * plane), 1, S, S, img.height, img.width),
    };
    const { mask, regions } = regionsOf(map, scale.threshold);
    const rel = paths.get(i)!.replace(/^heatmaps\//, '');
    const p = { name: it.rel, width: img.width, height: img.height, colourScale: scale, map, mask };
    await writeFileAtomic(join(dir, 'masks', rel), await renderMaskPng(p));
    out.masks++;
    if (composites && r.decisions?.decisions[i] === 'NG') {
      await writeFileAtomic(join(dir, 'composites', rel), await renderCompositePng(img, p));
      out.composites++;
    }
    rows.push({ name: it.rel, regions });
    out.regions += regions.length;
  }
  await writeFileAtomic(join(dir, 'regions.csv'), regionsCsv(rows).replace(/^name,/, 'path,'));
  return out;
}
