/**
 * The shapes of a bank (a saved, self-calibrated set of reference features of one product) and of
 * its predictions. See src/bank/index.ts for the public API and docs/architecture.md "Bank".
 */

import type { Backbone } from '../backbones/types.js';
import type { MsmPrecision } from '../core/kernel.js';
import type { ImageTokens, Interval, StageFeatures } from '../core/types.js';
import type { Calibration } from './calibration.js';

export const BANK_FORMAT = 'musc-bank';
export const BANK_FORMAT_VERSION = 1;
/**
 * The version of banks with per-stage degrees (scoring.stage_r_list): a musc that reads only
 * version 1 refuses them instead of scoring every stage at r_list. Banks without them stay version 1.
 */
export const BANK_FORMAT_VERSION_STAGE_R = 2;
/**
 * The version of banks with projected features (scoring.project, and the bases in features.safetensors):
 * a musc that reads only versions 1 and 2 refuses them instead of scoring unprojected features
 * against thresholds calibrated on projected ones. Such banks may have per-stage degrees too.
 */
export const BANK_FORMAT_VERSION_PROJECT = 3;
/**
 * The version of banks whose LNAMD rows are not unit vectors (scoring.norm_exponent): a musc that
 * reads only versions 1-3 refuses them instead of scoring unit features against thresholds
 * calibrated on others. Such banks may have per-stage degrees too.
 */
export const BANK_FORMAT_VERSION_NORM = 4;
/**
 * The version of banks with both: projected features whose rows keep their patch energy
 * (scoring.project and scoring.norm_exponent; core/project.ts projectRows). A musc that reads only
 * versions 1-4 refuses them (version 4's musc could not project such rows).
 */
export const BANK_FORMAT_VERSION_PROJECT_NORM = 5;
/**
 * The version of banks with reference-density normalisation (scoring.density_exponent, and each
 * normalised pass's densities in features.safetensors; core/density.ts): a musc that reads only
 * versions 1-5 refuses them instead of scoring plain MSM distances against thresholds calibrated on
 * normalised ones. Such banks may have per-stage degrees and a norm exponent too, not projection.
 */
export const BANK_FORMAT_VERSION_DENSITY = 6;
/**
 * The version of density-normalised banks whose normalisation is for the image scores only
 * (scoring.density_scope 'image'): a musc that reads only versions 1-6 refuses them instead of
 * normalising the maps too.
 */
export const BANK_FORMAT_VERSION_DENSITY_SCOPE = 7;
/** The versions this musc reads. */
export const BANK_FORMAT_VERSIONS: readonly number[] = [
  BANK_FORMAT_VERSION,
  BANK_FORMAT_VERSION_STAGE_R,
  BANK_FORMAT_VERSION_PROJECT,
  BANK_FORMAT_VERSION_NORM,
  BANK_FORMAT_VERSION_PROJECT_NORM,
  BANK_FORMAT_VERSION_DENSITY,
  BANK_FORMAT_VERSION_DENSITY_SCOPE,
];

/** The format version a bank's scoring settings need: the lowest that holds them. */
export function bankFormatVersion(
  scoring: Pick<BankManifest['scoring'], 'stage_r_list' | 'project' | 'norm_exponent' | 'density_exponent' | 'density_scope'>,
): number {
  if (scoring.density_scope !== undefined) return BANK_FORMAT_VERSION_DENSITY_SCOPE;
  if (scoring.density_exponent !== undefined) return BANK_FORMAT_VERSION_DENSITY;
  if (scoring.norm_exponent !== undefined)
    return scoring.project !== undefined ? BANK_FORMAT_VERSION_PROJECT_NORM : BANK_FORMAT_VERSION_NORM;
  if (scoring.project !== undefined) return BANK_FORMAT_VERSION_PROJECT;
  return scoring.stage_r_list ? BANK_FORMAT_VERSION_STAGE_R : BANK_FORMAT_VERSION;
}

