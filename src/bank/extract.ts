/**
 * The one adapter between banks and feature extraction: image bytes in, float16 stage features
 * and image tokens out (decode -> backbone preprocess -> backbone, in batches). An image that
 * cannot be decoded is skipped with its reason. (When the FeatureStore of src/features/ lands,
 * this is the one place to switch.)
 */
import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { decodeRgbBytes, type RgbImage } from '../image/decode.js';
import { toFloat16 } from '../io/float16.js';
import { sharedFeatures } from '../compute/worker.js';
import type { Backbone } from '../backbones/types.js';
import type { StageFeatures } from '../core/types.js';
import type { ImageInput } from './types.js';

export interface ExtractedImage {
  /** index into the inputs */
  index: number;
  name: string;
  /** sha256 of the bytes */
  sha256: string;
  width: number;
  height: number;
  /** per stage [h, w, C] float16 bit patterns */
  stages: Uint16Array[];
  /** [D] */
  token: Float32Array;
  decodeMs: number;
  /** this image's share of its batch's backbone time */
  backboneMs: number;
}

export interface Extraction {
  images: ExtractedImage[];
  skipped: { name: string; reason: string }[];
  /** per stage grid and channels (null when no image was read) */
  dims: { h: number; w: number; c: number }[] | null;
  tokenDim: number;
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

type Decoded = { index: number; img: RgbImage; x: Float32Array; decodeMs: number };

/** Features of the readable inputs, in input order; `onProgress(done, total)` after each batch. */
export async function extractImages(
  inputs: ImageInput[], backbone: Pick<Backbone, 'imageSize' | 'preprocess' | 'extract'>,
  opts: { batchSize?: number; maxPixels?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<Extraction> {
  const out: Extraction = { images: [], skipped: [], dims: null, tokenDim: 0 };
  const bs = Math.max(1, opts.batchSize ?? 4), S = backbone.imageSize, per = 3 * S * S;
  for (let b = 0; b < inputs.length; b += bs) {
    const batch: Decoded[] = [];
    for (let index = b; index < Math.min(inputs.length, b + bs); index++) {
      const t0 = performance.now();
      try {
        const img = await decodeRgbBytes(inputs[index]!.name, inputs[index]!.bytes, opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {});
        const x = await backbone.preprocess(img);
        if (x.length !== per) throw new Error(`backbone preprocess returned ${x.length} values, expected 3x${S}x${S}`);
        batch.push({ index, img, x, decodeMs: performance.now() - t0 });
      } catch (e) {
        if ((e as Error).name !== 'ImageDecodeError') throw e;
        out.skipped.push({ name: inputs[index]!.name, reason: (e as { reason: string }).reason });
      }
    }
    if (batch.length > 0) await runBatch(batch, inputs, backbone, out);
    opts.onProgress?.(Math.min(inputs.length, b + bs), inputs.length);
  }
  return out;
}

async function runBatch(batch: Decoded[], inputs: ImageInput[], backbone: Pick<Backbone, 'imageSize' | 'extract'>, out: Extraction): Promise<void> {
  const per = batch[0]!.x.length;
  const x = new Float32Array(batch.length * per); // [B, 3, S, S]
  batch.forEach((d, i) => x.set(d.x, i * per));
  const t0 = performance.now();
  const f = await backbone.extract(x, batch.length);
  const share = (performance.now() - t0) / batch.length;
  const dims = f.stages.map((s) => ({ h: s.h, w: s.w, c: s.c }));
  out.dims ??= dims;
  out.tokenDim ||= f.imageTokens.d;
  batch.forEach((d, i) => {
    out.images.push({
      index: d.index, name: inputs[d.index]!.name, sha256: sha256(inputs[d.index]!.bytes), width: d.img.width, height: d.img.height,
      stages: f.stages.map((s) => toFloat16(s.data.subarray(i * s.h * s.w * s.c, (i + 1) * s.h * s.w * s.c))),
      token: f.imageTokens.data.slice(i * f.imageTokens.d, (i + 1) * f.imageTokens.d),
      decodeMs: d.decodeMs, backboneMs: share,
    });
  });
}

/** Per stage [n, h, w, C] float16 on shared memory (the compute worker reads it without a copy). */
export function stackStages(images: { stages: Uint16Array[] }[], dims: { h: number; w: number; c: number }[]): StageFeatures<Uint16Array>[] {
  return dims.map((d, l) => {
    const per = d.h * d.w * d.c;
    const data = sharedFeatures('float16', images.length * per) as Uint16Array;
    images.forEach((im, i) => {
      if (im.stages[l]!.length !== per) throw new Error(`stage ${l}: an image has ${im.stages[l]!.length} values, expected ${d.h}x${d.w}x${d.c}`);
      data.set(im.stages[l]!, i * per);
    });
    return { n: images.length, h: d.h, w: d.w, c: d.c, data };
  });
}
