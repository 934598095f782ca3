/**
 * Heatmap PNGs, after models/musc.py `visualization`: each map is min-max normalised (vis_type
 * 'single_norm': per image; 'whole_norm': over all maps of the category), scaled to 0..255,
 * coloured with the jet colormap (cv2.COLORMAP_JET), and here blended 50/50 over the image
 * resized to S x S (the reference writes the bare colour map). Files go to
 * heatmaps/<defect>/<stem>.png.
 * Which images: 'anomalous' = the labelled-defective ones (the reference's single_norm choice;
 * every image when labels are unknown), 'all', or 'none'.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic.js';
import { decodeRgb } from '../image/decode.js';
import type { DatasetItem } from '../datasets/types.js';
import type { HeatmapMode, VisNorm } from '../config.js';

/** Jet colormap of v in [0,1] -> [r, g, b] 0..255 (piecewise linear, like OpenCV's COLORMAP_JET). */
export function jet(v: number): [number, number, number] {
  const c = (x: number): number => Math.round(255 * Math.min(1, Math.max(0, x)));
  return [c(Math.min(4 * v - 1.5, -4 * v + 4.5)), c(Math.min(4 * v - 0.5, -4 * v + 3.5)), c(Math.min(4 * v + 0.5, -4 * v + 2.5))];
}

/** 256-entry jet lookup table [256, 3]. */
const JET_LUT: Uint8Array = (() => {
  const t = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) t.set(jet(i / 255), i * 3);
  return t;
})();

/** Colours one map [S, S] with min/max given -> RGB [S, S, 3]; optional image [S, S, 3] blended 50/50. */
export function colourMap(map: Float32Array, lo: number, hi: number, base?: Uint8Array): Uint8Array {
  const out = new Uint8Array(map.length * 3);
  const span = hi - lo;
  for (let i = 0; i < map.length; i++) {
    const v = span > 0 && Number.isFinite(map[i]!) ? (map[i]! - lo) / span : 0;
    // the reference: (normalised * 255).astype(np.uint8), a truncation
    const q = Math.min(255, Math.max(0, Math.trunc(v * 255)));
    for (let ch = 0; ch < 3; ch++) {
      const h = JET_LUT[q * 3 + ch]!;
      out[i * 3 + ch] = base ? Math.round(0.5 * h + 0.5 * base[i * 3 + ch]!) : h;
    }
  }
  return out;
}

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

/** Writes the heatmaps; returns the relative paths written. */
export async function writeHeatmaps(outDir: string, items: DatasetItem[], maps: Float32Array, size: number, mode: HeatmapMode, norm: VisNorm): Promise<string[]> {
  const sel = selectHeatmaps(items, mode);
  const paths = heatmapPaths(items, sel);
  const plane = size * size;
  const whole = norm === 'whole' ? minMax(maps) : null;
  const written: string[] = [];
  for (const i of sel) {
    const m = maps.subarray(i * plane, (i + 1) * plane);
    const [lo, hi] = whole ?? minMax(m);
    const rgb = colourMap(m, lo, hi, await baseImage(items[i]!.path, size));
    const png = await sharp(rgb, { raw: { width: size, height: size, channels: 3 } }).png().toBuffer();
    const rel = paths.get(i)!;
    await writeFileAtomic(join(outDir, rel), png);
    written.push(rel);
  }
  return written;
}
