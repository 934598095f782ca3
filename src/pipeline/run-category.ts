/**
 * The end-to-end MuSc run for one category, following models/musc.py `make_category_data`:
 *
 *   subsets (datasets/*.py sub_datasets, divide_num; automatic with --max-memory)
 *   for each subset (score-subsets.ts):
 *     features: the feature store (decode + preprocess + backbone in batches, or the cache)
 *     scorePatches (LNAMD + MSM over stages and r) -> patch scores [n_s, h, w]
 *     bilinear (align_corners) upsampling to the input size -> maps [n_s, S, S]
 *     image score of each map by the rule (ac_score = the max; default the top 2.5% mean), from
 *     the repeated-anomaly filter's scores where it ran
 *   back to dataset order
 *   RsCIN over the whole category with the image tokens (k_list)
 *   evaluation (evaluate.ts, when labels exist): RsCIN scores vs labels, maps vs masks at S x S
 *
 * A bad image is recorded and skipped (or fails the run with strict). Results are put back in
 * dataset order (the reference concatenates subsets; metrics do not depend on the order).
 */
import { performance } from 'node:perf_hooks';
import { divideSubsets } from '../datasets/divide.js';
import { DatasetError, type Category, type DatasetItem } from '../datasets/types.js';
import { FeatureStore, ImageSkipError } from '../features/store.js';
import { autoDivideNum, readablePaths } from './memory.js';
import { densityActive } from '../core/density.js';
import { checkInterrupted } from './interrupt.js';
import { evaluateCategory } from './evaluate.js';
import { scoreSubsets, type ScoredSubsets } from './score-subsets.js';
import {
  DEFAULT_FEATURE_STORAGE,
  type CategoryResult,
  type PipelineDeps,
  type PipelineOptions,
  type SkippedImage,
  type StageTimings,
} from './types.js';

export { ImageSkipError };

/** What the steps of one category share. */
export interface CategoryRun {
  category: Category;
  deps: PipelineDeps;
  opts: PipelineOptions;
  /** map side S (the backbone's input size) */
  S: number;
  store: FeatureStore;
  t: StageTimings;
  warnings: string[];
  skipped: SkippedImage[];
}

/** The category in dataset order: the scored images, their maps [N, S, S] and tokens [N, D]. */
interface Ordered {
  items: DatasetItem[];
  sizes: ([number, number] | undefined)[];
  maps: Float32Array;
  tokens: Float32Array;
  /** [N] image scores (scoreSubsets: by the rule, from the filtered scores where the filter ran) */
  imageScores: Float64Array;
  /** subsets actually scored: indices into `items` */
  subsets: number[][];
  /** per subset, what the repeated-anomaly filter left out (leftOut: indices into `items`) */
  repeatFilter: ScoredSubsets['repeatFilter'];
}

export async function runCategory(category: Category, deps: PipelineDeps, opts: PipelineOptions): Promise<CategoryResult> {
  const run = startRun(category, deps, opts);
  const { subsets, divideNum } = await planSubsets(run);
  const scored = await scoreSubsets(run, subsets);
  const ord = inDatasetOrder(run, scored);
  const { t, S } = run;
  const N = ord.items.length;
  const imageScores = ord.imageScores;
  const t0 = performance.now();
  const rscinScores = deps.scorer.rscin(imageScores, { n: N, d: run.store.tokenDim, data: ord.tokens }, opts.kList);
  t.rscin += performance.now() - t0;
  const evalInput = { items: ord.items, sizes: ord.sizes, maps: ord.maps, size: S, rscinScores };
  const ev = await evaluateCategory(evalInput, deps.metrics, opts, run.warnings);
  t.metrics += ev.ms;
  const decisions = ev.decisions;
  t.decode = run.store.timings.decode;
  t.backbone = run.store.timings.backbone;
  return {
    name: category.name,
    kind: category.kind,
    root: category.root,
    items: ord.items,
    skipped: run.skipped,
    size: S,
    maps: ord.maps,
    imageScores,
    rscinScores,
    masks: ev.masks,
    metrics: ev.metrics,
    subsets: ord.subsets,
    repeatFilter: ord.repeatFilter,
    divideNum,
    estimatedBytes: scored.estimatedBytes,
    timings: t,
    warnings: run.warnings,
    f1Threshold: ev.f1Threshold,
    ...(decisions ? { decisions } : {}),
    ...(opts.references ? { referenceFiles: opts.references.files } : {}),
  };
}

