/**
 * musc: zero-shot industrial anomaly classification and segmentation (MuSc, ICLR 2024).
 * The public library API. See README.md and docs/architecture.md.
 */
// the method
export { musc, scorePatches, scorePlan, upsampleMaps, imageScoresFromMaps, rscin } from './scoring/musc.js';
export type { ScoreOptions, PatchScores, MuscResult } from './scoring/musc.js';
export { zeroShotVariant, subsetsVariant, referenceVariant, batchPlan } from './core/plan.js';
export type { ScoringPlan, PoolVariant, Reduction } from './core/plan.js';
export type { PlanScores } from './core/score.js';
export type { StageFeatures, ImageTokens, BackboneFeatures, Interval, FeatureData, FeatureStorage } from './core/types.js';
export type { MsmPrecision } from './core/kernel.js';
export { DEFAULT_MSM_PRECISION } from './core/kernel.js';
export { RSCIN_K_MVTEC, RSCIN_K_VISA } from './core/rscin.js';
export { intervalBounds } from './core/msm.js';
export { DEFAULT_INTERVAL, DEFAULT_R_LIST } from './core/defaults.js';
// backbones
export { loadBackbone, listBackbones, backboneInfo, DEFAULT_BACKBONE } from './backbones/registry.js';
export type { Backbone, BackboneInfo, LoadOptions } from './backbones/types.js';
export { downloadHubFile, defaultCacheDir } from './backbones/download.js';
// images and data
export { decodeRgb, decodeMask, ImageDecodeError } from './image/decode.js';
export type { RgbImage, GrayImage } from './image/decode.js';
export { openDataset, selectCategories, defaultKList, divideSubsets } from './datasets/index.js';
export type { DatasetItem } from './datasets/types.js';
// metrics
export { computeMetrics, rocCurve, f1OptimalThreshold, aupro, proMusc } from './metrics/index.js';
export type { MetricsInput, MetricsResult } from './metrics/index.js';
export { evaluate, evaluateImages } from './metrics/evaluator.js';
export type { Evaluation, EvaluationInput, ImageEvaluation } from './metrics/evaluator.js';
export { isNg, decide, labelFreeThreshold } from './threshold.js';
// the whole pipeline
export { runDataset } from './pipeline/run-dataset.js';
export { runCategory } from './pipeline/run-category.js';
// backbone features of image files (the one extraction loop) and their cache
export { FeatureStore, FeatureCache, ImageSkipError, cacheIdentity, stackStages, stackTokens } from './features/index.js';
export type { FeatureStoreOptions, ImageFeatures, ImageRef, ExtractResult, ExtractedImage, BadFilePolicy, StageDims } from './features/index.js';
// banks: saved reference sets of one product, predict with label-free verdicts and regions
export { buildBank, openBank, predict, closeBank, renderMaskPng, renderHeatmapPng, renderCompositePng, BankError } from './bank/index.js';
export type { Bank, BankManifest, ImageInput, ImagePrediction, PredictOptions, PredictOutput, Region } from './bank/index.js';
// files
export { SafetensorsFile, writeSafetensors, encodeSafetensors } from './io/safetensors.js';
export { toFloat16, fromFloat16 } from './io/float16.js';
// threads
export { shutdownCompute, sharedFloat32, sharedFeatures } from './compute/worker.js';
