/**
 * Per-image features (store.ts) stacked into the batch layout scoring takes:
 * stage features [n, H, W, C] per stage and image tokens [n, D].
 */
import type { FeatureData, FeatureStorage, ImageTokens, StageFeatures } from '../core/types.js';
import type { ImageFeatures, StageDims } from './types.js';

/** Allocates `length` values in a storage (default: plain arrays; pipeline: shared with the compute worker). */
export type FeatureAlloc = (storage: FeatureStorage, length: number) => FeatureData;

export const plainFeatures: FeatureAlloc = (storage, length) =>
  storage === 'float16' ? new Uint16Array(length) : new Float32Array(length);

/** Stage k of every image, one after the other: [n, H_k, W_k, C_k] per stage. */
export function stackStages(
  images: readonly ImageFeatures[],
  dims: readonly StageDims[],
  storage: FeatureStorage,
  alloc: FeatureAlloc = plainFeatures,
): StageFeatures[] {
  const n = images.length;
  return dims.map((s, k) => {
    const per = s.h * s.w * s.c;
    const data = alloc(storage, n * per);
    images.forEach((f, i) => {
      const x = f.stages[k]!;
      if ((x instanceof Uint16Array) !== (storage === 'float16') || x.length !== per) {
        throw new Error(`stage ${k} of image ${i}: ${x.length} values, not ${storage} [${s.h}, ${s.w}, ${s.c}]`);
      }
      (data as Float32Array).set(x as Float32Array, i * per); // same storage (checked)
    });
    return { n, h: s.h, w: s.w, c: s.c, data };
  });
}

/** The image tokens [n, D]. */
export function stackTokens(images: readonly ImageFeatures[], d: number): ImageTokens {
  const data = new Float32Array(images.length * d);
  images.forEach((f, i) => data.set(f.token, i * d));
  return { n: images.length, d, data };
}
