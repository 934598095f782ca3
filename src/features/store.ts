/**
 * The feature store: the one extraction loop of musc. For a list of image files, in batches of
 * `batchSize` (the same batches whatever is cached):
 *
 *   read bytes -> content hash -> cache lookup (verified, cache.ts)
 *     hit:  the cached features
 *     miss: decode -> preprocess [3, S, S] -> one backbone call per batch [B, 3, S, S]
 *           -> per image: stage features [H, W, C] in the store's storage (float16 or float32)
 *              and the image token [D] -> cache write (atomic)
 *
 * A file that cannot be read or decoded follows the bad-file policy (types.ts BadFilePolicy).
 * Every image must give the same stage shapes and token length (checked; a cache of another
 * backbone is caught here). Used by scoring runs (pipeline/run-category.ts), reference images
 * (pipeline/references.ts) and `musc tokens` (rscin-plugin.ts).
 */
import { performance } from 'node:perf_hooks';
import { toFloat16 } from '../io/float16.js';
import { decodeRgb, decodeRgbBytes, readImageBytes, type RgbImage } from '../image/decode.js';
import { DatasetError } from '../datasets/types.js';
import type { FeatureStorage } from '../core/types.js';
import { sameDims } from './cache.js';
import { inputLength } from '../backbones/types.js';
import {
  DEFAULT_FEATURE_STORAGE,
  type ExtractResult,
  type ExtractTimings,
  type FeatureStoreOptions,
  type ImageFeatures,
  type ImageRef,
  type SkippedImage,
  type StageDims,
} from './types.js';

/** Thrown with the 'strict' policy when an image cannot be read or decoded. */
export class ImageSkipError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageSkipError';
  }
}

/** Cache-verification warnings listed one by one per store; further ones are summed up in one line. */
const LISTED_DAMAGED = 10;

/** One image ready for the batch: features from the cache, or a preprocessed input [3, S, S]. */
type Loaded =
  | { index: number; feat: ImageFeatures }
  | { index: number; x: Float32Array; key: string | null; width: number; height: number; feat?: ImageFeatures };
type ToRun = Extract<Loaded, { x: Float32Array }>;

export class FeatureStore {
  readonly storage: FeatureStorage;
  /** milliseconds spent so far */
  readonly timings: ExtractTimings = { decode: 0, backbone: 0 };
  /** stage shapes and token length: known after the first extracted image */
  dims: StageDims[] | null = null;
  tokenDim = 0;
  /** cache files that failed verification and were recomputed */
  damaged = 0;
  private cacheWritable = true;

  constructor(private readonly o: FeatureStoreOptions) {
    this.storage = o.storage ?? DEFAULT_FEATURE_STORAGE;
    if (o.cache && o.cache.storage !== this.storage) throw new Error(`feature cache keeps ${o.cache.storage}, the run ${this.storage}`);
  }

  /** Features of every file of `list` (batches in list order); `onChunk(n)` after each batch of n files. */
  async extract(list: readonly ImageRef[], onChunk?: (files: number) => void): Promise<ExtractResult> {
    const images: ExtractResult['images'] = [];
    const skipped: SkippedImage[] = [];
    const bs = Math.max(1, this.o.batchSize ?? 4);
    for (let b = 0; b < list.length; b += bs) {
      this.o.beforeBatch?.();
      const chunk = list.slice(b, b + bs);
      const loaded: Loaded[] = [];
      for (const [i, ref] of chunk.entries()) {
        const l = await this.load(ref, b + i, skipped);
        if (l) loaded.push(l);
      }
      await this.runBatch(loaded);
      for (const l of loaded) images.push({ index: l.index, features: l.feat! });
      onChunk?.(chunk.length);
    }
    return { images, skipped };
  }

  /**
   * Stage shapes from the first readable file (from the cache, or extracted alone and cached),
   * before the real extraction; skips are not recorded here. Null when no file is readable.
   */
  async probe(list: readonly ImageRef[]): Promise<StageDims[] | null> {
    for (let i = 0; i < list.length && !this.dims; i++) {
      const l = await this.load(list[i]!, i, []);
      if (l && 'x' in l) await this.runBatch([l]);
    }
    return this.dims;
  }

  private decodeOne(path: string, bytes: Buffer | null): Promise<RgbImage> {
    if (this.o.decode) return this.o.decode(path);
    const o = this.o.maxPixels !== undefined ? { maxPixels: this.o.maxPixels } : {};
    return bytes ? decodeRgbBytes(path, bytes, o) : decodeRgb(path, o);
  }

