/**
 * Where: the anomaly map at the ORIGINAL image size and its defect regions. The patch scores
 * [h, w] are upsampled bilinearly with align_corners (as the S x S maps of `musc run`) straight to
 * the original height x width, so the map keeps the image's aspect ratio; pixels above the pixel
 * threshold form the mask; its 8-connected components (src/metrics/regions.ts) are the regions.
 */
import { upsampleAlignCorners } from '../core/maps.js';
import { labelRegions } from '../metrics/regions.js';
import { isNg } from '../threshold.js';
import type { AnomalyMap, Region } from './types.js';

/** Patch scores [h, w] -> map [height, width] (raw score units). */
export function mapAtSize(patch: Float64Array, h: number, w: number, width: number, height: number): AnomalyMap {
  return { width, height, data: upsampleAlignCorners(patch, 1, h, w, height, width) };
}

/** Mask (map >= threshold) and its regions, in raster order of their first pixel. */
export function regionsOf(map: AnomalyMap, threshold: number): { mask: Uint8Array; regions: Region[] } {
  const { width: W, height: H, data } = map;
  const mask = new Uint8Array(W * H);
  for (let k = 0; k < mask.length; k++) mask[k] = isNg(data[k]!, threshold) ? 1 : 0; // the one NG rule, per pixel
  const lab = labelRegions(mask, H, W, 8);
  const regions: Region[] = Array.from({ length: lab.count }, (_, i) => ({
    id: i + 1,
    x: W,
    y: H,
    width: 0,
    height: 0,
    area: 0,
    peak: -Infinity,
    mean: 0,
  }));
  const x1 = new Int32Array(lab.count),
    y1 = new Int32Array(lab.count);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const id = lab.labels[y * W + x]!;
      if (id === 0) continue;
      const r = regions[id - 1]!,
        v = data[y * W + x]!;
      r.x = Math.min(r.x, x);
      r.y = Math.min(r.y, y);
      x1[id - 1] = Math.max(x1[id - 1]!, x);
      y1[id - 1] = Math.max(y1[id - 1]!, y);
      r.area++;
      r.peak = Math.max(r.peak, v);
      r.mean += v;
    }
  }
  regions.forEach((r, i) => {
    r.width = x1[i]! - r.x + 1;
    r.height = y1[i]! - r.y + 1;
    r.mean /= r.area;
  });
  return { mask, regions };
}
