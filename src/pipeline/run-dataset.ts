/**
 * A whole `musc run`: open the dataset, pick the categories, load the backbone once, run and
 * write every category, then summary.json and metrics.md at the top of the output folder.
 * Data problems (missing folder, unknown category, no images) are found before the backbone is
 * loaded, and a bad weight file fails (ConfigError) before any image is read.
 *
 * Robustness: leftover temporaries of killed runs are removed first; backbone features are
 * cached per image (feature-cache.ts, default <out>/.cache/features) so that a re-run resumes;
 * with several categories, one that cannot be scored (too few readable images) is reported and
 * the others are still written, then the run fails with a DatasetError naming it.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic.js';
import { openDataset, selectCategories, defaultKList } from '../datasets/index.js';
import { DatasetError, type Category } from '../datasets/types.js';
import { runCategory } from './run-category.js';
import { writeCategoryOutputs } from '../outputs/category.js';
import { summaryJson, metricsMarkdown, type SummaryEntry } from '../outputs/summary.js';
import { ConfigError, type Settings } from '../config.js';
import { isBackboneConfigError } from '../backbones/errors.js';
import { FeatureCache, cacheIdentity } from './feature-cache.js';
import { checkInterrupted } from './interrupt.js';
import { registerOutputDir, removeStaleTemporaries } from '../outputs/temp-files.js';
import type { Backbone, LoadOptions } from '../backbones/types.js';
import type { MetricsFn, Scorer, CategoryResult } from './types.js';
import { excludeTestImages, extractReferences, listReferenceImages, referenceFolder } from './references.js';
import { parseDecisionRule } from '../threshold.js';

export type BackboneLoaderFn = (name: string, opts: LoadOptions) => Promise<Backbone>;

export interface ProgressSink {
  start(label: string, total: number): void;
  update(done: number, total: number, stage: string): void;
  stop(): void;
}

export interface DatasetRunOptions {
  data: string;
  out: string;
  settings: Settings;
  loadBackbone: BackboneLoaderFn;
  scorer: Scorer;
  metrics?: MetricsFn;
  /** one line of information (not shown with --quiet) */
  log?: (line: string) => void;
  /** warnings (always shown) */
  warn?: (line: string) => void;
  progress?: ProgressSink;
  /** runs before each category is scored, with the run's feature cache (the cluster runner extracts the category's features on its workers) */
  beforeCategory?: (category: Category, cache: FeatureCache | undefined) => Promise<void>;
}

/** The backbone load options of a run's settings. */
export function backboneLoadOptions(s: Settings): LoadOptions {
  return {
    ...(s.image_size !== undefined ? { imageSize: s.image_size } : {}),
    ...(s.stages !== undefined ? { stages: s.stages } : {}),
    ...(s.weights !== undefined ? { weightsPath: s.weights } : {}),
    device: s.device,
  };
}

export interface DatasetRunResult {
  out: string;
  dataset: string;
  entries: SummaryEntry[];
  results: CategoryResult[];
  markdown: string;
}

