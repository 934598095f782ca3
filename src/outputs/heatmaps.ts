/**
 * Heatmap PNGs, after models/musc.py `visualization`: each map is scaled to 0..255, coloured with
 * the jet colormap (cv2.COLORMAP_JET), and here blended 50/50 over the image resized to S x S
 * (the reference writes the bare colour map), with a colour bar on the right. Files go to
 * heatmaps/<defect>/<stem>.png. The scale (settings.norm):
 *   'category' (default) one fixed scale per category: the run's pixel threshold and colour scale
 *              (bank/run-where.ts runPixelScale, the masks' threshold, the bank rule over the map
 *              maxima of the images judged OK) is the bar's middle (marked), the median of the maps'
 *              medians is blue, twice as far from it as the threshold is red; so a good image
 *              (maximum near the typical one) stays blue-green, a defect turns red
 *   'image'    each map's own min-max (the reference's single_norm; every map has a red hotspot)
 * Which images: 'anomalous' = the labelled-defective ones (the reference's single_norm choice;
 * every image when labels are unknown), 'all', or 'none'.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import type { HeatmapMode } from '../config.js';
import type { DatasetItem } from '../datasets/types.js';
import { decodeRgb } from '../image/decode.js';
import { writeFileAtomic } from '../io/atomic.js';
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
  scale: ColourScale | 'image',
): Promise<string[]> {
  const sel = selectHeatmaps(items, mode);
  const paths = heatmapPaths(items, sel);
  const plane = size * size;
  const written: string[] = [];
  for (const i of sel) {
    const m = maps.subarray(i * plane, (i + 1) * plane);
    const sc = scale === 'image' ? imageScale(m) : scale;
    const rgb = colourMap(m, sc.lo, sc.hi, await baseImage(items[i]!.path, size));
    const pic = await withColourBar(rgb, size, size, sc);
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
