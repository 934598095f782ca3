/**
 * predict: new images scored against a bank (scoring.ts), with label-free verdicts
 * (calibration.ts) and defect regions at the original size (regions.ts).
 *
 *   settings check: the caller's backbone / image size / stages must be the bank's (else an error
 *   naming both); the backbone is loaded once per bank and its weights' sha256 must match
 *   extract (extract.ts: unreadable inputs are skipped with the reason)
 *   per batch of new images: LNAMD + MSM against the bank -> patch scores [m, h, w]
 *   per image: S x S map -> image score = max (as musc run); RsCIN within bank + image; verdict,
 *   normalised score; map at the original size -> mask (> pixel threshold) -> regions
 */
import { performance } from 'node:perf_hooks';
import { loadBackbone } from '../backbones/registry.js';
import type { Backbone } from '../backbones/types.js';
import { ConfigError } from '../config.js';
import { imageScoreOf, type ImageScoreRule, MAX_IMAGE_SCORE, parseImageScoreRule, upsampleAlignCorners } from '../core/maps.js';
import { type Calibration, normalizeScore, type Thresholds, thresholdsOf, verdictOf } from './calibration.js';
import { type ExtractedImage, extractImages, stackStages } from './extract.js';
import { mapAtSize, regionsOf } from './regions.js';
import { dropCachedBank, predictRscin, rscinRaw, scoreAgainstBankCached } from './scoring.js';
import type { Bank, ImageInput, ImagePrediction, PredictOptions, PredictOutput } from './types.js';

export const DEFAULT_PREDICT_BATCH = 16;

/** Throws a ConfigError naming both values when the caller's settings are not the bank's. */
export function checkBankSettings(bank: Bank, expect: PredictOptions['expect'] = {}): void {
  const b = bank.manifest.backbone;
  const differ = (what: string, mine: string, theirs: string): never => {
    throw new ConfigError(
      `bank ${bank.path} was built with ${what} ${theirs}; this call asks for ${mine}. ` +
        `A bank is only comparable with its own settings: build a new bank with ${mine}, or leave the setting out`,
    );
  };
  if (expect.backbone !== undefined && expect.backbone !== b.name) differ('backbone', `'${expect.backbone}'`, `'${b.name}'`);
  if (expect.imageSize !== undefined && expect.imageSize !== b.image_size) differ('image size', `${expect.imageSize}`, `${b.image_size}`);
  if (expect.stages !== undefined && expect.stages.join() !== b.stages.join())
    differ('stages', `${expect.stages.join(',')}`, `${b.stages.join(',')}`);
}

/** The bank's image score rule (banks of older versions: the maximum). */
export function bankImageScore(bank: Bank): ImageScoreRule {
  const r = bank.manifest.scoring.image_score;
  return r ? parseImageScoreRule(r, `bank ${bank.path}: scoring.image_score`) : MAX_IMAGE_SCORE;
}

/** Backbones being loaded, so that concurrent first predicts load one. */
const loading = new WeakMap<Bank, Promise<Backbone>>();

/** The bank's backbone, loaded on first use; its weights must be the ones the bank was built with. */
export async function bankBackbone(bank: Bank, opts: PredictOptions = {}): Promise<Backbone> {
  if (bank.backbone) return bank.backbone;
  let p = loading.get(bank);
  if (!p) {
    p = loadChecked(bank, opts).finally(() => loading.delete(bank));
    loading.set(bank, p);
  }
  return p;
}

