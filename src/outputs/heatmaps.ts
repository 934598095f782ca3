/**
 * Heatmap PNGs, after models/musc.py `visualization`: each map is scaled to 0..255, coloured with
 * the jet colormap (cv2.COLORMAP_JET), and here blended 50/50 over the image resized to S x S
 * (the reference writes the bare colour map), with a colour bar on the right. Files go to
 * heatmaps/<defect>/<stem>.png. The scale (settings.norm):
 *   'category' (default) one fixed scale per category, as the bank's (bank/calibration.ts): the
 *              label-free threshold t = median + 3 MAD of the images' map maxima is the bar's middle
 *              (marked), the median of the maps' medians is blue, twice as far from it as t is red;
 *              so a good image (maximum near the typical one) stays blue-green, a defect turns red
 *   'image'    each map's own min-max (the reference's single_norm; every map has a red hotspot)
 * Which images: 'anomalous' = the labelled-defective ones (the reference's single_norm choice;
 * every image when labels are unknown), 'all', or 'none'.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import type { HeatmapMode, VisNorm } from '../config.js';
import type { DatasetItem } from '../datasets/types.js';
import { decodeRgb } from '../image/decode.js';
import { writeFileAtomic } from '../io/atomic.js';
import { madThreshold, median } from '../threshold.js';
import { type ColourScale, colourMap, withColourBar } from './colour.js';

export { colourMap, jet } from './colour.js';

/** Finite min and max of a map ([0, 0] when nothing is finite). */
export function minMax(a: Float32Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of a) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return lo <= hi ? [lo, hi] : [0, 0];
}

/** Every STEP-th value of a map is enough for its median. */
const MEDIAN_STEP = 7;

/** The fixed colour scale of a category's maps [N, plane] (see the module comment). */
export function categoryScale(maps: Float32Array, plane: number): ColourScale {
  const n = Math.floor(maps.length / plane);
  const maxima = new Float64Array(n);
  const medians = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const m = maps.subarray(i * plane, (i + 1) * plane);
    maxima[i] = minMax(m)[1];
    const sampled = new Float32Array(Math.ceil(plane / MEDIAN_STEP));
    for (let j = 0, k = 0; j < plane; j += MEDIAN_STEP) sampled[k++] = m[j]!;
    medians[i] = median(sampled);
  }
  const threshold = madThreshold(maxima);
  const lo = Math.min(median(medians), threshold);
  const hi = threshold + (threshold - lo);
  return { lo, hi: hi > lo ? hi : lo + 1e-12, threshold };
}

/** The image resized to S x S RGB (sharp, linear), or undefined when it cannot be read. */
async function baseImage(file: string, size: number): Promise<Uint8Array | undefined> {
  try {
    const img = await decodeRgb(file);
    const { data } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
      .resize(size, size, { fit: 'fill', kernel: 'linear' })
      .raw()
      .toBuffer({ resolveWithObject: true });
    return new Uint8Array(data.buffer, data.byteOffset, data.length);
  } catch {
    return undefined;
  }
}

function safeSegment(s: string): string {
  return s
    .split('/')
    .filter((p) => p && p !== '.' && p !== '..')
    .join('/');
}

/** Relative output paths for the selected items (collisions of stems get the extension appended). */
export function heatmapPaths(items: DatasetItem[], selected: number[]): Map<number, string> {
  const used = new Set<string>();
  const out = new Map<number, string>();
  for (const i of selected) {
    const it = items[i]!;
    const name = it.rel.slice(it.rel.lastIndexOf('/') + 1);
    const dot = name.lastIndexOf('.');
    const stem = dot > 0 ? name.slice(0, dot) : name;
    const dir = safeSegment(it.defect);
    let rel = (dir ? `${dir}/` : '') + `${stem}.png`;
    if (used.has(rel)) rel = (dir ? `${dir}/` : '') + `${name.replace(/\./g, '_')}.png`;
    used.add(rel);
    out.set(i, `heatmaps/${rel}`);
  }
  return out;
}

export function selectHeatmaps(items: DatasetItem[], mode: HeatmapMode): number[] {
  if (mode === 'none') return [];
  const labeled = items.some((it) => it.label !== null);
  return items.map((_, i) => i).filter((i) => mode === 'all' || !labeled || items[i]!.label === 1);
}

/** Writes the heatmaps (with a colour bar); returns the relative paths written. */
export async function writeHeatmaps(
  outDir: string,
  items: DatasetItem[],
  maps: Float32Array,
  size: number,
  mode: HeatmapMode,
  norm: VisNorm,
): Promise<string[]> {
  const sel = selectHeatmaps(items, mode);
  const paths = heatmapPaths(items, sel);
  const plane = size * size;
  const fixed = norm === 'category' && sel.length > 0 ? categoryScale(maps, plane) : null;
  const written: string[] = [];
  for (const i of sel) {
    const m = maps.subarray(i * plane, (i + 1) * plane);
    const scale = fixed ?? imageScale(m);
    const rgb = colourMap(m, scale.lo, scale.hi, await baseImage(items[i]!.path, size));
    const pic = await withColourBar(rgb, size, size, scale);
    const png = await sharp(pic.data, { raw: { width: pic.width, height: size, channels: 3 } })
      .png()
      .toBuffer();
    const rel = paths.get(i)!;
    await writeFileAtomic(join(outDir, rel), png);
    written.push(rel);
  }
  return written;
}

/** A map's own min-max scale (no threshold: NaN, not marked). */
function imageScale(m: Float32Array): ColourScale {
  const [lo, hi] = minMax(m);
  return { lo, hi, threshold: Number.NaN };
}
