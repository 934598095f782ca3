/**
 * Per-family input preprocessing, as the reference feeds each backbone (golden README §3):
 *
 * - CLIP (open_clip `image_transform`, eval): PIL BICUBIC resize to S×S, x/255, then
 *   (x - mean) / std with the OpenAI constants.
 * - DINO / DINOv2 (MuSc's MVTecDataset transform): PIL BILINEAR resize to S×S, x/255, then
 *   ImageNet mean / std.
 *
 * All arithmetic after the 8-bit resize is float32, in torchvision's order:
 * `fround(fround(fround(v / 255) - mean) / std)`. Output: Float32Array [3, S, S] (CHW, RGB).
 */
import type { RgbImage } from '../image/decode.js';
import { resizePil, type PilFilter } from '../image/resample.js';

export const OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073] as const;
export const OPENAI_STD = [0.26862954, 0.26130258, 0.27577711] as const;
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

export interface PreprocessSpec {
  filter: PilFilter;
  mean: readonly number[];
  std: readonly number[];
}

export type VitFamily = 'clip' | 'dino' | 'dinov2';

export function preprocessSpec(family: VitFamily): PreprocessSpec {
  return family === 'clip'
    ? { filter: 'bicubic', mean: OPENAI_MEAN, std: OPENAI_STD }
    : { filter: 'bilinear', mean: IMAGENET_MEAN, std: IMAGENET_STD };
}

/** 8-bit RGB [H, W, 3] -> normalised float32 [3, S, S] (PIL resize, /255, (x - mean) / std). */
export function preprocessImage(img: RgbImage, size: number, spec: PreprocessSpec): Float32Array {
  const r = resizePil(img, size, size, spec.filter);
  const plane = size * size;
  const out = new Float32Array(3 * plane);
  const f = Math.fround;
  for (let c = 0; c < 3; c++) {
    const m = f(spec.mean[c]);
    const s = f(spec.std[c]);
    // lookup table: the 256 possible outputs of this channel
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = f(f(f(v / 255) - m) / s);
    const dst = c * plane;
    for (let i = 0; i < plane; i++) out[dst + i] = lut[r.data[i * 3 + c]];
  }
  return out;
}

/** The family's preprocessing: decoded image -> [3, S, S]. */
export function preprocessFor(family: VitFamily, img: RgbImage, size: number): Float32Array {
  return preprocessImage(img, size, preprocessSpec(family));
}
