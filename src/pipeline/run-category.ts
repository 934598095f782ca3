/**
 * The end-to-end MuSc run for one category, following models/musc.py `make_category_data`:
 *
 *   for each subset (datasets/*.py sub_datasets, divide_num):
 *     decode + preprocess + backbone in batches; keep the stage features and image tokens
 *     scorePatches (LNAMD + MSM over stages and r) -> patch scores [n_s, h, w]
 *     bilinear (align_corners) upsampling to the input size -> maps [n_s, S, S]
 *   image score = max of each map (ac_score)
 *   RsCIN over the whole category with the image tokens (k_list)
 *   metrics (when labels exist): RsCIN scores vs labels, maps vs masks at S x S
 *
 * A bad image is recorded and skipped (or fails the run with strict). Results are put back in
 * dataset order (the reference concatenates subsets; metrics do not depend on the order).
 */
import { performance } from 'node:perf_hooks';
import { sharedFeatures } from '../compute/worker.js';
import { toFloat16 } from '../io/float16.js';
import { decodeRgb, decodeRgbBytes, readImageBytes, type RgbImage } from '../image/decode.js';
import type { FeatureData, StageFeatures } from '../core/types.js';
import { divideSubsets } from '../datasets/divide.js';
import { loadMask, MaskNotes } from '../datasets/masks.js';
import { DatasetError, type Category, type DatasetItem } from '../datasets/types.js';
import { appendReferences } from './references.js';
import { f1OptimalThreshold } from '../metrics/roc.js';
import { decide } from '../threshold.js';
import { autoDivideNum, estimateSubsetBytes, readablePaths, type StageDims } from './memory.js';
import type { ImageFeatures } from './feature-cache.js';
import { checkInterrupted } from './interrupt.js';
import { DEFAULT_FEATURE_STORAGE, type CategoryResult, type PipelineDeps, type PipelineOptions, type SkippedImage, type StageTimings } from './types.js';

/** Thrown with strict when an image cannot be decoded. */
export class ImageSkipError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageSkipError';
  }
}

interface Extracted {
  /** index into the category's items */
  item: number;
  /** per stage [H, W, C], in the run's feature storage */
  stages: FeatureData[];
  /** [D] */
  token: Float32Array;
}

/** One image ready for the batch: features from the cache, or a preprocessed input [3, S, S]. */
type Loaded =
  | { idx: number; feat: ImageFeatures }
  | { idx: number; x: Float32Array; key: string | null; width: number; height: number; feat?: ImageFeatures };

