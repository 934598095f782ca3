/**
 * What the end-to-end pipeline depends on, as interfaces, so that tests (and other backbones or
 * scorers) can be injected: the backbone contract, the MuSc core functions, the metrics function.
 */
import type { Device } from '../compute/session.js';
import type { MsmPrecision } from '../core/kernel.js';
import type { StageFeatures, ImageTokens, FeatureStorage } from '../core/types.js';
import { METRIC_KEYS, type MetricsFn, type MetricsInput, type MetricsValues } from '../metrics/index.js';
import type { PatchScores, ScoreOptions } from '../scoring/musc.js';
import type { RgbImage } from '../image/decode.js';
import type { Backbone } from '../backbones/types.js';
import type { DatasetKind } from '../datasets/types.js';
import type { MaskRule } from '../datasets/masks.js';
import type { FeatureCache } from '../features/cache.js';
import { DEFAULT_FEATURE_STORAGE } from '../features/types.js';
import type { SkippedImage } from '../features/types.js';
import type { ReferenceFeatures } from '../features/references.js';
import type { DecisionRule } from '../threshold.js';
import type { ImageScoreRule } from '../core/maps.js';

/** The MuSc core functions the pipeline calls (src/core/musc.ts). */
export interface Scorer {
  scorePatches(stages: StageFeatures[], opts: ScoreOptions): Promise<PatchScores>;
  upsampleMaps(ps: PatchScores, outH: number, outW: number): Float32Array;
  /** image scores [N] by the rule (scoring/musc.ts imageScoresOf): of the filtered scores' maps where the filter ran, else of `maps` */
  imageScoresOf(
    ps: PatchScores,
    outH: number,
    outW: number,
    rule: ImageScoreRule | undefined,
    smoothSigma: number,
    maps: Float32Array,
  ): Float64Array;
  rscin(scores: Float64Array, tokens: ImageTokens, kList: number[]): Float64Array;
}

/** The metrics the pipeline reports (src/metrics/index.ts: computeMetrics's numbers without its counts). */
export type { MetricsFn, MetricsInput, MetricsValues };

export { METRIC_KEYS };

export interface PipelineDeps {
  backbone: Pick<Backbone, 'imageSize' | 'preprocess' | 'extract'>;
  scorer: Scorer;
  /** absent: no metrics */
  metrics?: MetricsFn;
  /** image decoder (default decodeRgb) */
  decode?: (file: string) => Promise<RgbImage>;
  /** feature cache (absent: none) */
  cache?: FeatureCache;
}

/** Stage features are kept as float16 by default (features/types.ts). */
export { DEFAULT_FEATURE_STORAGE };
export type { SkippedImage };

/** Resolved per-category options. */
export interface PipelineOptions {
  kind: DatasetKind;
  rList: number[];
  /** per-stage degrees (Settings.stage_r_list); rList is then their union */
  stageRList?: number[][];
  /** image score from its map (default: the maximum) */
  imageScore?: ImageScoreRule;
  /** the repeated-anomaly filter: image scores from the filtered scores (zero-shot subsets; default off here) */
  repeatFilter?: boolean;
  /** LNAMD's target grid G x G (default: the first stage's grid) */
  scoreGrid?: number;
  /** MSM on each bank projected to this many channels (Settings.project; core/project.ts) */
  project?: number;
  /** LNAMD's norm exponent (Settings.norm_exponent; core/lnamd.ts; default 1) */
  normExponent?: number;
  /** reference-density normalisation of MSM distances (Settings.density_exponent; core/density.ts; absent: off) */
  densityExponent?: number | number[];
  /** with densityExponent: which scores are normalised (Settings.density_scope; absent: all) */
  densityScope?: 'all' | 'image';
  interval: [number, number];
  kList: number[];
  batchSize: number;
  divideNum: number;
  /** MB; automatic division when the largest subset's estimate exceeds it */
  maxMemoryMb?: number;
  maskRule: MaskRule;
  strict: boolean;
  /** decoding refuses images with more pixels (default: decode.ts DEFAULT_MAX_PIXELS) */
  maxPixels?: number;
  seed: number;
  device: Device;
  /** MSM nearest distances: 'exact' or 'fast' (see src/core/msm-kernel.ts) */
  precision?: MsmPrecision;
  /** how stage features are kept until scoring and in the cache (default DEFAULT_FEATURE_STORAGE) */
  featureStorage?: FeatureStorage;
  /** few-shot: known-good reference images appended to every subset's scoring pool (appendix A.6) */
  references?: ReferenceFeatures;
  /** 'musc-plus': score by the references alone (needs references) */
  mode?: 'musc' | 'musc-plus';
  /** label-free OK/NG decision on the RsCIN scores (src/threshold.ts) */
  decision?: DecisionRule;
  /** information lines (the memory estimate before scoring) */
  log?: (line: string) => void;
  /** progress: stage name, done, total */
  onProgress?: (stage: 'extract' | 'score', done: number, total: number) => void;
}

export type { CategoryResult, StageTimings } from '../outputs/result.js';
