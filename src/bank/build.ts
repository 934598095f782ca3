/**
 * buildBank: features of an unlabeled set of images of one product, plus its calibration
 * (calibration.ts), written as a bank directory (store.ts).
 *
 *   extract (extract.ts; unreadable inputs and exact duplicates are skipped with the reason)
 *   leave-one-out scoring = zero-shot MuSc over the bank (one scorePlan call, scoring.ts); a
 *     projected bank's in folds, each on bases of the others (DEFAULT_PROJECT_FOLDS), as predict's
 *     new images are never in the bank's bases
 *   S x S maps (bilinear, align_corners) -> image score = max; RsCIN within the bank (raw units)
 *   calibration.json: the scores, map maxima and map medians; manifest.json: everything else
 */
import { readFile } from 'node:fs/promises';
import { relative, sep } from 'node:path';
import type { Backbone } from '../backbones/types.js';
import { DEFAULT_IMAGE_SCORE, DEFAULT_INTERVAL, resolveDegrees, resolveNormExponent } from '../core/defaults.js';
import { densityActive, densityExponentWarning } from '../core/density.js';
import { checkNormExponent } from '../core/lnamd.js';
import { ConfigError } from '../errors.js';
import { DEFAULT_MSM_PRECISION, type MsmPrecision } from '../core/kernel.js';
import {
  formatImageScoreRule,
  type ImageScoreRule,
  imageScores as imageScoresOf,
  mapMaxima,
  parseImageScoreRule,
  upsampleAlignCorners,
} from '../core/maps.js';
import { checkProjectChannels, checkStageCount, checkStageRList, type RscinMode, rscinWindows } from '../config.js';
import { RSCIN_K_MVTEC } from '../core/rscin.js';
import type { ImageTokens, Interval, StageFeatures } from '../core/types.js';
import type { ProgressListener } from '../compute/worker.js';
import { DatasetError } from '../datasets/types.js';
import { versions } from '../outputs/versions.js';
import { listReferenceImages } from '../features/references.js';
import { median } from '../threshold.js';
import { estimateBankBytes } from '../scoring/memory.js';
import { type Calibration, checkFalseAlarm, DEFAULT_FALSE_ALARM } from './calibration.js';
import { type ExtractedImage, extractImages, stackStages } from './extract.js';
import { type BankScoreSettings, leaveOneOut, rscinRaw } from './scoring.js';
import { writeBank } from './store.js';
import { BANK_FORMAT, type BankManifest, bankFormatVersion, type ImageInput } from './types.js';

/** Fewer bank images than this get a warning: each image's pool is small. */
export const RECOMMENDED_BANK_IMAGES = 8;

/** Folds of a projected bank's held-out calibration (BuildBankOptions.projectFolds; at most the bank's images). */
export const DEFAULT_PROJECT_FOLDS = 8;

export interface BuildBankOptions {
  /** the bank directory to write (conventionally NAME.bank) */
  out: string;
  backbone: Backbone;
  rList?: number[];
  /** per-stage LNAMD degrees, one list per backbone stage (`--stage-r-list`); the bank's r_list is then their union */
  stageRList?: number[][];
  interval?: Interval;
  /** RsCIN windows (default: by `rscin`, [1, 2, 3] when on) */
  kList?: number[];
  /** RsCIN on, off or auto (default: on for ViTs, off for ResNets; config.ts Settings.rscin) */
  rscin?: RscinMode;
  /** image score from the map: 'max' or 'top:F' (default DEFAULT_IMAGE_SCORE, as musc run) */
  imageScore?: string;
  /** patch scores on a G x G grid, LNAMD's target (default: the first stage's grid; as musc run --score-grid) */
  scoreGrid?: number;
  /**
   * MSM on every (stage, r) bank projected on K directions of the bank (as musc run --project): the
   * bases are saved in the bank and new images are projected on them; about K / C of predict's MSM
   */
  project?: number;
  /**
   * with project: the leave-one-out calibration scores each of this many contiguous folds of the
   * bank on bases of the other folds (core/score.ts EngineOptions.projectFolds), as predict scores a
   * new image on bases it did not shape (default DEFAULT_PROJECT_FOLDS; the saved bases are the
   * whole bank's)
   */
  projectFolds?: number;
  /** LNAMD's norm exponent (as musc run --norm-exponent; default: core/defaults.ts resolveNormExponent, by the backbone) */
  normExponent?: number;
  /**
   * reference-density normalisation (as musc run --density-exponent; one exponent or one per stage):
   * the calibration normalises each image's distances with the densities of the bank without it,
   * and the bank saves its own for new images ('fast' precision; not with project)
   */
  densityExponent?: number | number[];
  /** with densityExponent: 'image' normalises the image scores only, the maps (pixel threshold, masks) keep MSM's (as musc run --density-scope) */
  densityScope?: 'all' | 'image';
  precision?: MsmPrecision;
  device?: 'cpu' | 'cuda';
  /** default false-alarm rate stored with the calibration */
  falseAlarm?: number;
  batchSize?: number;
  maxPixels?: number;
  /** replace an existing bank */
  force?: boolean;
  onProgress?: (step: 'extract' | 'score' | 'write', done: number, total: number) => void;
  /** information lines (the memory estimate before scoring) */
  log?: (line: string) => void;
  /**
   * Called between steps (before each backbone batch, before scoring, before writing); throws to
   * stop the build there. Scoring itself stops when the compute worker is cancelled.
   */
  checkCancelled?: () => void;
}