/** One bank image: its name (relative path at build), content hash and original size. */
export interface BankImage {
  name: string;
  /** sha256 of the file's bytes */
  sha256: string;
  width: number;
  height: number;
}

/** A file of the bank directory, with its sha256 (verified by openBank). */
export interface BankFile {
  name: string;
  sha256: string;
  bytes: number;
}

/** How predict loads a bank's backbone: the manifest's settings (predict.ts loadChecked). */
export interface BankBackboneLoad {
  imageSize: number;
  stages: number[];
  device?: 'cpu' | 'cuda';
  weightsPath?: string;
  borderPad?: number;
  fuseSizes?: number[];
}

/** manifest.json of a bank directory. */
export interface BankManifest {
  format: typeof BANK_FORMAT;
  format_version: number;
  created: string;
  /** package versions at build (musc = package.json version) */
  software: { musc: string; node: string; onnxruntime: string; sharp: string };
  /**
   * border_pad: pixels of mirrored border (ResNets); absent in banks of older versions = 0.
   * fuse_sizes: input sizes fused with image_size (ResNets); absent in banks of older versions = [].
   */
  backbone: { name: string; weights_sha256: string; image_size: number; stages: number[]; border_pad?: number; fuse_sizes?: number[] };
  /**
   * image_score: 'max' or 'top:F' (src/core/maps.ts); absent in banks of older versions = 'max'.
   * score_grid: the patch-score grid (`--score-grid`); absent = the first stage's grid.
   */
  scoring: {
    r_list: number[];
    /** per-stage LNAMD degrees (`--stage-r-list`; core/plan.ts ScoringPlan.stageRList), each a subset of r_list; absent = every stage at r_list */
    stage_r_list?: number[][];
    interval: Interval;
    k_list: number[];
    msm_precision: MsmPrecision;
    feature_storage: 'float16';
    image_score?: string;
    /** LNAMD's target grid G x G (`--score-grid`); absent = the first stage's grid */
    score_grid?: number;
    /**
     * MSM on every (stage, r) bank projected on this many directions (`--project`; core/project.ts):
     * the bank's own, saved as F32 [K, C] tensors `basis_<projectKey>` in features.safetensors,
     * which new images are projected on too; absent = all channels (format version 3 only)
     */
    project?: number;
    /** LNAMD's norm exponent (`--norm-exponent`; core/lnamd.ts), in [0, 1); absent = 1, unit rows (format version 4 only) */
    norm_exponent?: number;
    /**
     * reference-density normalisation (`--density-exponent`; core/density.ts): one exponent, or one per
     * stage; each normalised pass's densities [n, P] (F64 tensors `density_<projectKey>` in
     * features.safetensors) are the bank's own, which new images' distances are normalised with
     * (format version 6 only)
     */
    density_exponent?: number | number[];
    /** with density_exponent: 'image' = the image scores only, the maps on MSM's distances (`--density-scope image`); absent = every score (format version 7 only) */
    density_scope?: 'image';
  };
  /** per stage patch grid and channels; image token length */
  features: { stages: { h: number; w: number; c: number }[]; token_dim: number };
  images: BankImage[];
  /** inputs not in the bank, with the reason */
  skipped: { name: string; reason: string }[];
  files: BankFile[];
  /** sha256 of this manifest's JSON without this field (manifestChecksum) */
  checksum: string;
}

/** An opened, verified bank held in memory. */
export interface Bank {
  /** the bank directory */
  path: string;
  manifest: BankManifest;
  /** per stage [N, h, w, C] float16 bit patterns */
  stages: StageFeatures<Uint16Array>[];
  /** [N, D] image tokens (RsCIN) */
  tokens: ImageTokens;
  /** with scoring.project: the projection basis [K, C] of every (stage, r) pass, by core/score.ts projectKey */
  bases?: Record<string, Float32Array>;
  /** with scoring.density_exponent: the densities [n, P] of every normalised (stage, r) pass, by core/score.ts projectKey */
  densities?: Record<string, Float64Array>;
  calibration: Calibration;
  /** the backbone, loaded by the first predict (closeBank disposes it) */
  backbone?: Backbone;
}

