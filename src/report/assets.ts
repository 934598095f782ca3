/**
 * Image files of the report, written with sharp under <out>/<cat>/report/ and referenced
 * relatively from report.html (so the report works from file:// and over `musc serve`):
 *
 *   thumb/<id>.jpg          original, T x T                       (gallery)
 *   thumb-overlay/<id>.jpg  jet map blended 50/50 over it, T x T  (gallery)
 *   thumb-outline/<id>.png  ground-truth outline, RGBA T x T       (gallery, when a mask exists)
 *   orig/<id>.jpg           original, B x B                        (large view)
 *   map/<id>.png            jet map, S x S                         (large view)
 *   overlay/<id>.jpg        map blended over the original, B x B   (large view)
 *   outline/<id>.png        ground-truth outline, RGBA B x B        (large view, when a mask exists)
 *
 * <id> is the scores.csv row index, zero-padded. Everything is square: the maps are of the
 * image resized to S x S without keeping the aspect ratio (the backbone's input), and the
 * originals are shown the same way so that maps, overlays and outlines line up.
 * B = clamp(original's longer side, S, 512); T = 160 by default.
 * Map colours: jet (outputs/heatmaps.ts) over [lo, hi] = the category's finite min and max of
 * all maps by default ('category': hot means hot across images, so rankings read at a glance),
 * or each map's own ('image', the reference's single_norm).
 * Outlines: mask resized with the 'nonzero' rule (nearest, any non-zero pixel is defective);
 * a mask pixel is on the outline when a pixel within `width` (Chebyshev) is outside the mask.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { decodeMask, decodeRgb, type RgbImage } from '../image/decode.js';
import { binariseMask } from '../datasets/masks.js';
import { colourMap, minMax } from '../outputs/heatmaps.js';
import type { CategoryOutputs } from './model.js';

export type MapNorm = 'category' | 'image';

export interface AssetOptions {
  /** thumbnail side T (default 160) */
  thumbSize?: number;
  /** largest side of the large view B (default 512) */
  maxLargeSize?: number;
  norm?: MapNorm;
  /** images processed at once (default 4) */
  concurrency?: number;
  /** called after each image */
  onProgress?: (done: number, total: number) => void;
}

/** What exists for one row. */
export interface ItemAssets {
  id: string;
  /** original readable: thumb/, orig/ written */
  original: boolean;
  /** map present: map/, thumb-overlay/ (and overlay/ with an original) written */
  map: boolean;
  /** mask found: outline/, thumb-outline/ written */
  outline: boolean;
}

export const REPORT_ASSET_DIR = 'report';

/** Zero-padded row id ('0007' for row 7 of 1000 rows). */
export function assetId(i: number, n: number): string {
  return String(i).padStart(Math.max(4, String(Math.max(0, n - 1)).length), '0');
}

/** Outline of a 0/1 mask [size, size] as RGBA [size, size, 4]: white, opaque on the outline. */
export function maskOutline(mask: Uint8Array, size: number, width: number): Uint8Array {
  const out = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (!mask[y * size + x]) continue;
      let edge = false;
      for (let dy = -width; dy <= width && !edge; dy++) {
        for (let dx = -width; dx <= width; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy < 0 || xx < 0 || yy >= size || xx >= size || !mask[yy * size + xx]) {
            edge = true;
            break;
          }
        }
      }
      if (edge) out.set([255, 255, 255, 255], (y * size + x) * 4);
    }
  }
  return out;
}

async function resizeRgb(data: Uint8Array, w: number, h: number, side: number): Promise<Uint8Array> {
  const buf = await sharp(data, { raw: { width: w, height: h, channels: 3 } }).resize(side, side, { fit: 'fill', kernel: 'linear' }).raw().toBuffer();
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

/** a and b [side, side, 3] blended 50/50. */
function blend(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i]! + b[i]! + 1) >> 1;
  return out;
}

const jpeg = (data: Uint8Array, side: number): Promise<Buffer> => sharp(data, { raw: { width: side, height: side, channels: 3 } }).jpeg({ quality: 82 }).toBuffer();
const png = (data: Uint8Array, side: number, channels: 3 | 4): Promise<Buffer> => sharp(data, { raw: { width: side, height: side, channels } }).png({ compressionLevel: 6 }).toBuffer();

