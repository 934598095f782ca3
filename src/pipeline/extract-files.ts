/**
 * Backbone features of a list of image files, in batches: decode, preprocess, extract. Used where
 * every file must be read (reference images, `musc tokens`); an unreadable file is a DatasetError
 * naming it. (Scoring runs use run-category.ts, which skips bad images and uses the cache.)
 */
import { decodeRgb, type RgbImage } from '../image/decode.js';
import { DatasetError } from '../datasets/types.js';
import type { Backbone } from '../backbones/types.js';
import type { BackboneFeatures } from '../core/types.js';

export interface ExtractFilesOptions {
  batchSize?: number;
  decode?: (file: string) => Promise<RgbImage>;
  /** how a file is named in errors, e.g. 'reference image' */
  what?: string;
}

/** Calls `onBatch(features, offset, count)` for files [offset, offset + count) in order. */
export async function extractFiles(
  files: string[],
  backbone: Pick<Backbone, 'imageSize' | 'preprocess' | 'extract'>,
  opts: ExtractFilesOptions,
  onBatch: (features: BackboneFeatures, offset: number, count: number) => void,
): Promise<void> {
  const decode = opts.decode ?? ((f: string) => decodeRgb(f));
  const S = backbone.imageSize, per = 3 * S * S, bs = Math.max(1, opts.batchSize ?? 4);
  for (let b = 0; b < files.length; b += bs) {
    const chunk = files.slice(b, b + bs);
    const batch = new Float32Array(chunk.length * per); // [B, 3, S, S]
    for (const [i, f] of chunk.entries()) {
      let img: RgbImage;
      try {
        img = await decode(f);
      } catch (e) {
        throw new DatasetError(`${opts.what ? `${opts.what} ` : ''}${f}: ${(e as Error).message.replace(`${f}: `, '')}`);
      }
      const x = await backbone.preprocess(img);
      if (x.length !== per) throw new Error(`backbone preprocess returned ${x.length} values, expected 3x${S}x${S}`);
      batch.set(x, i * per);
    }
    onBatch(await backbone.extract(batch, chunk.length), b, chunk.length);
  }
}
