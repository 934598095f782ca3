/**
 * The built-in demo data: a small synthetic inspection set in the MVTec AD layout, generated
 * deterministically from a seed (mulberry32), so `musc demo` needs no download.
 *
 *   <dir>/<category>/test/good/000.png ...                       textured surfaces, no defect
 *   <dir>/<category>/test/{crack,scratch,spot}/000.png ...       one injected defect each
 *   <dir>/<category>/ground_truth/<type>/000_mask.png            0/255 masks of the defect
 *
 * Surface: a brushed-metal like texture (two sinusoidal weaves with a per-image phase, plus
 * fine noise) with a slight per-image brightness change; defects: a dark straight scratch, a
 * round stain, a branching dark crack.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic.js';

export interface SyntheticOptions {
  /** category folder name (default 'surface') */
  category?: string;
  /** good images (default 16) */
  good?: number;
  /** defective images, spread over crack / scratch / spot (default 8) */
  defective?: number;
  /** image side in pixels (default 224) */
  size?: number;
  seed?: number;
}

export const DEFECT_TYPES = ['crack', 'scratch', 'spot'] as const;
export type DefectType = (typeof DEFECT_TYPES)[number];

/** mulberry32: a small deterministic PRNG -> [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function gauss(rnd: () => number): number {
  const u = Math.max(rnd(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rnd());
}

/** A defect-free surface, RGB float [S, S, 3] in 0..255. */
function surface(size: number, rnd: () => number): Float32Array {
  const img = new Float32Array(size * size * 3);
  const ph1 = rnd() * 2 * Math.PI;
  const ph2 = rnd() * 2 * Math.PI;
  const gain = 0.95 + 0.1 * rnd();
  const tint = [1.0, 0.98, 0.93];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const v = gain * (135 + 18 * Math.sin((2 * Math.PI * (x + 0.35 * y)) / 9 + ph1) + 10 * Math.sin((2 * Math.PI * y) / 23 + ph2)) + 5 * gauss(rnd);
      for (let c = 0; c < 3; c++) img[(y * size + x) * 3 + c] = v * tint[c]!;
    }
  }
  return img;
}

/** Distance from (px, py) to the segment (ax, ay)-(bx, by). */
function segDist(px: number, py: number, ax: number, ay: number, bx: number, by: number): number {
  const dx = bx - ax;
  const dy = by - ay;
  const l2 = dx * dx + dy * dy;
  const t = l2 > 0 ? Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / l2)) : 0;
  return Math.hypot(px - ax - t * dx, py - ay - t * dy);
}

/** Paints a defect into img; returns its mask [S, S] 0/255. */
function injectDefect(img: Float32Array, size: number, type: DefectType, rnd: () => number): Uint8Array {
  const mask = new Uint8Array(size * size);
  const margin = size * 0.2;
  const cx = margin + rnd() * (size - 2 * margin);
  const cy = margin + rnd() * (size - 2 * margin);
  const paint = (x: number, y: number, rgb: [number, number, number], alpha: number): void => {
    const i = y * size + x;
    mask[i] = 255;
    for (let c = 0; c < 3; c++) img[i * 3 + c] = (1 - alpha) * img[i * 3 + c]! + alpha * rgb[c]!;
  };
  if (type === 'spot') {
    const r = size * (0.04 + 0.04 * rnd());
    const colour: [number, number, number] = [95, 70, 45];
    for (let y = Math.floor(cy - r - 1); y <= Math.ceil(cy + r + 1); y++)
      for (let x = Math.floor(cx - r - 1); x <= Math.ceil(cx + r + 1); x++) {
        if (x < 0 || y < 0 || x >= size || y >= size) continue;
        const d = Math.hypot(x - cx, y - cy) / r;
        if (d <= 1) paint(x, y, colour, 0.85 - 0.3 * d * d);
      }
  } else {
    // polyline: straight for a scratch, a jagged random walk for a crack
    const pts: [number, number][] = [[cx, cy]];
    const segs = type === 'scratch' ? 1 : 6;
    let ang = rnd() * Math.PI;
    const len = size * (type === 'scratch' ? 0.35 + 0.2 * rnd() : 0.06);
    for (let k = 0; k < segs; k++) {
      if (type === 'crack') ang += (rnd() - 0.5) * 1.4;
      const [lx, ly] = pts[pts.length - 1]!;
      pts.push([Math.min(size - 2, Math.max(1, lx + len * Math.cos(ang))), Math.min(size - 2, Math.max(1, ly + len * Math.sin(ang)))]);
    }
    const half = type === 'scratch' ? 1.2 : 1.6;
    const colour: [number, number, number] = type === 'scratch' ? [40, 40, 45] : [20, 18, 16];
    for (let k = 0; k + 1 < pts.length; k++) {
      const [ax, ay] = pts[k]!;
      const [bx, by] = pts[k + 1]!;
      for (let y = Math.floor(Math.min(ay, by) - 3); y <= Math.ceil(Math.max(ay, by) + 3); y++)
        for (let x = Math.floor(Math.min(ax, bx) - 3); x <= Math.ceil(Math.max(ax, bx) + 3); x++) {
          if (x < 0 || y < 0 || x >= size || y >= size) continue;
          if (segDist(x, y, ax, ay, bx, by) <= half) paint(x, y, colour, 0.9);
        }
    }
  }
  return mask;
}

function toU8(img: Float32Array): Uint8Array {
  const out = new Uint8Array(img.length);
  for (let i = 0; i < img.length; i++) out[i] = Math.max(0, Math.min(255, Math.round(img[i]!)));
  return out;
}

async function png(data: Uint8Array, size: number, channels: 1 | 3): Promise<Buffer> {
  return sharp(data, { raw: { width: size, height: size, channels } }).png({ compressionLevel: 6 }).toBuffer();
}

export interface SyntheticSet {
  /** the data folder (pass it to `musc run --data`) */
  root: string;
  category: string;
  images: number;
  defective: number;
}

/** Generates the synthetic set under `dir` (created if needed). Deterministic for a given seed. */
export async function generateSynthetic(dir: string, o: SyntheticOptions = {}): Promise<SyntheticSet> {
  const category = o.category ?? 'surface';
  const nGood = o.good ?? 16;
  const nDef = o.defective ?? 8;
  const size = o.size ?? 224;
  const rnd = mulberry32(o.seed ?? 2024);
  const cat = join(dir, category);
  await mkdir(join(cat, 'test', 'good'), { recursive: true });
  for (let i = 0; i < nGood; i++) {
    const img = surface(size, rnd);
    await writeFileAtomic(join(cat, 'test', 'good', `${String(i).padStart(3, '0')}.png`), await png(toU8(img), size, 3));
  }
  const counters: Record<string, number> = {};
  for (let i = 0; i < nDef; i++) {
    const type = DEFECT_TYPES[i % DEFECT_TYPES.length]!;
    const k = (counters[type] ?? -1) + 1;
    counters[type] = k;
    const img = surface(size, rnd);
    const mask = injectDefect(img, size, type, rnd);
    const stem = String(k).padStart(3, '0');
    await writeFileAtomic(join(cat, 'test', type, `${stem}.png`), await png(toU8(img), size, 3));
    await writeFileAtomic(join(cat, 'ground_truth', type, `${stem}_mask.png`), await png(mask, size, 1));
  }
  return { root: dir, category, images: nGood + nDef, defective: nDef };
}