/** A connected region of the predicted defect mask, in original image pixels. */
export interface Region {
  /** 1..count, in raster order of the region's first pixel */
  id: number;
  /** bounding box: left, top, width, height (pixels of the original image) */
  x: number;
  y: number;
  width: number;
  height: number;
  /** pixels in the region */
  area: number;
  /** highest and mean anomaly score of its pixels (raw units) */
  peak: number;
  mean: number;
}

/** An anomaly map at the original image size: data [height, width], raw score units. */
export interface AnomalyMap {
  width: number;
  height: number;
  data: Float32Array;
}

/** Raw pixel values lo..hi span the colour bar; the pixel threshold sits in its middle (outputs/colour.ts). */
import type { ColourScale } from '../outputs/colour.js';
export type { ColourScale };

export interface ImagePrediction {
  name: string;
  /** the classification score: RsCIN of the image score within bank + image (raw units, calibration.ts) */
  score: number;
  /** the image score before RsCIN: maximum of the S x S anomaly map (as musc run's `score`) */
  imageScore: number;
  /** anomalib convention: 0.5 at the threshold, clipped to [0, 1] (calibration.ts normalizeScore) */
  normalized: number;
  verdict: 'OK' | 'NG';
  /** the image threshold used (NG iff score >= threshold) */
  threshold: number;
  /** pixels above it form the mask */
  pixelThreshold: number;
  /** the original image size */
  width: number;
  height: number;
  regions: Region[];
  /** colour scale of heatmaps and composites (fixed by the bank, the same for every image) */
  colourScale: ColourScale;
  /** milliseconds: this image's decode, and its share of the batch's backbone and scoring; its own post-processing */
  timings: { decodeMs: number; backboneMs: number; scoringMs: number; postMs: number };
  warnings: string[];
  /** anomaly map at the original size (with opts.maps) */
  map?: AnomalyMap;
  /** [height * width] 0/1 defect mask at the original size (with opts.maps) */
  mask?: Uint8Array;
  /** patch scores [h * w] (with opts.patches; tests) */
  patch?: { h: number; w: number; data: Float64Array };
}

export interface PredictOptions {
  /** image threshold override (raw score units); default: the bank's calibration */
  threshold?: number;
  /** pixel threshold override */
  pixelThreshold?: number;
  /** target false-alarm rate of the calibrated thresholds (default DEFAULT_FALSE_ALARM) */
  falseAlarm?: number;
  /** settings that must match the bank (an error names both when they differ) */
  expect?: { backbone?: string; imageSize?: number; stages?: number[] };
  /** RsCIN windows (default: the bank's k_list); [0] disables */
  kList?: number[];
  /** MSM precision (default: the bank's) */
  precision?: MsmPrecision;
  device?: 'cpu' | 'cuda';
  /** images per scoring batch (default 16) */
  batchSize?: number;
  /** keep the map and mask at the original size in each prediction */
  maps?: boolean;
  /** keep the patch scores (tests) */
  patches?: boolean;
  maxPixels?: number;
  /** progress: step, done, total */
  onProgress?: (step: 'extract' | 'score' | 'post', done: number, total: number) => void;
  /** the weight file, when the bank was built with one (--weights) */
  weightsPath?: string;
  /** backbone loader (default: the registry's loadBackbone) */
  loadBackbone?: (name: string, opts: BankBackboneLoad) => Promise<Backbone>;
}

export interface PredictOutput {
  predictions: ImagePrediction[];
  /** inputs that could not be read or scored, with the reason */
  skipped: { name: string; reason: string }[];
  timings: { totalMs: number };
}

/** An input image: a name (for messages and outputs) and the file's bytes. */
export interface ImageInput {
  name: string;
  bytes: Buffer;
}