  /** Cache lookup, else decode + preprocess one image; null when skipped. */
  private async load(ref: ImageRef, index: number, skipped: SkippedImage[]): Promise<Loaded | null> {
    let t0 = performance.now();
    let img: RgbImage;
    let key: string | null = null;
    try {
      const cache = this.o.cache;
      const bytes = cache ? await readImageBytes(ref.path) : null;
      if (cache && bytes) {
        key = cache.key(bytes);
        const hit = this.lookup(key, ref);
        if (hit) return { index, feat: hit };
      }
      img = await this.decodeOne(ref.path, bytes);
    } catch (e) {
      this.badFile(ref, e, skipped);
      return null;
    } finally {
      this.timings.decode += performance.now() - t0;
    }
    t0 = performance.now();
    const x = await this.o.backbone.preprocess(img);
    this.timings.backbone += performance.now() - t0;
    return { index, x, key, width: img.width, height: img.height };
  }

  /** A verified cache entry, or null (a damaged entry is warned about and recomputed). */
  private lookup(key: string, ref: ImageRef): ImageFeatures | null {
    const cache = this.o.cache!;
    const r = cache.read(key, this.dims ? { dims: this.dims, tokenDim: this.tokenDim } : null);
    if (r.kind === 'corrupt') {
      this.damaged++;
      const file = cache.pathOf(key);
      if (this.damaged <= LISTED_DAMAGED) {
        this.o.warn?.(`feature cache file ${file} (${ref.rel ?? ref.path}): ${r.reason}; its features were recomputed`);
      } else if (this.damaged === LISTED_DAMAGED + 1) {
        this.o.warn?.(`more feature cache files in ${cache.dir} failed verification; their features were recomputed`);
      }
    }
    if (r.kind !== 'hit') return null;
    const f = r.features;
    if (!this.dims) {
      this.dims = f.dims;
      this.tokenDim = f.token.length;
    }
    return this.o.tokensOnly ? { ...f, stages: [] } : f;
  }

  /** Applies the bad-file policy to a file that could not be read or decoded. */
  private badFile(ref: ImageRef, e: unknown, skipped: SkippedImage[]): void {
    const reason = (e as { reason?: string }).reason ?? (e as Error).message.replace(`${ref.path}: `, '');
    const policy = this.o.badFiles ?? 'skip';
    if (policy === 'strict') throw new ImageSkipError(`${ref.path}: ${reason} (--strict)`);
    if (policy === 'error') throw new DatasetError(`${this.o.what ? `${this.o.what} ` : ''}${ref.path}: ${reason}`);
    skipped.push({ path: ref.rel ?? ref.path, reason });
  }

  /** Runs the backbone on the loaded inputs that are not cached (one batch) and caches them. */
  private async runBatch(loaded: Loaded[]): Promise<void> {
    const inputs = loaded.filter((l): l is ToRun => 'x' in l);
    if (inputs.length === 0) return;
    const per = inputLength(this.o.backbone);
    const batch = new Float32Array(inputs.length * per); // [B, 3, S, S] (and [3, F, F] per fused size after each image's)
    inputs.forEach((v, i) => {
      if (v.x.length !== per) throw new Error(`backbone preprocess returned ${v.x.length} values, expected ${per}`);
      batch.set(v.x, i * per);
    });
    const t0 = performance.now();
    const f = await this.o.backbone.extract(batch, inputs.length);
    this.timings.backbone += performance.now() - t0;
    const got = f.stages.map((s) => ({ h: s.h, w: s.w, c: s.c }));
    this.checkDims(got, f.imageTokens.d);
    for (let i = 0; i < inputs.length; i++) {
      const v = inputs[i]!;
      const full: ImageFeatures = {
        stages: f.stages.map((s) => {
          const one = s.data.subarray(i * s.h * s.w * s.c, (i + 1) * s.h * s.w * s.c);
          return this.storage === 'float16' ? toFloat16(one) : one.slice();
        }),
        token: f.imageTokens.data.slice(i * f.imageTokens.d, (i + 1) * f.imageTokens.d),
        dims: got,
        width: v.width,
        height: v.height,
      };
      if (v.key) await this.cachePut(v.key, full);
      v.feat = this.o.tokensOnly ? { ...full, stages: [] } : full;
    }
  }

  /** The first batch sets the shapes; every later one (and every cache hit) must have them. */
  private checkDims(got: StageDims[], tokenDim: number): void {
    if (!this.dims) {
      this.dims = got;
      this.tokenDim = tokenDim;
    } else if (!sameDims({ dims: this.dims, tokenDim: this.tokenDim }, got, tokenDim)) {
      const c = this.o.cache;
      const hint = c ? `: delete the feature cache ${c.dir} or run with --no-cache` : '';
      throw new Error(`backbone features have shapes ${JSON.stringify(got)}, the cached ones ${JSON.stringify(this.dims)}${hint}`);
    }
  }

  /** Writes one entry; a cache that cannot be written is warned about once and then left alone. */
  private async cachePut(key: string, feat: ImageFeatures): Promise<void> {
    const cache = this.o.cache;
    if (!cache || !this.cacheWritable) return;
    try {
      await cache.put(key, feat);
    } catch (e) {
      this.cacheWritable = false;
      this.o.warn?.(`feature cache ${cache.dir} is not writable (${(e as Error).message}): features are not cached`);
    }
  }
}