/** Checks the inputs and sets up the feature store (cache, storage, skip policy). */
function startRun(category: Category, deps: PipelineDeps, opts: PipelineOptions): CategoryRun {
  if (category.items.length === 0) throw new DatasetError(`category '${category.name}': no images found under ${category.root}`);
  if (opts.mode === 'musc-plus' && !opts.references) throw new Error('MuSc+ (mode musc-plus) needs reference images');
  const unreadable = category.unreadable ?? [];
  const warnings = [...category.warnings];
  const store = new FeatureStore({
    backbone: deps.backbone,
    storage: opts.featureStorage ?? DEFAULT_FEATURE_STORAGE,
    batchSize: opts.batchSize,
    ...(deps.cache ? { cache: deps.cache } : {}),
    ...(deps.decode ? { decode: deps.decode } : {}),
    ...(opts.maxPixels !== undefined ? { maxPixels: opts.maxPixels } : {}),
    badFiles: opts.strict ? 'strict' : 'skip',
    warn: (w) => warnings.push(w),
    beforeBatch: checkInterrupted,
  });
  if (opts.strict && unreadable.length > 0) throw new ImageSkipError(`${unreadable[0]!.path}: ${unreadable[0]!.reason} (--strict)`);
  const t: StageTimings = { decode: 0, backbone: 0, scoring: 0, lnamd: 0, msm: 0, rscin: 0, metrics: 0, write: 0 };
  return { category, deps, opts, S: deps.backbone.imageSize, store, t, warnings, skipped: [] };
}

/**
 * The subsets (indices into the category's items), divided automatically with --max-memory (one
 * probe image gives the feature sizes). Files the dataset could not list come first in `skipped`.
 */
async function planSubsets(run: CategoryRun): Promise<{ subsets: number[][]; divideNum: number }> {
  const { category, opts } = run;
  const all = category.items;
  const paths = all.map((it) => it.path);
  let divideNum = opts.divideNum;
  if (opts.maxMemoryMb !== undefined) {
    const dims = await run.store.probe(all);
    if (dims) {
      try {
        const readable = await readablePaths(paths, opts.maxPixels); // unreadable images take no memory
        const budget = opts.maxMemoryMb * 2 ** 20;
        const indexed = densityActive(opts.densityExponent); // --density-exponent: a table's nearest indices too
        divideNum = autoDivideNum(paths, dims, run.S, budget, opts.divideNum, opts.seed, run.store.storage, readable, indexed).divideNum;
      } catch (e) {
        throw new DatasetError(`category '${category.name}': ${(e as Error).message}`);
      }
    }
  }
  for (const u of category.unreadable ?? []) run.skipped.push({ path: u.rel, reason: u.reason });
  return { subsets: divideSubsets(paths, divideNum, opts.seed), divideNum };
}

/** Scored images back in dataset order, with their maps and tokens. */
function inDatasetOrder(run: CategoryRun, scored: ScoredSubsets): Ordered {
  const all = run.category.items;
  const S = run.S,
    D = run.store.tokenDim;
  const keptIdx = all.map((_, i) => i).filter((i) => scored.mapOf.has(i));
  if (keptIdx.length === 0) {
    const first = run.skipped[0];
    const name = run.category.name;
    throw new DatasetError(`category '${name}': none of the ${all.length} images could be read (first: ${first?.path}: ${first?.reason})`);
  }
  const pos = new Map(keptIdx.map((i, k) => [i, k]));
  const maps = new Float32Array(keptIdx.length * S * S);
  const tokens = new Float32Array(keptIdx.length * D);
  keptIdx.forEach((i, k) => {
    maps.set(scored.mapOf.get(i)!, k * S * S);
    tokens.set(scored.tokenOf.get(i)!, k * D);
  });
  return {
    items: keptIdx.map((i) => all[i]!),
    sizes: keptIdx.map((i) => scored.sizeOf.get(i)),
    maps,
    tokens,
    imageScores: Float64Array.from(keptIdx, (i) => scored.imageScoreOf.get(i)!),
    subsets: scored.subsets.map((s) => s.map((i) => pos.get(i)!)),
    repeatFilter: scored.repeatFilter.map((f) => f && { ...f, leftOut: f.leftOut.map((js) => js.map((i) => pos.get(i)!)) }),
  };
}
