/**
 * Run settings, with the reference's names and defaults (configs/musc.yaml, models/musc.py):
 *
 *   backbone     'resnet50' (DEFAULT_BACKBONE)   reference: models.backbone_name
 *   image_size   the backbone's default           reference: datasets.img_resize (518)
 *   stages       the backbone's default           reference: models.feature_layers
 *   r_list       [1, 3, 5]; [1, 5] when the       LNAMD aggregation degrees (core/defaults.ts defaultDegrees)
 *                backbone fuses input sizes
 *   stage_r_list [[1, 3], [1, 5, 7]] for a ResNet's LNAMD degrees per stage (wins over r_list)
 *                layers 2,3 with fused sizes
 *   divide_num   1                                subsets (datasets/*.py sub_datasets)
 *   k_list       dataset default: visa [1,8,9], otherwise [1,2,3] (RsCIN windows)
 *   interval     [0, 0.3]                         MSM topmin_min, topmin_max
 *   batch_size   4                                (scripts/musc_*.sh)
 *   norm         'category'                       heatmap colour scale: 'category' = one fixed scale per
 *                                                 category (a good image stays cool), 'image' = per-image
 *                                                 min-max (reference vis_type single_norm)
 *
 * A config file (YAML or JSON) may set any of these keys (also the reference's own names:
 * backbone_name, img_resize, feature_layers, dataset_name, class_name, vis_type); command-line flags override
 * the file. The old key vis_norm (single | whole) still works, with a one-line deprecation note. Everything is validated with ajv,
 * and errors name the key.
 */

import { readFile } from 'node:fs/promises';
import { extname } from 'node:path';
import { Ajv } from 'ajv';
import YAML from 'yaml';
import { DEFAULT_BACKBONE } from './backbones/registry.js';
import { DEFAULT_IMAGE_SCORE, DEFAULT_INTERVAL, DEFAULT_R_LIST } from './core/defaults.js';
import { parseImageScoreRule } from './core/maps.js';
import { checkNormExponent } from './core/lnamd.js';
import { DEFAULT_MSM_PRECISION, type MsmPrecision } from './core/kernel.js';
import type { FeatureStorage } from './core/types.js';
import { DIVIDE_SEED } from './datasets/divide.js';
import { MASK_RULES, type MaskRule } from './datasets/masks.js';
import { DATASET_KINDS, type DatasetKind } from './datasets/types.js';
import { DEFAULT_FEATURE_STORAGE } from './features/types.js';
import { ConfigError } from './errors.js';

/** Heatmap colour scale: one fixed scale per category, or each image's own min-max. */
export type VisNorm = 'category' | 'image';
export const VIS_NORMS: readonly VisNorm[] = ['category', 'image'];
/** The old names of the heatmap scale (musc run --vis-norm, config vis_norm / vis_type). */
export const OLD_VIS_NORM: Readonly<Record<string, VisNorm>> = {
  single: 'image',
  whole: 'category',
  single_norm: 'image',
  whole_norm: 'category',
};
export type HeatmapMode = 'all' | 'anomalous' | 'none';

import type { Device } from './compute/session.js';

export type { Device };

