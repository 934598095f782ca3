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
export { buildBank, imagesOfFolder, RECOMMENDED_BANK_IMAGES, type BuildBankOptions, type BuildBankResult } from './build.js';
export { predict, closeBank, checkBankSettings, bankBackbone, DEFAULT_PREDICT_BATCH } from './predict.js';
export { readBank as openBank, readManifest, BankError } from './store.js';
export { renderMaskPng, renderHeatmapPng, renderCompositePng } from './render.js';
export {
  DEFAULT_FALSE_ALARM,
  thresholdsOf,
  falseAlarmThreshold,
  normalizeScore,
  runVerdicts,
  readThresholdArg,
  writeThresholdFile,
  type Calibration,
  type Thresholds,
  type ThresholdFile,
  type RunVerdicts,
} from './calibration.js';
export type {
  Bank,
  BankManifest,
  BankImage,
  ImageInput,
  ImagePrediction,
  PredictOptions,
  PredictOutput,
  Region,
  AnomalyMap,
  ColourScale,
} from './types.js';