/** Union of the masks in `files`, binarised at size x size (nonzero rule) -> [size, size] 0/1. */
async function maskAt(decoded: { width: number; height: number; data: Uint8Array }[], size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size * size);
  for (const m of decoded) {
    const b = binariseMask(m.data, m.width, m.height, size, 'nonzero');
    for (let i = 0; i < out.length; i++) out[i] = out[i]! | b[i]!;
  }
  return out;
}

/** Writes every row's images under <out>/<folder>/report/ (the folder is replaced); returns what exists per row and warnings. */
export async function writeCategoryAssets(outDir: string, cat: CategoryOutputs, o: AssetOptions = {}): Promise<{ assets: ItemAssets[]; warnings: string[] }> {
  const T = o.thumbSize ?? 160;
  const maxB = o.maxLargeSize ?? 512;
  const S = cat.size;
  const n = cat.rows.length;
  const plane = S * S;
  const dir = join(outDir, cat.folder, REPORT_ASSET_DIR);
  await rm(dir, { recursive: true, force: true });
  for (const sub of ['thumb', 'thumb-overlay', 'thumb-outline', 'orig', 'map', 'overlay', 'outline']) await mkdir(join(dir, sub), { recursive: true });
  const whole = cat.maps && (o.norm ?? 'category') === 'category' ? minMax(cat.maps) : null;
  const unreadable: string[] = [];
  const badMasks: string[] = [];

  const one = async (i: number): Promise<ItemAssets> => {
    const id = assetId(i, n);
    const a: ItemAssets = { id, original: false, map: false, outline: false };
    let img: RgbImage | null = null;
    const file = cat.images[i];
    if (file) {
      try {
        img = await decodeRgb(file);
      } catch (e) {
        unreadable.push(`${cat.rows[i]!.path} (${(e as Error).message})`);
      }
    }
    const B = img ? Math.min(maxB, Math.max(S, img.width, img.height, 1)) : Math.max(S, 1);
    let thumb: Uint8Array | null = null;
    let big: Uint8Array | null = null;
    if (img) {
      thumb = await resizeRgb(img.data, img.width, img.height, T);
      big = await resizeRgb(img.data, img.width, img.height, B);
      await writeFile(join(dir, 'thumb', `${id}.jpg`), await jpeg(thumb, T));
      await writeFile(join(dir, 'orig', `${id}.jpg`), await jpeg(big, B));
      a.original = true;
    }
    if (cat.maps && S > 0) {
      const m = cat.maps.subarray(i * plane, (i + 1) * plane); // [S, S]
      const [lo, hi] = whole ?? minMax(m);
      const col = colourMap(m, lo, hi); // [S, S, 3]
      await writeFile(join(dir, 'map', `${id}.png`), await png(col, S, 3));
      const colT = await resizeRgb(col, S, S, T);
      await writeFile(join(dir, 'thumb-overlay', `${id}.jpg`), await jpeg(thumb ? blend(thumb, colT) : colT, T));
      if (big) await writeFile(join(dir, 'overlay', `${id}.jpg`), await jpeg(blend(big, await resizeRgb(col, S, S, B)), B));
      a.map = true;
    }
    const mf = cat.masks[i];
    if (mf?.length) {
      try {
        const decoded = await Promise.all(mf.map((f) => decodeMask(f)));
        const mT = await maskAt(decoded, T);
        const mB = await maskAt(decoded, B);
        await writeFile(join(dir, 'thumb-outline', `${id}.png`), await png(maskOutline(mT, T, 1), T, 4));
        await writeFile(join(dir, 'outline', `${id}.png`), await png(maskOutline(mB, B, Math.max(2, Math.round(B / 200))), B, 4));
        a.outline = true;
      } catch (e) {
        badMasks.push(`${mf.join('+')} (${(e as Error).message})`);
      }
    }
    return a;
  };

  const assets: ItemAssets[] = new Array(n);
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      assets[i] = await one(i);
      o.onProgress?.(++done, n);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency ?? 4, n)) }, worker));
  const warnings: string[] = [];
  if (unreadable.length) warnings.push(`${unreadable.length} original image(s) could not be read, e.g. ${unreadable[0]}`);
  if (badMasks.length) warnings.push(`${badMasks.length} mask(s) could not be read, e.g. ${badMasks[0]}`);
  return { assets, warnings };
}