export interface Settings {
  /** dataset layout; detected from the tree when absent */
  dataset?: DatasetKind;
  /** category name, comma-separated names, or 'all' */
  category: string;
  backbone: string;
  /** user weight file for the backbone (else the registry's) */
  weights?: string;
  /** input size; the backbone's default when absent */
  image_size?: number;
  /** backbone stages; the backbone's default when absent */
  stages?: number[];
  /** CNNs: pixels of mirrored border around the image, cropped from the features; the backbone's default when absent */
  border_pad?: number;
  /** ResNets: more input sizes whose features are averaged with the image size's (resnet.ts); [] = none; the backbone's default when absent */
  fuse_sizes?: number[];
  /** image score from the map: 'max' (the paper) or 'top:F', the mean of the top fraction F of its pixels */
  image_score: string;
  /**
   * RsCIN: 'on' (the paper; windows k_list or the dataset's), 'off', or 'auto' (default): on for ViT
   * backbones, off for ResNets, whose ImageNet layer4 tokens made RsCIN worse on the dev categories
   * (README, the accuracy table). An explicit k_list always wins.
   */
  rscin: RscinMode;
  /**
   * The repeated-anomaly filter (src/core/repeats.ts): 'on' (default) = image scores from each
   * image's scores without the images it shares a repeated defect with; maps are unchanged. Zero-shot only.
   */
  repeat_filter: 'on' | 'off';
  /** LNAMD's target grid G x G (patch scores on it); the first stage's grid when absent */
  score_grid?: number;
  /**
   * Project every (stage, r) bank of LNAMD features on this many directions of the batch before MSM
   * (core/project.ts: the mean direction and the top principal ones): MSM costs project / C of the
   * full channels. Absent: all channels (the default). One process only (not with --redis), not in banks.
   */
  project?: number;
  /**
   * LNAMD's norm exponent B (core/lnamd.ts): each patch feature keeps (|z| / rho)^(1 - B) of its
   * energy relative to its image (rho: the image's RMS patch norm), MSM distances then Euclidean; 1 =
   * the paper's unit vectors. Absent: by the loaded backbone (core/defaults.ts resolveNormExponent:
   * 0.5 for a ResNet that fuses input sizes with the 'fast' precision and no projection, else 1).
   * Other values than 1 need msm_precision 'fast' and no project.
   */
  norm_exponent?: number;
  /**
   * Reference-density normalisation (core/density.ts): each MSM nearest distance divided by (its
   * reference patch's own MSM score / the table's median)^A, as local outlier factors do. 0 or
   * absent: off (MuSc's distances). Needs msm_precision 'fast' and zero-shot scoring (no
   * reference_dir); on the cluster too (density jobs, src/cluster/reduce.ts) and in banks (held-out densities, saved densities). One A for
   * every stage, or a list of one per backbone stage (e.g. [0, 1.5]: layer3's tables only).
   */
  density_exponent?: number | number[];
  /**
   * with density_exponent: 'all' (default) normalises every table the run reduces; 'image' only those
   * of the scores image scores come from, so the maps (pixel metrics) keep MSM's distances
   * (docs/accuracy.md, seventeenth round). In one process, on --redis and in banks (musc bank build --density-scope).
   */
  density_scope?: 'all' | 'image';
  /** a named group of settings applied before the config file and flags (PRESETS) */
  preset?: 'reference' | 'default';
  /** LNAMD aggregation degrees for every stage; by the loaded backbone when absent (core/defaults.ts defaultDegrees) */
  r_list?: number[];
  /**
   * LNAMD degrees per backbone stage (one list per stage, e.g. [[1, 3], [1, 5, 7]]); when given, it
   * wins over r_list (whose value is then their union). Absent with r_list absent: the loaded
   * backbone's (core/defaults.ts defaultDegrees; a ResNet's layers 2,3 with fused sizes: [[1, 3], [1, 5, 7]]).
   */
  stage_r_list?: number[][];
  divide_num: number;
  /** automatic division when a subset's estimated memory would exceed this many MB */
  max_memory?: number;
  /** RsCIN windows; the dataset's default when absent */
  k_list?: number[];
  interval: [number, number];
  batch_size: number;
  /** heatmap colour scale (config key norm; formerly vis_norm single | whole) */
  norm: VisNorm;
  heatmaps: HeatmapMode;
  mask_rule: MaskRule;
  device: Device;
  /** MSM nearest-patch distances: 'exact' or 'fast' */
  msm_precision: MsmPrecision;
  /** stage features kept (and cached) as float16 or float32; computation is float32 */
  feature_storage: FeatureStorage;
  strict: boolean;
  /** subset division seed (the reference's 42) */
  seed: number;
  /** feature cache on (default) or off (--no-cache) */
  cache: boolean;
  /** feature cache folder (default <out>/.cache/features) */
  cache_dir?: string;
  /** images with more pixels are skipped (decompression bombs); default 100000000 */
  max_pixels?: number;
  /** few-shot: folder of known-good reference images (appendix A.6; src/pipeline/references.ts) */
  reference_dir?: string;
  /** 'musc' (zero-shot, or references join the pool) or 'musc-plus' (score by the references alone) */
  mode?: 'musc' | 'musc-plus';
  /** label-free OK/NG column in scores.csv: 'mad', 'mad:K' or 'otsu' (src/threshold.ts) */
  decision?: string;
}