export async function runCategory(category: Category, deps: PipelineDeps, opts: PipelineOptions): Promise<CategoryResult> {
  const all = category.items;
  if (all.length === 0) throw new DatasetError(`category '${category.name}': no images found under ${category.root}`);
  const cache = deps.cache;
  if (opts.mode === 'musc-plus' && !opts.references) throw new Error('MuSc+ (mode musc-plus) needs reference images');
  const S = deps.backbone.imageSize;
  const storage = opts.featureStorage ?? DEFAULT_FEATURE_STORAGE;
  if (cache && cache.storage !== storage) throw new Error(`feature cache keeps ${cache.storage}, the run ${storage}`);
  const t: StageTimings = { decode: 0, backbone: 0, scoring: 0, lnamd: 0, msm: 0, rscin: 0, metrics: 0, write: 0 };
  const warnings = [...category.warnings];
  const skipped: SkippedImage[] = [];
  const unreadable = category.unreadable ?? [];
  if (opts.strict && unreadable.length > 0) throw new ImageSkipError(`${unreadable[0]!.path}: ${unreadable[0]!.reason} (--strict)`);
  let dims: StageDims[] | null = null;
  let tokenDim = 0;
  /** decoded image size per item (mask checks) */
  const sizeOf = new Map<number, [number, number]>();
  let cacheWritable = true;

  const decodeOne = (path: string, bytes: Buffer | null): Promise<RgbImage> => {
    if (deps.decode) return deps.decode(path);
    const o = opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {};
    return bytes ? decodeRgbBytes(path, bytes, o) : decodeRgb(path, o);
  };

  /** cache lookup, else decode + preprocess one image; null when skipped */
  const load = async (idx: number): Promise<Loaded | null> => {
    const it = all[idx]!;
    let t0 = performance.now();
    let img: RgbImage;
    let key: string | null = null;
    try {
      const bytes = cache ? await readImageBytes(it.path) : null;
      if (cache && bytes) {
        key = cache.key(bytes);
        const hit = cache.get(key, dims ? { dims, tokenDim } : null);
        if (hit) {
          if (!dims) {
            dims = hit.dims;
            tokenDim = hit.token.length;
          }
          return { idx, feat: hit };
        }
      }
      img = await decodeOne(it.path, bytes);
    } catch (e) {
      const reason = (e as { reason?: string }).reason ?? (e as Error).message.replace(`${it.path}: `, '');
      if (opts.strict) throw new ImageSkipError(`${it.path}: ${reason} (--strict)`);
      skipped.push({ path: it.rel, reason });
      return null;
    } finally {
      t.decode += performance.now() - t0;
    }
    t0 = performance.now();
    const x = await deps.backbone.preprocess(img);
    t.backbone += performance.now() - t0;
    return { idx, x, key, width: img.width, height: img.height };
  };

  /** runs the backbone on the loaded inputs that are not cached (one batch) and caches them */
  const runBatch = async (loaded: Loaded[]): Promise<void> => {
    const inputs = loaded.filter((l): l is Extract<Loaded, { x: Float32Array }> => 'x' in l);
    if (inputs.length === 0) return;
    const per = 3 * S * S;
    const batch = new Float32Array(inputs.length * per); // [B, 3, S, S]
    inputs.forEach((v, i) => {
      if (v.x.length !== per) throw new Error(`backbone preprocess returned ${v.x.length} values, expected 3x${S}x${S}`);
      batch.set(v.x, i * per);
    });
    const t0 = performance.now();
    const f = await deps.backbone.extract(batch, inputs.length);
    t.backbone += performance.now() - t0;
    const got = f.stages.map((s) => ({ h: s.h, w: s.w, c: s.c }));
    if (!dims) {
      dims = got;
      tokenDim = f.imageTokens.d;
    } else if (got.length !== dims.length || got.some((d, k) => d.h !== dims![k]!.h || d.w !== dims![k]!.w || d.c !== dims![k]!.c) || f.imageTokens.d !== tokenDim) {
      throw new Error(`backbone features have shapes ${JSON.stringify(got)}, the cached ones ${JSON.stringify(dims)}${cache ? `: delete the feature cache ${cache.dir} or run with --no-cache` : ''}`);
    }
    for (let i = 0; i < inputs.length; i++) {
      const v = inputs[i]!;
      v.feat = {
        stages: f.stages.map((s) => {
          const one = s.data.subarray(i * s.h * s.w * s.c, (i + 1) * s.h * s.w * s.c);
          return storage === 'float16' ? toFloat16(one) : one.slice();
        }),
        token: f.imageTokens.data.slice(i * f.imageTokens.d, (i + 1) * f.imageTokens.d),
        dims: got, width: v.width, height: v.height,
      };
      if (cache && v.key && cacheWritable) {
        try {
          await cache.put(v.key, v.feat);
        } catch (e) {
          cacheWritable = false;
          warnings.push(`feature cache ${cache.dir} is not writable (${(e as Error).message}): features are not cached`);
        }
      }
    }
  };

  /** extracts a list of item indices in batches (the same batches whatever is cached); per image stage features + token */
  let extractedCount = 0;
  const extract = async (indices: number[]): Promise<Extracted[]> => {
    const out: Extracted[] = [];
    const bs = Math.max(1, opts.batchSize);
    for (let b = 0; b < indices.length; b += bs) {
      checkInterrupted();
      const chunk = indices.slice(b, b + bs);
      const loaded: Loaded[] = [];
      for (const idx of chunk) {
        const l = await load(idx);
        if (l) loaded.push(l);
      }
      await runBatch(loaded);
      for (const l of loaded) {
        const feat = l.feat!;
        sizeOf.set(l.idx, [feat.width, feat.height]);
        out.push({ item: l.idx, stages: feat.stages, token: feat.token });
      }
      extractedCount += chunk.length;
      opts.onProgress?.('extract', Math.min(extractedCount, all.length), all.length);
    }
    return out;
  };

  // subset division (optionally automatic from --max-memory; a probe image gives the feature sizes)
  const paths = all.map((it) => it.path);
  let divideNum = opts.divideNum;
  let estimatedBytes = 0;
  if (opts.maxMemoryMb !== undefined) {
    // one image (cached or extracted alone) gives the feature sizes
    for (let i = 0; i < all.length && !dims; i++) {
      const l = await load(i);
      if (l && 'x' in l) await runBatch([l]);
    }
    skipped.length = 0; // the probe's skips are found again below
    if (dims) {
      try {
        const readable = await readablePaths(paths, opts.maxPixels); // unreadable images take no memory
        const a = autoDivideNum(paths, dims, S, opts.maxMemoryMb * 2 ** 20, opts.divideNum, opts.seed, storage, readable);
        divideNum = a.divideNum;
      } catch (e) {
        throw new DatasetError(`category '${category.name}': ${(e as Error).message}`);
      }
    }
  }
  const subsetsAll = divideSubsets(paths, divideNum, opts.seed);
  for (const u of unreadable) skipped.push({ path: u.rel, reason: u.reason });

  // per subset: features -> MSM scores -> maps
  const mapOf = new Map<number, Float32Array>(); // item -> [S, S]
  const tokenOf = new Map<number, Float32Array>(); // item -> [D]
  const scoredSubsets: number[][] = [];
  for (let si = 0; si < subsetsAll.length; si++) {
    const ex = await extract(subsetsAll[si]!);
    if (ex.length === 0) continue;
    const n = ex.length;
    if (n < 2) {
      const what = subsetsAll.length > 1 ? `subset ${si + 1} of ${subsetsAll.length} of category '${category.name}'` : `category '${category.name}'`;
      throw new DatasetError(`${what} has only ${n} readable image (${all[ex[0]!.item]!.rel}): mutual scoring needs at least 2${subsetsAll.length > 1 ? ' (use a smaller --divide)' : ''}`);
    }
    const d: StageDims[] = dims!;
    const nRef = opts.references?.files.length ?? 0;
    if (si === 0) {
      // before the expensive part: what scoring will need (the largest subset)
      const largest = subsetsAll.reduce((a, s) => Math.max(a, s.length), 0) + nRef;
      opts.log?.(`${category.name}: scoring ${all.length} images in ${subsetsAll.length} subset${subsetsAll.length > 1 ? 's' : ''}; estimated memory for scoring about ${Math.ceil(estimateSubsetBytes(largest, d, S, storage) / 2 ** 20)} MB (largest subset ${largest} images)`);
    }
    estimatedBytes = Math.max(estimatedBytes, estimateSubsetBytes(n + nRef, d, S, storage));
    if (n + nRef < 5 && opts.mode !== 'musc-plus') warnings.push(`subset ${si + 1} of '${category.name}' has ${n} images: mutual scoring needs at least 5 for its interval (the reference gives NaN scores: int((N-1)*${opts.interval[1]}) = 0); here each patch is scored against its single nearest image, which is less reliable`);
    // StageFeatures [n, H, W, C] per stage
    const stages: StageFeatures[] = d.map((s, k) => {
      const per = s.h * s.w * s.c;
      const data = sharedFeatures(storage, n * per); // shared with the compute worker, not copied
      ex.forEach((e, i) => (data as Float32Array).set(e.stages[k] as Float32Array, i * per)); // same storage for every image
      return { n, h: s.h, w: s.w, c: s.c, data };
    });
    for (const e of ex) tokenOf.set(e.item, e.token);
    checkInterrupted();
    const t0 = performance.now();
    const pool = opts.references ? appendReferences(stages, opts.references) : stages; // references last
    const ps = await deps.scorer.scorePatches(pool, {
      rList: opts.rList, interval: opts.interval, device: opts.device, precision: opts.precision,
      ...(opts.references ? { references: nRef, mode: opts.mode ?? 'musc' } : {}),
    });
    t.lnamd += ps.timings?.lnamdMs ?? 0;
    t.msm += ps.timings?.msmMs ?? 0;
    const maps = deps.scorer.upsampleMaps(ps, S, S); // [n, S, S]
    t.scoring += performance.now() - t0;
    ex.forEach((e, i) => mapOf.set(e.item, maps.subarray(i * S * S, (i + 1) * S * S)));
    scoredSubsets.push(ex.map((e) => e.item));
    opts.onProgress?.('score', si + 1, subsetsAll.length);
  }

  // back to dataset order
  const keptIdx = all.map((_, i) => i).filter((i) => mapOf.has(i));
  if (keptIdx.length === 0) throw new DatasetError(`category '${category.name}': none of the ${all.length} images could be read (first: ${skipped[0]?.path}: ${skipped[0]?.reason})`);
  const pos = new Map(keptIdx.map((i, k) => [i, k]));
  const items: DatasetItem[] = keptIdx.map((i) => all[i]!);
  const N = items.length;
  const maps = new Float32Array(N * S * S);
  const tokens = new Float32Array(N * tokenDim);
  keptIdx.forEach((i, k) => {
    maps.set(mapOf.get(i)!, k * S * S);
    tokens.set(tokenOf.get(i)!, k * tokenDim);
  });
  const subsets = scoredSubsets.map((s) => s.map((i) => pos.get(i)!));

  let t0 = performance.now();
  const imageScores = deps.scorer.imageScoresFromMaps(maps, N);
  t.scoring += performance.now() - t0;

  t0 = performance.now();
  const rscinScores = deps.scorer.rscin(imageScores, { n: N, d: tokenDim, data: tokens }, opts.kList);
  t.rscin += performance.now() - t0;

  // metrics: only when every image has a label; pixel metrics when every defective image has a mask
  let masks: Uint8Array | null = null;
  let metrics: CategoryResult["metrics"] = null;
  const labeled = items.every((it) => it.label !== null);
  if (labeled && deps.metrics) {
    t0 = performance.now();
    const labels = Uint8Array.from(items, (it) => it.label ?? 0);
    const missing = items.filter((it) => it.label === 1 && !it.masks).length;
    if (missing === 0) {
      masks = new Uint8Array(N * S * S);
      const wrongSize: string[] = [];
      const maskNotes = new MaskNotes();
      for (let k = 0; k < N; k++) {
        const it = items[k]!;
        const img = sizeOf.get(keptIdx[k]!);
        try {
          masks.set(
            await loadMask(it.masks, S, opts.maskRule, opts.kind, (file, w, h) => {
              if (img && (img[0] !== w || img[1] !== h)) wrongSize.push(`${it.rel} is ${img[0]}x${img[1]}, its mask ${w}x${h}`);
            }, maskNotes),
            k * S * S,
          );
        } catch (e) {
          const msg = `mask of ${it.rel}: ${(e as Error).message}`;
          if (opts.strict) throw new ImageSkipError(`${msg} (--strict)`);
          warnings.push(`${msg}: pixel metrics not computed`);
          masks = null;
          break;
        }
      }
      warnings.push(...maskNotes.warnings());
      if (wrongSize.length > 0) warnings.push(`${wrongSize.length} mask${wrongSize.length > 1 ? 's do' : ' does'} not match the image size (both are resized to ${S}x${S}; check the pairing): ${wrongSize.slice(0, 3).join('; ')}${wrongSize.length > 3 ? '; ...' : ''}`);
    } else warnings.push(`${missing} defective images have no mask: pixel metrics not computed`);
    metrics = await deps.metrics({ imageScores: rscinScores, imageLabels: labels, ...(masks ? { maps, masks, height: S, width: S } : {}) });
    t.metrics += performance.now() - t0;
  }
  let f1Threshold: number | null = null;
  if (labeled && items.some((it) => it.label === 1) && items.some((it) => it.label === 0)) {
    const th = f1OptimalThreshold(rscinScores, Uint8Array.from(items, (it) => it.label ?? 0)).threshold;
    f1Threshold = Number.isFinite(th) ? th : null;
  }
  const decisions = opts.decision ? decide(rscinScores, opts.decision) : undefined;

  return {
    name: category.name, kind: category.kind, root: category.root, items, skipped, size: S, maps, imageScores, rscinScores,
    masks, metrics, subsets, divideNum, estimatedBytes, timings: t, warnings, f1Threshold,
    ...(decisions ? { decisions } : {}), ...(opts.references ? { referenceFiles: opts.references.files } : {}),
  };
}