async function loadChecked(bank: Bank, opts: PredictOptions): Promise<Backbone> {
  const b = bank.manifest.backbone;
  const load = opts.loadBackbone ?? ((name, o) => loadBackbone(name, o));
  const fuse = b.fuse_sizes ?? [];
  if (!Array.isArray(fuse) || !fuse.every((f) => Number.isInteger(f)))
    throw new ConfigError(
      `bank ${bank.path}: manifest backbone.fuse_sizes must be a list of integers, got ${JSON.stringify(b.fuse_sizes)}`,
    );
  const backbone = await load(b.name, {
    imageSize: b.image_size,
    stages: b.stages,
    borderPad: b.border_pad ?? 0,
    fuseSizes: fuse,
    ...(opts.device ? { device: opts.device } : {}),
    ...(opts.weightsPath ? { weightsPath: opts.weightsPath } : {}),
  });
  if ((backbone.borderPad ?? 0) !== (b.border_pad ?? 0)) {
    await backbone.dispose();
    throw new ConfigError(
      `bank ${bank.path} was built with border padding ${b.border_pad ?? 0}; the backbone loaded now has ${backbone.borderPad ?? 0}`,
    );
  }
  if ((backbone.fuseSizes ?? []).join() !== fuse.join()) {
    await backbone.dispose();
    throw new ConfigError(
      `bank ${bank.path} was built with fused sizes [${fuse.join(', ')}]; the backbone loaded now has [${(backbone.fuseSizes ?? []).join(', ')}]`,
    );
  }
  if (backbone.weightsSha256 !== b.weights_sha256) {
    await backbone.dispose();
    throw new ConfigError(
      `bank ${bank.path} was built with weights sha256 ${b.weights_sha256.slice(0, 12)}... for '${b.name}'; ` +
        `the weights loaded now have ${backbone.weightsSha256.slice(0, 12)}...`,
    );
  }
  bank.backbone = backbone;
  return backbone;
}

/**
 * The bank's calibration for RsCIN windows kList: as stored for the bank's own k_list, else its
 * leave-one-out scores re-scored with kList (so the threshold is on the same scale as the score).
 */
export function calibrationFor(bank: Bank, kList?: number[]): Calibration {
  const cal = bank.calibration;
  if (!kList || kList.join() === bank.manifest.scoring.k_list.join()) return cal;
  return { ...cal, scores: Array.from(rscinRaw(Float64Array.from(cal.image_scores), bank.tokens, kList)) };
}

/** Disposes the bank's backbone and forgets its aggregated features in the compute worker (if predict ran). */
export async function closeBank(bank: Bank): Promise<void> {
  const b = bank.backbone;
  bank.backbone = undefined;
  if (b) await dropCachedBank(bank.manifest.checksum);
  await b?.dispose();
}

export async function predict(bank: Bank, images: ImageInput[], opts: PredictOptions = {}): Promise<PredictOutput> {
  const t0 = performance.now();
  checkBankSettings(bank, opts.expect);
  if (images.length === 0) throw new ConfigError('no images to predict');
  const ne = bank.manifest.scoring.norm_exponent;
  if (ne !== undefined && opts.precision !== undefined && opts.precision !== 'fast')
    throw new ConfigError(`--msm-precision ${opts.precision}: the bank's norm exponent ${ne} needs the 'fast' precision`);
  const de = bank.manifest.scoring.density_exponent;
  if (de !== undefined && opts.precision !== undefined && opts.precision !== 'fast')
    throw new ConfigError(
      `--msm-precision ${opts.precision}: the bank's density exponent ${[de].flat().join('/')} needs the 'fast' precision (nearest-patch indices)`,
    );
  const th = thresholdsOf(calibrationFor(bank, opts.kList), opts.falseAlarm, { image: opts.threshold, pixel: opts.pixelThreshold });
  const backbone = await bankBackbone(bank, opts);
  const ex = await extractImages(images, backbone, {
    batchSize: 4,
    maxPixels: opts.maxPixels,
    onProgress: (d, t) => opts.onProgress?.('extract', d, t),
  });
  const dims = bank.manifest.features.stages;
  if (ex.dims && JSON.stringify(ex.dims) !== JSON.stringify(dims))
    throw new ConfigError(`backbone features have shapes ${JSON.stringify(ex.dims)}, the bank's ${JSON.stringify(dims)}`);
  const predictions: ImagePrediction[] = [];
  const bs = Math.max(1, opts.batchSize ?? DEFAULT_PREDICT_BATCH);
  for (let b = 0; b < ex.images.length; b += bs) {
    const chunk = ex.images.slice(b, b + bs);
    const done = b;
    const t1 = performance.now();
    const res = await scoreAgainstBankCached(
      bank.manifest.checksum,
      stackStages(chunk, dims),
      bank.stages,
      scoreSettings(bank, opts),
      (d, t) => opts.onProgress?.('score', done + (chunk.length * d) / t, ex.images.length),
    );
    const scoringMs = (performance.now() - t1) / chunk.length;
    chunk.forEach((im, i) => {
      const P = res.h * res.w;
      const own = res.image?.subarray(i * P, (i + 1) * P); // --density-scope image: what the image score comes from
      predictions.push(postProcess(bank, im, res.patch.subarray(i * P, (i + 1) * P), res.h, res.w, th, opts, scoringMs, own));
      opts.onProgress?.('post', predictions.length, ex.images.length);
    });
  }
  return { predictions, skipped: ex.skipped, timings: { totalMs: performance.now() - t0 } };
}