export const DEFAULT_SETTINGS: Settings = {
  category: 'all',
  backbone: DEFAULT_BACKBONE,
  image_score: DEFAULT_IMAGE_SCORE,
  rscin: 'auto',
  repeat_filter: 'on',
  divide_num: 1,
  interval: [...DEFAULT_INTERVAL],
  batch_size: 4,
  norm: 'category',
  heatmaps: 'anomalous',
  mask_rule: 'reference',
  device: 'cpu',
  msm_precision: DEFAULT_MSM_PRECISION,
  feature_storage: DEFAULT_FEATURE_STORAGE,
  strict: false,
  seed: DIVIDE_SEED,
  cache: true,
};

/** A usage or configuration error: exit code 2. */
export { ConfigError };

const posInt = { type: 'integer', minimum: 1 } as const;
const intList = { type: 'array', items: { type: 'integer', minimum: 0 }, minItems: 1 } as const;

/** JSON schema of a (partial) settings object. */
export const SETTINGS_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  properties: {
    dataset: { enum: [...DATASET_KINDS] },
    category: { type: 'string', minLength: 1 },
    backbone: { type: 'string', minLength: 1 },
    weights: { type: 'string', minLength: 1 },
    image_size: { type: 'integer', minimum: 8, maximum: 4096 },
    stages: intList,
    border_pad: { type: 'integer', minimum: 0, maximum: 512 },
    fuse_sizes: { type: 'array', items: { type: 'integer', minimum: 32, maximum: 4096, multipleOf: 32 } },
    image_score: { type: 'string', minLength: 1 },
    preset: { enum: ['reference', 'default'] },
    rscin: { enum: ['auto', 'on', 'off'] },
    repeat_filter: { enum: ['on', 'off'] },
    score_grid: { type: 'integer', minimum: 1, maximum: 512 },
    project: { type: 'integer', minimum: 2, maximum: 4096 },
    norm_exponent: { type: 'number', minimum: 0, maximum: 1 },
    density_exponent: {
      oneOf: [
        { type: 'number', minimum: 0, maximum: 4 },
        { type: 'array', items: { type: 'number', minimum: 0, maximum: 4 }, minItems: 1 },
      ],
    },
    density_scope: { enum: ['all', 'image'] },
    r_list: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 15 }, minItems: 1 },
    stage_r_list: {
      type: 'array',
      items: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 15 }, minItems: 1 },
      minItems: 1,
    },
    divide_num: posInt,
    max_memory: { type: 'number', exclusiveMinimum: 0 },
    k_list: { type: 'array', items: { type: 'integer', minimum: 0 } },
    interval: { type: 'array', items: { type: 'number', minimum: 0 }, minItems: 2, maxItems: 2 },
    batch_size: posInt,
    norm: { enum: [...VIS_NORMS] },
    heatmaps: { enum: ['all', 'anomalous', 'none'] },
    mask_rule: { enum: [...MASK_RULES] },
    device: { enum: ['cpu', 'cuda'] },
    msm_precision: { enum: ['exact', 'fast', 'int8'] },
    feature_storage: { enum: ['float16', 'float32'] },
    strict: { type: 'boolean' },
    seed: { type: 'integer' },
    cache: { type: 'boolean' },
    cache_dir: { type: 'string', minLength: 1 },
    max_pixels: posInt,
    reference_dir: { type: 'string', minLength: 1 },
    mode: { enum: ['musc', 'musc-plus'] },
    decision: { type: 'string', pattern: '^(mad(:[0-9.eE+]+)?|otsu)$' },
  },
} as const;

const ajv = new Ajv({ allErrors: true });
const validateSchema = ajv.compile(SETTINGS_SCHEMA);

/** The reference's key names, accepted in config files. */
const ALIASES: Record<string, string> = {
  backbone_name: 'backbone',
  img_resize: 'image_size',
  feature_layers: 'stages',
  dataset_name: 'dataset',
  class_name: 'category',
  batch: 'batch_size',
  vis_type: 'norm',
  vis_norm: 'norm',
};

