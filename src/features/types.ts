/**
 * Types of the feature store (src/features/store.ts): what one image's backbone features are,
 * what a caller gives (image files) and gets back (features in list order, skipped files).
 */
import type { FeatureData, FeatureStorage } from '../core/types.js';
import type { Backbone } from '../backbones/types.js';
import type { RgbImage } from '../image/decode.js';
import type { FeatureCache } from './cache.js';

/**
 * Stage features are kept as float16 between the backbone and scoring (and in the feature cache):
 * half the memory and disk; LNAMD and MSM compute in float32. Measured on bottle, glass and
 * magnetic_tile against float32 storage: see README, Performance.
 */
export const DEFAULT_FEATURE_STORAGE: FeatureStorage = 'float16';

/** Grid and channels of one backbone stage. */
export interface StageDims {
  h: number;
  w: number;
  c: number;
}

/** One image's backbone output. */
export interface ImageFeatures {
  /** per stage [H, W, C] channels-last, in the store's feature storage ([] with `tokensOnly`) */
  stages: FeatureData[];
  /** [D] the image-level token */
  token: Float32Array;
  dims: StageDims[];
  /** decoded image size */
  width: number;
  height: number;
}

/** An image file to extract: its path, and how skips name it (default: the path). */
export interface ImageRef {
  path: string;
  rel?: string;
}

export interface SkippedImage {
  path: string;
  reason: string;
}

/**
 * What happens to a file that cannot be read or decoded:
 *   skip    recorded in `skipped` with the reason, extraction goes on (scoring runs)
 *   strict  ImageSkipError '<path>: <reason> (--strict)' (scoring runs with --strict)
 *   error   DatasetError '<what> <path>: <reason>' (references, `musc tokens`: every file is needed)
 */
export type BadFilePolicy = 'skip' | 'strict' | 'error';

export interface FeatureStoreOptions {
  backbone: Pick<Backbone, 'imageSize' | 'borderPad' | 'fuseSizes' | 'preprocess' | 'extract'>; // the input length checked is inputLength's
  /** how stage features are kept (default DEFAULT_FEATURE_STORAGE); must match the cache's */
  storage?: FeatureStorage;
  /** images per backbone call (default 4) */
  batchSize?: number;
  /** per-image cache keyed by the file's content hash (absent: none) */
  cache?: FeatureCache;
  /** image decoder (default: decode.ts, with `maxPixels`) */
  decode?: (file: string) => Promise<RgbImage>;
  maxPixels?: number;
  badFiles?: BadFilePolicy;
  /** how a file is named in 'error' messages, e.g. 'reference image' */
  what?: string;
  /** keep the image tokens only (no stage features): `musc tokens` */
  tokensOnly?: boolean;
  /** warnings (cache not writable, cache file failed verification) */
  warn?: (line: string) => void;
  /** called before each batch (e.g. checkInterrupted) */
  beforeBatch?: () => void;
}

/** One extracted image: its position in the list given to `extract`, and its features. */
export interface ExtractedImage {
  index: number;
  features: ImageFeatures;
}

export interface ExtractResult {
  /** in list order, without the skipped ones */
  images: ExtractedImage[];
  skipped: SkippedImage[];
}

/** Milliseconds spent: reading + cache lookup + decoding, and preprocessing + backbone. */
export interface ExtractTimings {
  decode: number;
  backbone: number;
}