export interface BuildBankResult {
  path: string;
  manifest: BankManifest;
  warnings: string[];
  /** bytes estimated for scoring the bank (scoring/memory.ts estimateBankBytes) */
  estimatedBytes: number;
}

/** Folders holding masks, not product images (MVTec-style trees): left out of banks. */
const MASK_FOLDERS = new Set(['ground_truth', 'masks']);

/**
 * Every image below `dir` (recursive, sorted), named by its path relative to `dir`; images in a
 * `ground_truth` or `masks` folder are left out (listed in `excluded`).
 */
export async function imagesOfFolder(dir: string): Promise<{ inputs: ImageInput[]; excluded: { name: string; reason: string }[] }> {
  const names = (await listReferenceImages(dir)).map((f) => ({ f, name: relative(dir, f).split(sep).join('/') }));
  const isMask = (name: string): boolean =>
    name
      .split('/')
      .slice(0, -1)
      .some((d) => MASK_FOLDERS.has(d));
  const excluded = names
    .filter((x) => isMask(x.name))
    .map((x) => ({ name: x.name, reason: 'in a mask folder (ground_truth/ or masks/), not a product image' }));
  const inputs = await Promise.all(names.filter((x) => !isMask(x.name)).map(async (x) => ({ name: x.name, bytes: await readFile(x.f) })));
  return { inputs, excluded };
}

/** Keeps the first of images with identical bytes; the others are skipped with the reason. */
function dropDuplicates(images: ExtractedImage[], skipped: { name: string; reason: string }[]): ExtractedImage[] {
  const seen = new Map<string, string>();
  return images.filter((im) => {
    const first = seen.get(im.sha256);
    if (first !== undefined) skipped.push({ name: im.name, reason: `same content as ${first} (a duplicate would match itself)` });
    else seen.set(im.sha256, im.name);
    return first === undefined;
  });
}

/** The label-free calibration of the bank's leave-one-out maps [n, S, S] and image scores (before and after RsCIN). */
function calibrationOf(maps: Float32Array, S: number, imageScores: Float64Array, scores: Float64Array, falseAlarm: number): Calibration {
  const n = imageScores.length;
  return {
    rule: 'median + z(1 - false_alarm) * 1.4826 * MAD',
    false_alarm: falseAlarm,
    scores: Array.from(scores),
    image_scores: Array.from(imageScores),
    map_maxima: Array.from(mapMaxima(maps, n)),
    map_medians: Array.from({ length: n }, (_, i) => median(maps.subarray(i * S * S, (i + 1) * S * S))),
  };
}

/** Per-stage degrees checked against the backbone's stages (one list per stage), before any extraction. */
function checkedStageRList(lists: number[][] | undefined, stages: readonly number[]): number[][] | undefined {
  if (!lists) return undefined;
  checkStageRList(lists, '--stage-r-list');
  checkStageCount(lists, stages, '--stage-r-list');
  return lists;
}