/** Keys that would change an object's prototype instead of setting a value. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function renameAliases(obj: Record<string, unknown>, source: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (FORBIDDEN_KEYS.has(k)) throw new ConfigError(`${source}: key '${k}' is not a setting and is not allowed`);
    const key = ALIASES[k] ?? k.replace(/-/g, '_');
    if (key in out) throw new ConfigError(`${source}: '${k}' and '${key}' both given`);
    let val = v;
    if (k === 'vis_norm')
      deprecationNote(`${source}: 'vis_norm' is deprecated; use 'norm: category|image' (single = image, whole = category)`);
    if ((k === 'vis_norm' || k === 'vis_type') && typeof v === 'string') val = OLD_VIS_NORM[v] ?? v;
    if (key === 'dataset' && v === 'mvtec_ad') val = 'mvtec';
    if (key === 'category' && typeof v === 'string' && v.toLowerCase() === 'all') val = 'all';
    out[key] = val;
  }
  return out;
}

const noted = new Set<string>();
/** A one-line note on stderr for an old spelling that still works (once per message). */
export function deprecationNote(message: string): void {
  if (noted.has(message)) return;
  noted.add(message);
  process.stderr.write(`musc: note: ${message}\n`);
}

/** Validates a partial settings object; `source` names where it came from in messages. */
export function validateSettings(obj: unknown, source: string): Partial<Settings> {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
    throw new ConfigError(`${source}: expected a mapping of settings, got ${Array.isArray(obj) ? 'a list' : typeof obj}`);
  const renamed = renameAliases(obj as Record<string, unknown>, source);
  if (!validateSchema(renamed)) {
    const msgs = (validateSchema.errors ?? []).map((e) => {
      if (e.keyword === 'additionalProperties') {
        const extra = (e.params as { additionalProperty: string }).additionalProperty;
        return `unknown key '${extra}' (known: ${Object.keys(SETTINGS_SCHEMA.properties).join(', ')})`;
      }
      const key = e.instancePath.replace(/^\//, '').replace(/\//g, '.') || '(root)';
      const allowed = e.keyword === 'enum' ? ` (${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')})` : '';
      return `'${key}' ${e.message ?? 'is invalid'}${allowed}`;
    });
    throw new ConfigError(`${source}: ${[...new Set(msgs)].join('; ')}`);
  }
  const s = renamed as Partial<Settings>;
  if (s.interval) checkInterval(s.interval, `${source}: 'interval'`);
  if (s.r_list) checkRList(s.r_list, `${source}: 'r_list'`);
  if (s.stage_r_list) checkStageRList(s.stage_r_list, `${source}: 'stage_r_list'`);
  if (s.image_score !== undefined) checkImageScore(s.image_score, `${source}: 'image_score'`);
  try {
    checkNormExponent(s.norm_exponent, s.msm_precision ?? DEFAULT_MSM_PRECISION, "'norm_exponent' (--norm-exponent)");
  } catch (e) {
    throw new ConfigError(`${source}: ${(e as Error).message}`);
  }
  return s;
}

/** Image score rule: 'max' or 'top:F' (src/core/maps.ts). */
export function checkImageScore(v: string, what: string): void {
  try {
    parseImageScoreRule(v, what);
  } catch (e) {
    throw new ConfigError((e as Error).message);
  }
}

/**
 * Named setting groups (`--preset`, config key `preset`): 'reference' = the MuSc reference's own
 * choices where musc's default differs (no border padding, one input size, image score = map
 * maximum, RsCIN on, no repeated-anomaly filter).
 */
export const PRESETS: Readonly<Record<string, Partial<Settings>>> = {
  reference: {
    border_pad: 0,
    fuse_sizes: [],
    r_list: [...DEFAULT_R_LIST],
    image_score: 'max',
    rscin: 'on',
    repeat_filter: 'off',
    norm_exponent: 1,
  },
  default: {},
};

export type RscinMode = 'auto' | 'on' | 'off';

/**
 * The RsCIN windows of a run: an explicit k_list, else by `rscin` (see Settings.rscin) with the
 * dataset's windows (`datasetKList`) when on. `backboneFamily` undefined = not a ResNet.
 */
export function rscinWindows(
  s: { k_list?: number[]; rscin?: RscinMode },
  datasetKList: number[],
  backboneFamily: string | undefined,
): number[] {
  if (s.k_list) return [...s.k_list];
  const mode = s.rscin ?? 'auto';
  const on = mode === 'on' || (mode === 'auto' && backboneFamily !== 'resnet');
  return on ? [...datasetKList] : [0];
}

/** MSM interval: fractions of the sorted distances, 0 <= lo < hi <= 1. */
export function checkInterval(v: readonly number[], what: string): void {
  if (v.length !== 2 || !(v[0]! >= 0 && v[0]! < v[1]! && v[1]! <= 1)) {
    throw new ConfigError(`${what} must be lo,hi with 0 <= lo < hi <= 1 (fractions of the sorted distances), got ${v.join(',')}`);
  }
}

/** LNAMD degrees: odd integers 1..15 (an r x r neighbourhood centred on the patch). */
export function checkRList(v: readonly number[], what: string): void {
  const bad = v.filter((r) => !Number.isInteger(r) || r < 1 || r > 15 || r % 2 === 0);
  if (bad.length > 0) {
    throw new ConfigError(`${what} must be odd integers from 1 to 15 (r x r neighbourhoods centred on a patch), got ${bad.join(',')}`);
  }
}

/** Per-stage LNAMD degrees: each list odd degrees (checkRList), none repeated. */
export function checkStageRList(v: readonly (readonly number[])[], what: string): void {
  v.forEach((l, k) => {
    checkRList(l, `${what} (stage ${k + 1})`);
    if (new Set(l).size !== l.length) throw new ConfigError(`${what} (stage ${k + 1}) repeats a degree: ${l.join(',')}`);
  });
}

/** Per-stage LNAMD degrees against a loaded backbone's stages: one list per stage. */
export function checkStageCount(v: readonly (readonly number[])[], stages: readonly number[], what: string): void {
  if (v.length !== stages.length)
    throw new ConfigError(
      `${what} has ${v.length} lists, the backbone has ${stages.length} stages (${stages.join(',')}): one list per stage`,
    );
}

/**
 * `project` K against the channels LNAMD keeps (the first stage's), when the loaded backbone knows
 * them (Backbone.stageChannels): a usage error before any image is read, not after extraction.
 */
export function checkProjectChannels(k: number | undefined, stageChannels: readonly number[] | undefined, what: string): void {
  const c = stageChannels?.[0];
  if (k !== undefined && c !== undefined && k > c)
    throw new ConfigError(`${what} ${k} is more than the ${c} channels of the backbone's first stage (which LNAMD keeps): give 2..${c}`);
}

/** Reads a YAML (.yaml/.yml) or JSON config file. */
export async function loadConfigFile(path: string): Promise<Partial<Settings>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`config file ${path}: cannot read (${code === 'ENOENT' ? 'file not found' : (code ?? (e as Error).message)})`);
  }
  let obj: unknown;
  try {
    obj = extname(path).toLowerCase() === '.json' ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new ConfigError(
      `config file ${path}: not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(e as Error).message.split('\n')[0]}`,
    );
  }
  if (obj === null || obj === undefined) return {};
  return validateSettings(obj, `config file ${path}`);
}

