/**
 * Banks: inspect new images against a saved set of unlabeled images of one product.
 *
 *   const bank = await openBank('bottle.bank');                 // verifies checksums and shapes
 *   const { predictions } = await predict(bank, [{ name: 'a.png', bytes }], { maps: true });
 *   predictions[0].verdict, .score, .normalized, .threshold, .regions
 *   await renderCompositePng(bytes, predictions[0]);            // PNG buffers (also mask, heatmap)
 *   await closeBank(bank);                                      // disposes the backbone
 *
 * buildBank(inputs, { out, backbone }) writes a bank (CLI: musc bank build). See
 * docs/architecture.md "Banks" and README "Inspect new images (bank + predict)".
 */
export {
  type BuildBankOptions,
  type BuildBankResult,
  buildBank,
  DEFAULT_PROJECT_FOLDS,
  imagesOfFolder,
  RECOMMENDED_BANK_IMAGES,
} from './build.js';
export {
  type Calibration,
  DEFAULT_FALSE_ALARM,
  falseAlarmThreshold,
  normalizeScore,
  type RunVerdicts,
  readThresholdArg,
  runVerdicts,
  type ThresholdFile,
  type Thresholds,
  thresholdsOf,
  writeThresholdFile,
} from './calibration.js';
export { bankBackbone, checkBankSettings, closeBank, DEFAULT_PREDICT_BATCH, predict } from './predict.js';
export { renderCompositePng, renderHeatmapPng, renderMaskPng } from './render.js';
export { BankError, readBank as openBank, readManifest } from './store.js';
export type {
  AnomalyMap,
  Bank,
  BankImage,
  BankManifest,
  ColourScale,
  ImageInput,
  ImagePrediction,
  PredictOptions,
  PredictOutput,
  Region,
} from './types.js';