export async function runDataset(o: DatasetRunOptions): Promise<DatasetRunResult> {
  const s = o.settings;
  const ds = await openDataset(o.data, s.dataset);
  const names = selectCategories(ds, s.category);
  const explicit = s.category.toLowerCase() !== 'all';
  const cats: Category[] = [];
  for (const name of names) {
    const c = await ds.load(name);
    if (c.items.length === 0) {
      if (explicit) throw new DatasetError(`category '${name}': no images found (layout ${ds.kind}, data ${ds.root})`);
      o.warn?.(`category '${name}': no images, skipped`);
      continue;
    }
    cats.push(c);
  }
  if (cats.length === 0) throw new DatasetError(`no images found in ${ds.root} (layout ${ds.kind})`);
  const kList = s.k_list ?? defaultKList(ds.kind);
  // few-shot references and the decision rule: checked before the backbone is loaded
  if (s.mode === 'musc-plus' && !s.reference_dir) throw new ConfigError('mode musc-plus (MuSc+) needs reference images: give --reference-dir');
  const decision = s.decision !== undefined ? parseDecisionRule(s.decision) : undefined;
  const refFiles = new Map<string, string[]>();
  if (s.reference_dir) {
    for (const c of cats) {
      const listed = await listReferenceImages(await referenceFolder(s.reference_dir, c.name));
      const { files, dropped } = await excludeTestImages(listed, c.items);
      for (const f of dropped) o.warn?.(`reference image ${f} is also a test image of '${c.name}': not used as a reference`);
      if (files.length === 0) throw new DatasetError(`category '${c.name}': every reference image is also a test image`);
      refFiles.set(c.name, files);
    }
  }

  registerOutputDir(o.out);
  const removed = await removeStaleTemporaries(o.out);
  if (removed > 0) o.log?.(`removed ${removed} temporary file${removed > 1 ? 's' : ''} left by an interrupted run in ${o.out}`);

  let backbone: Backbone;
  try {
    backbone = await o.loadBackbone(s.backbone, backboneLoadOptions(s));
  } catch (e) {
    if (isBackboneConfigError(e)) throw new ConfigError(`cannot load backbone '${s.backbone}': ${(e as Error).message}`);
    throw e;
  }

  let cache: FeatureCache | undefined;
  if (s.cache !== false) {
    const dir = s.cache_dir ?? join(o.out, '.cache', 'features');
    registerOutputDir(dir);
    if (s.cache_dir !== undefined) await removeStaleTemporaries(dir);
    cache = new FeatureCache(dir, cacheIdentity({ backbone: backbone.info?.name ?? s.backbone, weightsSha256: backbone.weightsSha256, imageSize: backbone.imageSize, stages: backbone.stages, vips: sharp.versions.vips }), s.feature_storage);
  }
  const entries: SummaryEntry[] = [];
  const results: CategoryResult[] = [];
  const failed: { category: string; reason: string }[] = [];
  try {
    for (const c of cats) {
      o.progress?.start(c.name, c.items.length);
      let r: CategoryResult;
      const hits0 = cache?.hits ?? 0;
      const writes0 = cache?.writes ?? 0;
      const rf = refFiles.get(c.name);
      await o.beforeCategory?.(c, cache);
      const references = rf ? await extractReferences(rf, backbone, { batchSize: s.batch_size, storage: s.feature_storage }) : undefined;
      if (rf) o.log?.(`${c.name}: ${rf.length} reference images (${s.mode ?? 'musc'})`);
      try {
        r = await runCategory(c, { backbone, scorer: o.scorer, ...(o.metrics ? { metrics: o.metrics } : {}), ...(cache ? { cache } : {}) }, {
          kind: ds.kind, rList: s.r_list, interval: s.interval, kList, batchSize: s.batch_size, divideNum: s.divide_num,
          ...(s.max_memory !== undefined ? { maxMemoryMb: s.max_memory } : {}),
          ...(s.max_pixels !== undefined ? { maxPixels: s.max_pixels } : {}),
          maskRule: s.mask_rule, strict: s.strict, seed: s.seed, device: s.device, precision: s.msm_precision, featureStorage: s.feature_storage,
          ...(references ? { references, mode: s.mode ?? 'musc' } : {}), ...(decision ? { decision } : {}),
          onProgress: (stage, done, total) => o.progress?.update(done, total, stage),
          ...(o.log ? { log: o.log } : {}),
        });
      } catch (e) {
        // a category that cannot be scored does not stop the others (several categories only)
        if (!(e instanceof DatasetError) || cats.length === 1) throw e;
        o.progress?.stop();
        o.warn?.(`category '${c.name}' not scored: ${e.message}`);
        failed.push({ category: c.name, reason: e.message });
        continue;
      } finally {
        o.progress?.stop();
      }
      if (r.divideNum > s.divide_num) {
        o.log?.(`${c.name}: divided into ${r.divideNum} subsets (largest ${Math.max(...r.subsets.map((x) => x.length))} images, about ${Math.ceil(r.estimatedBytes / 2 ** 20)} MB) to fit --max-memory ${s.max_memory} MB`);
      }
      if (cache) o.log?.(`${c.name}: features of ${cache.hits - hits0} images from the cache, ${cache.writes - writes0} computed and cached (${cache.dir})`);
      checkInterrupted();
      const settingsOut: Record<string, unknown> = { ...s, dataset: ds.kind, image_size: backbone.imageSize, stages: backbone.stages, k_list: kList, ...(rf ? { reference_images: rf } : {}) };
      const w = await writeCategoryOutputs(o.out, r, {
        heatmaps: s.heatmaps, visNorm: s.vis_norm,
        info: {
          settings: settingsOut, data_root: ds.root,
          backbone: { name: backbone.info?.name ?? s.backbone, weights_path: backbone.weightsPath, weights_sha256: backbone.weightsSha256, image_size: backbone.imageSize, stages: backbone.stages },
        },
      });
      for (const sk of r.skipped) o.warn?.(`skipped ${sk.path}: ${sk.reason}`);
      for (const wn of r.warnings) o.warn?.(wn);
      entries.push({ category: c.name, metrics: w.metrics });
      results.push(r);
      o.log?.(`${c.name}: ${r.items.length} images${r.skipped.length ? `, ${r.skipped.length} skipped` : ''} -> ${w.dir}`);
    }
  } finally {
    await backbone.dispose();
  }
  checkInterrupted();
  const summary = summaryJson(ds.kind, s.backbone, backbone.imageSize, entries);
  const markdown = metricsMarkdown(`MuSc: ${ds.kind} with ${s.backbone} at ${backbone.imageSize} px`, entries);
  await writeFileAtomic(join(o.out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  await writeFileAtomic(join(o.out, 'metrics.md'), markdown);
  if (failed.length > 0) {
    throw new DatasetError(`${failed.length} of ${cats.length} categories could not be scored (${failed.map((f) => f.category).join(', ')}); the other categories' results are in ${o.out}. First: ${failed[0]!.reason}`);
  }
  return { out: o.out, dataset: ds.kind, entries, results, markdown };
}
