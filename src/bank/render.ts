/**
 * Pictures of a prediction, as PNG buffers at the original aspect ratio (sharp):
 *   mask       the defect mask at the original size (255 = defect)
 *   heatmap    the image with the anomaly map blended 50/50 in the jet colours, original size
 *   composite  image | heatmap overlay | mask outline (red), side by side, with a colour bar
 * Heatmaps use the bank's fixed colour scale (ImagePrediction.colourScale: the normal maps'
 * median is blue, the pixel threshold the bar's middle, twice as far red), not a per-image
 * min-max, so a good image looks good. The composite is scaled to at most COMPOSITE_SIDE pixels
 * per panel side.
 */
import sharp from 'sharp';
import { decodeRgbBytes, type RgbImage } from '../image/decode.js';
import { colourMap, jet } from '../outputs/heatmaps.js';
import type { AnomalyMap, ImagePrediction } from './types.js';

export const COMPOSITE_SIDE = 512;
const GAP = 4,
  BAR = 18,
  LABELS = 64;

type Picture = Pick<ImagePrediction, 'name' | 'width' | 'height' | 'colourScale' | 'map' | 'mask'>;

async function rgbOf(image: RgbImage | Buffer, name: string): Promise<RgbImage> {
  return Buffer.isBuffer(image) ? decodeRgbBytes(name, image) : image;
}

function need<T>(v: T | undefined, what: string, name: string): T {
  if (v === undefined) throw new Error(`${name}: the prediction has no ${what} (predict with { maps: true })`);
  return v;
}

function png(data: Uint8Array, width: number, height: number, channels: 1 | 3): Promise<Buffer> {
  return sharp(data, { raw: { width, height, channels } }).png().toBuffer();
}

async function resized(img: RgbImage, w: number, h: number): Promise<Uint8Array> {
  if (img.width === w && img.height === h) return img.data;
  const { data } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(w, h, { fit: 'fill', kernel: 'linear' })
    .raw()
    .toBuffer({ resolveWithObject: true });
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/** Nearest-neighbour sample of a [H, W] plane to [h, w]. */
function sample<T extends Float32Array | Uint8Array>(src: T, W: number, H: number, w: number, h: number, make: (n: number) => T): T {
  if (W === w && H === h) return src;
  const out = make(w * h);
  for (let y = 0; y < h; y++) {
    const sy = Math.min(H - 1, Math.floor(((y + 0.5) * H) / h));
    for (let x = 0; x < w; x++) out[y * w + x] = src[sy * W + Math.min(W - 1, Math.floor(((x + 0.5) * W) / w))]!;
  }
  return out;
}

/** The defect mask PNG (8-bit gray, 255 = defect) at the original size. */
export function renderMaskPng(p: Picture): Promise<Buffer> {
  const mask = need(p.mask, 'mask', p.name);
  return png(
    mask.map((v) => (v ? 255 : 0)),
    p.width,
    p.height,
    1,
  );
}

/** The heatmap overlay PNG at the original size. */
export async function renderHeatmapPng(image: RgbImage | Buffer, p: Picture): Promise<Buffer> {
  const map: AnomalyMap = need(p.map, 'map', p.name);
  const img = await rgbOf(image, p.name);
  const base = await resized(img, map.width, map.height);
  return png(colourMap(map.data, p.colourScale.lo, p.colourScale.hi, base), map.width, map.height, 3);
}

/** Red outline of the mask's regions over the image (pixels of the mask with a 4-neighbour outside it). */
function outline(base: Uint8Array, mask: Uint8Array, w: number, h: number): Uint8Array {
  const out = Uint8Array.from(base);
  const m = (x: number, y: number): number => (x < 0 || y < 0 || x >= w || y >= h ? 0 : mask[y * w + x]!);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!m(x, y) || (m(x - 1, y) && m(x + 1, y) && m(x, y - 1) && m(x, y + 1))) continue;
      out.set([255, 0, 0], (y * w + x) * 3);
    }
  }
  return out;
}

/** A vertical jet bar [h, BAR] from 0 (bottom) to 1 (top), a white tick at the threshold (middle). */
function colourBar(h: number): Uint8Array {
  const out = new Uint8Array(h * BAR * 3);
  for (let y = 0; y < h; y++) {
    const c = Math.abs(y - (h - 1) / 2) < 1 ? [255, 255, 255] : jet(1 - y / Math.max(1, h - 1));
    for (let x = 0; x < BAR; x++) out.set(c, (y * BAR + x) * 3);
  }
  return out;
}

function labelSvg(p: Picture, h: number): Buffer {
  const f = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  const { lo, hi, threshold } = p.colourScale;
  const t = (y: number, s: string): string => `<text x="2" y="${y}" font-family="sans-serif" font-size="12" fill="white">${s}</text>`;
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${LABELS}" height="${h}">` +
      `${t(12, f(hi))}${t(h / 2 + 4, `${f(threshold)} thr`)}${t(h - 3, f(lo))}</svg>`,
  );
}

/** image | heatmap overlay | mask outline, with the colour bar (raw values; threshold marked). */
export async function renderCompositePng(image: RgbImage | Buffer, p: Picture): Promise<Buffer> {
  const map = need(p.map, 'map', p.name),
    mask = need(p.mask, 'mask', p.name);
  const img = await rgbOf(image, p.name);
  const scale = Math.min(1, COMPOSITE_SIDE / Math.max(p.width, p.height));
  const w = Math.max(1, Math.round(p.width * scale)),
    h = Math.max(1, Math.round(p.height * scale));
  const base = await resized(img, w, h);
  const m = sample(map.data, map.width, map.height, w, h, (n) => new Float32Array(n));
  const k = sample(mask, p.width, p.height, w, h, (n) => new Uint8Array(n));
  const panels = [base, colourMap(m, p.colourScale.lo, p.colourScale.hi, base), outline(base, k, w, h)];
  const W = 3 * w + 3 * GAP + BAR + LABELS;
  const out = new Uint8Array(W * h * 3); // black background
  const bar = colourBar(h);
  for (let y = 0; y < h; y++) {
    panels.forEach((pan, i) => out.set(pan.subarray(y * w * 3, (y + 1) * w * 3), (y * W + i * (w + GAP)) * 3));
    out.set(bar.subarray(y * BAR * 3, (y + 1) * BAR * 3), (y * W + 3 * (w + GAP)) * 3);
  }
  await drawLabels(out, W, h, p);
  return png(out, W, h, 3);
}

/** Blends the colour bar's value labels (SVG text, rendered by sharp) into the right margin. */
async function drawLabels(out: Uint8Array, W: number, h: number, p: Picture): Promise<void> {
  let lab: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    lab = await sharp(labelSvg(p, h)).raw().toBuffer({ resolveWithObject: true });
  } catch {
    return; // no SVG text support: the bar without labels
  }
  const { width: lw, height: lh, channels: ch } = lab.info;
  for (let y = 0; y < Math.min(h, lh); y++) {
    for (let x = 0; x < Math.min(LABELS, lw); x++) {
      const s = (y * lw + x) * ch,
        a = ch === 4 ? lab.data[s + 3]! / 255 : 1,
        o = (y * W + W - LABELS + x) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = Math.round(lab.data[s + c]! * a + out[o + c]! * (1 - a));
    }
  }
}
