/**
 * Colours of anomaly maps, shared by musc run's heatmaps (outputs/heatmaps.ts), the bank's pictures
 * (bank/render.ts) and the report: the jet colormap (cv2.COLORMAP_JET), a map coloured on a scale
 * and blended over its image, and a vertical colour bar with its value labels (threshold marked).
 */
import sharp from 'sharp';

/** A fixed colour scale: lo is blue, hi is red; threshold (when known) is marked on the bar. */
export interface ColourScale {
  lo: number;
  hi: number;
  threshold: number;
}

/** Colour bar width and its labels' margin, in pixels. */
export const BAR = 18;
export const LABELS = 64;

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

/** The 0..255 colour index of v on [lo, hi] (truncated, as the reference's astype(np.uint8)). */
export function colourIndex(v: number, lo: number, hi: number): number {
  const span = hi - lo;
  const f = span > 0 && Number.isFinite(v) ? (v - lo) / span : 0;
  return Math.min(255, Math.max(0, Math.trunc(f * 255)));
}

/** Colours one map [S, S] with min/max given -> RGB [S, S, 3]; optional image [S, S, 3] blended 50/50. */
export function colourMap(map: Float32Array, lo: number, hi: number, base?: Uint8Array): Uint8Array {
  const out = new Uint8Array(map.length * 3);
  for (let i = 0; i < map.length; i++) {
    const q = colourIndex(map[i]!, lo, hi);
    for (let ch = 0; ch < 3; ch++) {
      const h = JET_LUT[q * 3 + ch]!;
      out[i * 3 + ch] = base ? Math.round(0.5 * h + 0.5 * base[i * 3 + ch]!) : h;
    }
  }
  return out;
}

/** A vertical jet bar [h, BAR, 3] from lo (bottom) to hi (top), a white tick at the threshold when it is inside. */
export function colourBar(h: number, scale: ColourScale): Uint8Array {
  const out = new Uint8Array(h * BAR * 3);
  const span = scale.hi - scale.lo;
  const tickY = span > 0 && Number.isFinite(scale.threshold) ? (h - 1) * (1 - (scale.threshold - scale.lo) / span) : NaN;
  for (let y = 0; y < h; y++) {
    const c = Math.abs(y - tickY) < 1 ? [255, 255, 255] : jet(1 - y / Math.max(1, h - 1));
    for (let x = 0; x < BAR; x++) out.set(c, (y * BAR + x) * 3);
  }
  return out;
}

function labelSvg(scale: ColourScale, h: number): Buffer {
  const f = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3));
  const { lo, hi, threshold } = scale;
  const t = (y: number, s: string): string => `<text x="2" y="${y}" font-family="sans-serif" font-size="12" fill="white">${s}</text>`;
  const span = hi - lo;
  const inside = span > 0 && Number.isFinite(threshold) && threshold > lo && threshold < hi;
  const ty = inside ? Math.min(h - 16, Math.max(26, (h - 1) * (1 - (threshold - lo) / span) + 4)) : 0;
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${LABELS}" height="${h}">` +
      `${t(12, f(hi))}${inside ? t(ty, `${f(threshold)} thr`) : ''}${t(h - 3, f(lo))}</svg>`,
  );
}

/** Blends the colour bar's value labels (SVG text, rendered by sharp) into the right LABELS columns of out [h, W, 3]. */
export async function drawBarLabels(out: Uint8Array, W: number, h: number, scale: ColourScale): Promise<void> {
  let lab: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    lab = await sharp(labelSvg(scale, h)).raw().toBuffer({ resolveWithObject: true });
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

/** rgb [h, w, 3] with the colour bar and its labels to its right (gap black) -> [h, w + gap + BAR + LABELS, 3]. */
export async function withColourBar(
  rgb: Uint8Array,
  w: number,
  h: number,
  scale: ColourScale,
  gap = 4,
): Promise<{ data: Uint8Array; width: number }> {
  const W = w + gap + BAR + LABELS;
  const out = new Uint8Array(W * h * 3);
  const bar = colourBar(h, scale);
  for (let y = 0; y < h; y++) {
    out.set(rgb.subarray(y * w * 3, (y + 1) * w * 3), y * W * 3);
    out.set(bar.subarray(y * BAR * 3, (y + 1) * BAR * 3), (y * W + w + gap) * 3);
  }
  await drawBarLabels(out, W, h, scale);
  return { data: out, width: W };
}
