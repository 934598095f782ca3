/**
 * The one adapter between banks and feature extraction: image bytes in, float16 stage features
 * and image tokens out, through the FeatureStore (src/features/store.ts: decode -> preprocess ->
 * backbone, in batches; no cache: a bank or a prediction reads each image once). An input that
 * cannot be decoded is skipped with its reason.
 */

import type { Backbone } from '../backbones/types.js';
import { sharedFeatures } from '../compute/worker.js';
import type { StageFeatures } from '../core/types.js';
import { stackStages as stackFeatures } from '../features/stack.js';
import { FeatureStore } from '../features/store.js';
import type { ImageFeatures, StageDims } from '../features/types.js';
import { decodeRgbBytes } from '../image/decode.js';
import { sha256Hex } from '../io/sha256.js';
import type { ImageInput } from './types.js';

export interface ExtractedImage {
  /** index into the inputs */
  index: number;
  name: string;
  /** sha256 of the bytes */
  sha256: string;
  width: number;
  height: number;
  /** float16 stage features [h, w, C] per stage and the token [D] */
  features: ImageFeatures;
  token: Float32Array;
  /** this image's share of the decode and backbone time */
  decodeMs: number;
  backboneMs: number;
}

export interface Extraction {
  images: ExtractedImage[];
  skipped: { name: string; reason: string }[];
  /** per stage grid and channels (null when no image was read) */
  dims: StageDims[] | null;
  tokenDim: number;
}

export const sha256 = (bytes: Uint8Array): string => sha256Hex(bytes);

/** Features of the readable inputs, in input order; `onProgress(done, total)` after each batch. */
export async function extractImages(
  inputs: ImageInput[],
  backbone: Pick<Backbone, 'imageSize' | 'preprocess' | 'extract'>,
  opts: { batchSize?: number; maxPixels?: number; onProgress?: (done: number, total: number) => void; beforeBatch?: () => void } = {},
): Promise<Extraction> {
  const decodeOpts = opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {};
  const store = new FeatureStore({
    backbone,
    storage: 'float16',
    batchSize: opts.batchSize ?? 4,
    badFiles: 'skip',
    beforeBatch: opts.beforeBatch,
    decode: (key) => decodeRgbBytes(inputs[Number(key)]!.name, inputs[Number(key)]!.bytes, decodeOpts), // key = input index
  });
  let done = 0;
  const res = await store.extract(
    inputs.map((im, i) => ({ path: String(i), rel: im.name })),
    (n) => {
      done += n;
      opts.onProgress?.(done, inputs.length);
    },
  );
  const count = Math.max(1, res.images.length);
  const per = { decode: store.timings.decode / count, backbone: store.timings.backbone / count };
  return {
    images: res.images.map(({ index, features }) => ({
      index,
      name: inputs[index]!.name,
      sha256: sha256(inputs[index]!.bytes),
      width: features.width,
      height: features.height,
      features,
      token: features.token,
      decodeMs: per.decode,
      backboneMs: per.backbone,
    })),
    skipped: res.skipped.map((s) => ({ name: s.path, reason: s.reason })),
    dims: store.dims,
    tokenDim: store.tokenDim,
  };
}

/** Per stage [n, h, w, C] float16 on shared memory (the compute worker reads it without a copy). */
export function stackStages(images: { features: ImageFeatures }[], dims: StageDims[]): StageFeatures<Uint16Array>[] {
  return stackFeatures(
    images.map((im) => im.features),
    dims,
    'float16',
    sharedFeatures,
  ) as StageFeatures<Uint16Array>[];
}
