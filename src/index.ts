/**
 * musc: zero-shot industrial anomaly classification and segmentation (MuSc, ICLR 2024).
 * The public library API. See README.md and docs/architecture.md.
 */
// the method

export { defaultCacheDir, downloadHubFile } from './backbones/download.js';
// backbones
export { backboneInfo, DEFAULT_BACKBONE, listBackbones, loadBackbone } from './backbones/registry.js';
export type { Backbone, BackboneInfo, LoadOptions } from './backbones/types.js';
export { inputLength, inputSide } from './backbones/types.js';
export type { Bank, BankManifest, ImageInput, ImagePrediction, PredictOptions, PredictOutput, Region } from './bank/index.js';
// banks: saved reference sets of one product, predict with label-free verdicts and regions
export { BankError, buildBank, closeBank, openBank, predict, renderCompositePng, renderHeatmapPng, renderMaskPng } from './bank/index.js';
// threads
export { sharedFeatures, sharedFloat32, shutdownCompute } from './compute/worker.js';
export { DEFAULT_INTERVAL, DEFAULT_R_LIST } from './core/defaults.js';
export type { MsmPrecision } from './core/kernel.js';
export { DEFAULT_MSM_PRECISION } from './core/kernel.js';
export { intervalBounds } from './core/msm.js';
export type { PoolVariant, Reduction, ScoringPlan } from './core/plan.js';
export { batchPlan, referenceVariant, subsetsVariant, zeroShotVariant } from './core/plan.js';
export type { RepeatFilterOptions } from './core/repeats.js';
export { addBurnoutLinks, DEFAULT_REPEAT_FILTER, filteredPools, filteredVariant } from './core/repeats.js';
export { RSCIN_K_MVTEC, RSCIN_K_VISA } from './core/rscin.js';
export type { PlanScores } from './core/score.js';
export type { BackboneFeatures, FeatureData, FeatureStorage, ImageTokens, Interval, StageFeatures } from './core/types.js';
export { defaultKList, divideSubsets, openDataset, selectCategories } from './datasets/index.js';
export type { DatasetItem } from './datasets/types.js';
export type {
  BadFilePolicy,
  ExtractedImage,
  ExtractResult,
  FeatureStoreOptions,
  ImageFeatures,
  ImageRef,
  StageDims,
} from './features/index.js';
// backbone features of image files (the one extraction loop) and their cache
export { cacheIdentity, FeatureCache, FeatureStore, ImageSkipError, stackStages, stackTokens } from './features/index.js';
export type { GrayImage, RgbImage } from './image/decode.js';
// images and data
export { decodeMask, decodeRgb, ImageDecodeError } from './image/decode.js';
export { fromFloat16, toFloat16 } from './io/float16.js';
// files
export { encodeSafetensors, SafetensorsFile, writeSafetensors } from './io/safetensors.js';
export type { Evaluation, EvaluationInput, ImageEvaluation } from './metrics/evaluator.js';
export { evaluate, evaluateImages } from './metrics/evaluator.js';
export type { MetricsInput, MetricsResult } from './metrics/index.js';
// metrics
export { aupro, computeMetrics, f1OptimalThreshold, proMusc, rocCurve } from './metrics/index.js';
export { runCategory } from './pipeline/run-category.js';
// the whole pipeline
export { runDataset } from './pipeline/run-dataset.js';
export type { MuscResult, PatchScores, ScoreOptions } from './scoring/musc.js';
export { imageScoresFromMaps, imageScoresOf, musc, rscin, scorePatches, scorePlan, upsampleMaps } from './scoring/musc.js';
export { decide, isNg, labelFreeThreshold } from './threshold.js';