/** defaults <- preset (flags' or file's `preset`) <- file <- flags (flags win); the result is validated again. */
export function mergeSettings(file: Partial<Settings>, flags: Partial<Settings>): Settings {
  const preset = flags.preset ?? file.preset;
  const merged: Record<string, unknown> = { ...DEFAULT_SETTINGS, ...(preset ? PRESETS[preset] : {}) };
  for (const [src, name] of [
    [file, 'config file'],
    [flags, 'command line'],
  ] as const) {
    const clean = Object.fromEntries(Object.entries(src).filter(([, v]) => v !== undefined));
    for (const [k, v] of Object.entries(validateSettings(clean, name))) merged[k] = v;
  }
  validateSettings(merged, 'settings');
  return merged as unknown as Settings;
}

/** Parses a comma or space separated integer list ('1,3,5'). */
export function parseIntList(s: string, what: string): number[] {
  const parts = s.split(/[\s,]+/).filter(Boolean);
  const out = parts.map(Number);
  if (parts.length === 0 || out.some((v) => !Number.isInteger(v) || v < 0))
    throw new ConfigError(`${what}: expected a list of non-negative integers like 1,3,5; got '${s}'`);
  return out;
}

/** Parses a number list ('0,0.3'). */
export function parseNumberList(s: string, what: string): number[] {
  const parts = s.split(/[\s,]+/).filter(Boolean);
  const out = parts.map(Number);
  if (parts.length === 0 || out.some((v) => !Number.isFinite(v)))
    throw new ConfigError(`${what}: expected a list of numbers like 0,0.3; got '${s}'`);
  return out;
}