/** The bank's norm exponent (the explicit one, else by the backbone), refused as a usage error with int8 or exact. */
function checkedNormExponent(o: BuildBankOptions, precision: MsmPrecision): number {
  const b = resolveNormExponent(o.backbone, o.normExponent, precision);
  try {
    checkNormExponent(b, precision, '--norm-exponent');
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
  return b;
}

/**
 * The bank's leave-one-out scores (with `project`: each fold on held-out bases, settings.projectFolds)
 * and their label-free calibration; the bases to save are the whole bank's.
 */
async function calibrate(
  stages: StageFeatures[],
  tokens: ImageTokens,
  settings: BankScoreSettings,
  rules: { S: number; imageScore: ImageScoreRule; kList: number[]; falseAlarm: number },
  onProgress: ProgressListener,
): Promise<{ calibration: Calibration; bases?: Record<string, Float32Array>; densities?: Record<string, Float64Array> }> {
  const { n } = tokens,
    S = rules.S;
  const loo = await leaveOneOut(stages, settings, onProgress);
  const maps = upsampleAlignCorners(loo.patch, n, loo.h, loo.w, S, S); // [n, S, S] as musc run
  // --density-scope image: the image scores from the normalised scores, the map maxima and medians from MSM's
  const imageScores = imageScoresOf(loo.image ? upsampleAlignCorners(loo.image, n, loo.h, loo.w, S, S) : maps, n, rules.imageScore);
  const calibration = {
    ...calibrationOf(maps, S, imageScores, rscinRaw(imageScores, tokens, rules.kList), rules.falseAlarm),
    ...(settings.projectFolds !== undefined ? { project_folds: settings.projectFolds } : {}),
  };
  return { calibration, ...(loo.bases ? { bases: loo.bases } : {}), ...(loo.densities ? { densities: loo.densities } : {}) };
}

/** The manifest's scoring settings of the bank's (BankManifest.scoring). */
function scoringOf(s: BankScoreSettings, kList: number[], imageScore: string): BankManifest['scoring'] {
  return {
    r_list: s.rList,
    ...(s.stageRList ? { stage_r_list: s.stageRList } : {}),
    interval: s.interval,
    k_list: kList,
    msm_precision: s.precision ?? DEFAULT_MSM_PRECISION,
    feature_storage: 'float16' as const,
    image_score: imageScore,
    ...(s.scoreGrid !== undefined ? { score_grid: s.scoreGrid } : {}),
    ...(s.project !== undefined ? { project: s.project } : {}),
    ...(s.normExponent !== undefined ? { norm_exponent: s.normExponent } : {}),
    ...(s.densityExponent !== undefined ? { density_exponent: s.densityExponent } : {}),
    ...(s.densityScope === 'image' ? { density_scope: 'image' as const } : {}),
  };
}

/** The bank's density exponent checked as a usage error: 'fast' precision, no projection, one per stage when a list; undefined when off. */
function checkedDensity(o: BuildBankOptions, precision: MsmPrecision): number | number[] | undefined {
  const A = o.densityExponent;
  if (o.densityScope === 'image' && !densityActive(A))
    throw new ConfigError('--density-scope image: give --density-exponent too (the scope of which normalisation)');
  if (A === undefined || !densityActive(A)) return undefined;
  if (precision !== 'fast')
    throw new ConfigError(`--density-exponent needs the 'fast' MSM precision (nearest-patch indices), not '${precision}'`);
  if (o.project !== undefined)
    throw new ConfigError('--density-exponent: not with --project in a bank (its calibration scores in folds of held-out bases)');
  if (Array.isArray(A) && A.length !== o.backbone.stages.length)
    throw new ConfigError(
      `--density-exponent has ${A.length} exponents, the backbone has ${o.backbone.stages.length} stages (${o.backbone.stages.join(',')}): give one, or one per stage`,
    );
  return A;
}

/** The held-out folds of a projected bank's calibration (DEFAULT_PROJECT_FOLDS unless given); a usage error without --project. */
function checkedProjectFolds(o: BuildBankOptions): number | undefined {
  if (o.projectFolds === undefined) return o.project !== undefined ? DEFAULT_PROJECT_FOLDS : undefined;
  if (o.project === undefined) throw new ConfigError('--project-folds: only with --project (the folds of the projection bases)');
  if (!Number.isInteger(o.projectFolds) || o.projectFolds < 2)
    throw new ConfigError(`--project-folds: give an integer of at least 2, got ${o.projectFolds}`);
  return o.projectFolds;
}

/** The error of a bank with fewer than 2 readable images, naming the first skipped inputs. */
function tooFewImages(n: number, skipped: { name: string; reason: string }[]): DatasetError {
  const first = skipped
    .map((s) => `${s.name}: ${s.reason}`)
    .slice(0, 3)
    .join('; ');
  return new DatasetError(`a bank needs at least 2 readable images, got ${n}${skipped.length ? ` (skipped: ${first})` : ''}`);
}

export async function buildBank(inputs: ImageInput[], o: BuildBankOptions): Promise<BuildBankResult> {
  if (inputs.length === 0) throw new DatasetError('no images given for the bank');
  const falseAlarm = checkFalseAlarm(o.falseAlarm ?? DEFAULT_FALSE_ALARM);
  // per stage when given, else rList, else by the backbone (core/defaults.ts: a fused ResNet's per-stage lists)
  const { rList, stageRList } = resolveDegrees(o.backbone, o.rList, checkedStageRList(o.stageRList, o.backbone.stages));
  checkProjectChannels(o.project, o.backbone.stageChannels, '--project');
  const projectFolds = checkedProjectFolds(o);
  const precision = o.precision ?? DEFAULT_MSM_PRECISION;
  const normExponent = checkedNormExponent(o, precision);
  const densityExponent = checkedDensity(o, precision);
  const interval = o.interval ?? DEFAULT_INTERVAL,
    kList = rscinWindows({ ...(o.kList ? { k_list: o.kList } : {}), rscin: o.rscin ?? 'auto' }, RSCIN_K_MVTEC, o.backbone.info.family);
  const ex = await extractImages(inputs, o.backbone, {
    batchSize: o.batchSize,
    maxPixels: o.maxPixels,
    onProgress: (d, t) => o.onProgress?.('extract', d, t),
    beforeBatch: o.checkCancelled,
  });
  const images = dropDuplicates(ex.images, ex.skipped);
  if (images.length < 2 || !ex.dims) throw tooFewImages(images.length, ex.skipped);
  const n = images.length;
  const warnings = ex.skipped.map((s) => `skipped ${s.name}: ${s.reason}`);
  const aboveOne = densityExponentWarning(densityExponent);
  if (aboveOne) warnings.push(aboveOne);
  if (n < RECOMMENDED_BANK_IMAGES)
    warnings.push(
      `the bank holds ${n} images; at least ${RECOMMENDED_BANK_IMAGES} are recommended ` +
        '(each score is a mean over the nearest 30% of the bank)',
    );
  const stages = stackStages(images, ex.dims);
  const settings: BankScoreSettings = {
    rList,
    ...(stageRList ? { stageRList } : {}),
    interval,
    precision,
    device: o.device,
    ...(o.scoreGrid !== undefined ? { scoreGrid: o.scoreGrid } : {}),
    ...(o.project !== undefined ? { project: o.project } : {}),
    ...(projectFolds !== undefined ? { projectFolds: Math.min(projectFolds, n) } : {}),
    ...(normExponent !== 1 ? { normExponent } : {}),
    ...(densityExponent !== undefined ? { densityExponent } : {}),
    ...(densityExponent !== undefined && o.densityScope === 'image' ? { densityScope: 'image' as const } : {}),
  };
  const tokens = { n, d: ex.tokenDim, data: new Float32Array(n * ex.tokenDim) };
  images.forEach((im, i) => tokens.data.set(im.token, i * ex.tokenDim));
  o.checkCancelled?.();
  const rules = { S: o.backbone.imageSize, imageScore: parseImageScoreRule(o.imageScore ?? DEFAULT_IMAGE_SCORE), kList, falseAlarm };
  const estimatedBytes = estimateBankBytes(n, ex.dims, rules.S, densityExponent !== undefined);
  o.log?.(`scoring the bank's ${n} images; estimated memory for scoring about ${Math.ceil(estimatedBytes / 2 ** 20)} MB`);
  const { calibration, bases, densities } = await calibrate(stages, tokens, settings, rules, (d, t) => o.onProgress?.('score', d, t));
  const v = versions();
  const scoring = scoringOf(settings, kList, formatImageScoreRule(rules.imageScore));
  o.checkCancelled?.();
  o.onProgress?.('write', 0, 1);
  const manifest = await writeBank(
    o.out,
    {
      manifest: {
        format: BANK_FORMAT,
        format_version: bankFormatVersion(scoring),
        created: new Date().toISOString(),
        software: { musc: v.musc, node: v.node, onnxruntime: v.onnxruntime, sharp: v.sharp },
        backbone: {
          name: o.backbone.info.name,
          weights_sha256: o.backbone.weightsSha256,
          image_size: rules.S,
          stages: [...o.backbone.stages],
          border_pad: o.backbone.borderPad ?? 0,
          fuse_sizes: [...(o.backbone.fuseSizes ?? [])],
        },
        scoring,
        features: { stages: ex.dims, token_dim: ex.tokenDim },
        images: images.map((im) => ({ name: im.name, sha256: im.sha256, width: im.width, height: im.height })),
        skipped: ex.skipped,
      },
      stages,
      tokens,
      ...(bases ? { bases } : {}),
      ...(densities ? { densities } : {}),
      calibration,
    },
    { force: o.force },
  );
  o.onProgress?.('write', 1, 1);
  return { path: o.out, manifest, warnings, estimatedBytes };
}