function scoreSettings(bank: Bank, opts: PredictOptions) {
  const s = bank.manifest.scoring;
  return {
    rList: s.r_list,
    ...(s.stage_r_list ? { stageRList: s.stage_r_list } : {}),
    interval: s.interval,
    precision: opts.precision ?? s.msm_precision,
    device: opts.device,
    ...(s.score_grid !== undefined ? { scoreGrid: s.score_grid } : {}),
    ...(s.project !== undefined ? { project: s.project, projectBases: bank.bases! } : {}),
    ...(s.norm_exponent !== undefined ? { normExponent: s.norm_exponent } : {}),
    ...(s.density_exponent !== undefined ? { densityExponent: s.density_exponent, densityRho: bank.densities! } : {}),
    ...(s.density_scope !== undefined ? { densityScope: s.density_scope } : {}),
  };
}

function postProcess(
  bank: Bank,
  im: ExtractedImage,
  patch: Float64Array,
  h: number,
  w: number,
  th: Thresholds,
  opts: PredictOptions,
  scoringMs: number,
  imagePatch = patch,
): ImagePrediction {
  const t0 = performance.now();
  const S = bank.manifest.backbone.image_size;
  const square = upsampleAlignCorners(imagePatch, 1, h, w, S, S);
  const imageScore = imageScoreOf(square, bankImageScore(bank));
  const kList = opts.kList ?? bank.manifest.scoring.k_list;
  const score = predictRscin(imageScore, im.token, bank.calibration.image_scores, bank.tokens, kList);
  const map = mapAtSize(patch, h, w, im.width, im.height);
  const { mask, regions } = regionsOf(map, th.pixel);
  const warnings: string[] = [];
  const same = bank.manifest.images.find((b) => b.sha256 === im.sha256);
  if (same) warnings.push(`${im.name} is in the bank (same content as ${same.name}): it matches itself, so its score is too low`);
  const aspect = im.width / im.height;
  const first = bank.manifest.images[0]!;
  if (!bank.manifest.images.some((b) => Math.abs(b.width / b.height - aspect) < 0.01)) {
    warnings.push(
      `${im.name} is ${im.width}x${im.height}; no bank image has this aspect ratio ` +
        `(the bank's first is ${first.width}x${first.height}): the comparison may be unreliable`,
    );
  }
  return {
    name: im.name,
    score,
    imageScore,
    normalized: normalizeScore(score, th.image, th.imageMedian),
    verdict: verdictOf(score, th.image),
    threshold: th.image,
    pixelThreshold: th.pixel,
    width: im.width,
    height: im.height,
    regions,
    colourScale: th.colour,
    timings: { decodeMs: im.decodeMs, backboneMs: im.backboneMs, scoringMs, postMs: performance.now() - t0 },
    warnings,
    ...(opts.maps ? { map, mask } : {}),
    ...(opts.patches ? { patch: { h, w, data: Float64Array.from(patch) } } : {}),
  };
}
