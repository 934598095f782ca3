/**
 * A whole `musc run`: open the dataset, pick the categories, load the backbone once, run and
 * write every category, then summary.json and metrics.md at the top of the output folder.
 * Data problems (missing folder, unknown category, no images) are found before the backbone is
 * loaded, and a bad weight file fails (ConfigError) before any image is read.
 *
 * Robustness: the output folder is checked and created first (outputs/out-dir.ts) and locked
 * (outputs/lock.ts: one process per folder); an interrupted switch of a previous run is finished
 * and leftover temporaries of killed runs are removed. Every output of the run is written into a
 * staging folder and switched in at the end as one transaction (outputs/transaction.ts): until
 * then the previous results stay complete; a failure or kill leaves the old set or the new set.
 * Backbone features are cached per image (features/cache.ts, default <out>/.cache/features, not
 * staged) so that a re-run resumes. With several categories, one that cannot be scored (too few
 * readable images) is reported, the others are still written, then the run fails with a
 * PartialRunError (a DatasetError: exit 3) that carries the result, so that a report can be built.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { openDataset, selectCategories, defaultKList, type OpenedDataset as Dataset } from '../datasets/index.js';
import { DatasetError, type Category } from '../datasets/types.js';
import { runCategory } from './run-category.js';
import { categoryFolder, writeCategoryOutputs } from '../outputs/category.js';
import { runPixelScale, writeRunWhere } from '../bank/run-where.js';
import { prepareOutputFolder, unwritableOutput } from '../outputs/out-dir.js';
import { acquireOutputLock } from '../outputs/lock.js';
import { OutputTransaction, recoverOutputs } from '../outputs/transaction.js';
import { summaryJson, metricsMarkdown, type SummaryEntry } from '../outputs/summary.js';
import { checkProjectChannels, checkStageCount, ConfigError, rscinWindows, type Settings } from '../config.js';
import { degreesLabel, resolveDegrees, resolveNormExponent } from '../core/defaults.js';
import { isBackboneConfigError } from '../backbones/errors.js';
import { densityActive, densityExponentWarning } from '../core/density.js';
import { FeatureCache, featureIdentity } from '../features/cache.js';
import { checkInterrupted } from './interrupt.js';
import { registerOutputDir, removeStaleTemporaries } from '../outputs/temp-files.js';
import { inputSizesLabel, stageLayerNames, type Backbone, type LoadOptions } from '../backbones/types.js';
import type { MetricsFn, Scorer, CategoryResult } from './types.js';
import { parseImageScoreRule } from '../core/maps.js';
import { excludeTestImages, extractReferences, listReferenceImages, referenceFolder } from '../features/references.js';
import { parseDecisionRule, type DecisionRule } from '../threshold.js';

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
  /** runs before each category is scored, with the run's feature cache (the cluster runner extracts its features on the workers) */
  beforeCategory?: (category: Category, cache: FeatureCache | undefined) => Promise<void>;
}

/** The backbone load options of a run's settings. */
export function backboneLoadOptions(s: Settings): LoadOptions {
  return {
    ...(s.image_size !== undefined ? { imageSize: s.image_size } : {}),
    ...(s.stages !== undefined ? { stages: s.stages } : {}),
    ...(s.weights !== undefined ? { weightsPath: s.weights } : {}),
    ...(s.border_pad !== undefined ? { borderPad: s.border_pad } : {}),
    fuseSizes: s.fuse_sizes ?? 'auto', // the ResNet entry's default sizes (resnet.ts); the library's loadBackbone: none
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

/** Some categories could not be scored; the others were written (`result`). Exit 3. */
export class PartialRunError extends DatasetError {
  constructor(
    message: string,
    readonly result: DatasetRunResult,
  ) {
    super(message);
    this.name = 'PartialRunError';
  }
}

/** The output folder checked, created and locked, by its absolute path. Release after. */
export async function openOutputFolder(
  out: string,
  data: string,
  log?: (line: string) => void,
): Promise<{ out: string; release: () => Promise<void> }> {
  const abs = await prepareOutputFolder(out, data);
  let release: () => Promise<void>;
  try {
    release = await acquireOutputLock(abs);
  } catch (e) {
    throw unwritableOutput(out, e);
  }
  try {
    const rec = await recoverOutputs(abs);
    if (rec) log?.(`${abs}: ${rec}`);
  } catch (e) {
    await release();
    throw e;
  }
  return { out: abs, release };
}

export async function runDataset(o: DatasetRunOptions): Promise<DatasetRunResult> {
  const folder = await openOutputFolder(o.out, o.data, o.log);
  try {
    return await runLocked({ ...o, out: folder.out });
  } finally {
    await folder.release();
  }
}

async function runLocked(o: DatasetRunOptions): Promise<DatasetRunResult> {
  const s = o.settings;
  const ds = await openDataset(o.data, s.dataset);
  const cats = await loadCategories(o, ds);
  // few-shot references and the decision rule: checked before the backbone is loaded
  if (s.mode === 'musc-plus' && !s.reference_dir) {
    throw new ConfigError('mode musc-plus (MuSc+) needs reference images: give --reference-dir');
  }
  const decision = s.decision !== undefined ? parseDecisionRule(s.decision) : undefined;
  if (densityActive(s.density_exponent) && s.msm_precision !== 'fast')
    throw new ConfigError(`--density-exponent needs the 'fast' MSM precision (nearest-patch indices), not '${s.msm_precision}'`);
  if (densityActive(s.density_exponent) && s.reference_dir)
    throw new ConfigError('--density-exponent scores zero-shot batches: it cannot be used with --reference-dir');
  if (s.density_scope === 'image' && !densityActive(s.density_exponent))
    throw new ConfigError('--density-scope image: give --density-exponent too (the scope of which normalisation)');
  const aboveOne = densityExponentWarning(s.density_exponent);
  if (aboveOne) o.warn?.(aboveOne);
  const refFiles = await referenceFiles(o, cats);

  registerOutputDir(o.out);
  const removed = await removeStaleTemporaries(o.out);
  if (removed > 0) o.log?.(`removed ${removed} temporary file${removed > 1 ? 's' : ''} left by an interrupted run in ${o.out}`);
  const backbone = await loadRunBackbone(o);
  const kList = rscinWindows(s, defaultKList(ds.kind), backbone.info?.family); // RsCIN auto: by the loaded backbone's family
  // LNAMD degrees: per stage when given (their union), else r_list, else by the loaded backbone (core/defaults.ts)
  const { rList, stageRList } = resolveDegrees(backbone, s.r_list, await checkedBackboneUse(s, backbone));
  const normExponent = resolveNormExponent(backbone, s.norm_exponent, s.msm_precision);
  let disposed = false;
  const dispose = async (): Promise<void> => {
    if (!disposed) {
      disposed = true;
      await backbone.dispose();
    }
  };
  const tx = await OutputTransaction.begin(o.out);
  registerOutputDir(tx.dir);
  try {
    const cache = await openFeatureCache(o, backbone);
    const run: DatasetRun = {
      o,
      ds,
      backbone,
      kList,
      rList,
      ...(stageRList ? { stageRList } : {}),
      normExponent,
      staging: tx.dir,
      refFiles,
      ...(cache ? { cache } : {}),
      ...(decision ? { decision } : {}),
    };
    const done = await runCategories(run, cats);
    await dispose();
    checkInterrupted();
    const summary = summaryJson(ds.kind, s.backbone, backbone.imageSize, done.entries);
    const markdown = metricsMarkdown(runTitle(ds.kind, s.backbone, backbone, degreesLabel({ rList, stageRList }), s.project), done.entries);
    await writeFileAtomic(join(tx.dir, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
    await writeFileAtomic(join(tx.dir, 'metrics.md'), markdown);
    // the previous report shows the replaced categories' images: it goes with them (rebuilt after)
    const staged = done.results.map((r) => categoryFolder(r.name));
    await tx.commit([...staged, 'summary.json', 'metrics.md'], ['report.html']);
    const res: DatasetRunResult = { out: o.out, dataset: ds.kind, entries: done.entries, results: done.results, markdown };
    if (done.failed.length > 0) {
      const names = done.failed.map((f) => f.category).join(', ');
      const msg =
        `${done.failed.length} of ${cats.length} categories could not be scored (${names}); ` +
        `the other categories' results are in ${o.out}`;
      throw new PartialRunError(`${msg}. First: ${done.failed[0]!.reason}`, res);
    }
    return res;
  } finally {
    await dispose();
    await tx.abort();
  }
}

/** metrics.md's title: the backbone, its input sizes and the LNAMD degrees the numbers come from. */
function runTitle(kind: string, name: string, b: Backbone, r: string, project: number | undefined): string {
  return `MuSc: ${kind} with ${name} at ${inputSizesLabel(b)}, r ${r}${project ? `, features projected to ${project} channels` : ''}`;
}

/**
 * The settings that depend on the loaded backbone, checked before any image is read: stage_r_list
 * (one list per stage) and project (at most the channels LNAMD keeps). Returns stage_r_list; the
 * backbone is released on error.
 */
async function checkedBackboneUse(s: Settings, backbone: Backbone): Promise<number[][] | undefined> {
  try {
    if (s.stage_r_list) checkStageCount(s.stage_r_list, backbone.stages, "'stage_r_list' (--stage-r-list)");
    if (Array.isArray(s.density_exponent) && s.density_exponent.length !== backbone.stages.length)
      throw new ConfigError(
        `'density_exponent' (--density-exponent) has ${s.density_exponent.length} exponents, the backbone has ${backbone.stages.length} stages (${backbone.stages.join(',')}): give one, or one per stage`,
      );
    checkProjectChannels(s.project, backbone.stageChannels, "'project' (--project)");
    return s.stage_r_list;
  } catch (e) {
    await backbone.dispose();
    throw e;
  }
}

/** Every category in turn (written into the staging folder). */
async function runCategories(run: DatasetRun, cats: Category[]) {
  const entries: SummaryEntry[] = [];
  const results: CategoryResult[] = [];
  const failed: { category: string; reason: string }[] = [];
  for (const c of cats) {
    const done = await runOneCategory(run, c, cats.length);
    if ('failed' in done) failed.push({ category: c.name, reason: done.failed });
    else {
      entries.push(done.entry);
      results.push(done.result);
    }
  }
  return { entries, results, failed };
}

interface CategoryDone {
  entry: SummaryEntry;
  result: CategoryResult;
}

/** What every category of a run shares. */
interface DatasetRun {
  o: DatasetRunOptions;
  ds: Dataset;
  backbone: Backbone;
  kList: number[];
  rList: number[];
  stageRList?: number[][];
  /** LNAMD's norm exponent (resolveNormExponent) */
  normExponent: number;
  /** the transaction's staging folder: every output file is written here, then switched in */
  staging: string;
  cache?: FeatureCache;
  decision?: DecisionRule;
  /** category -> reference images (few-shot) */
  refFiles: Map<string, string[]>;
}

/** The selected categories with images (an explicitly named empty one is an error). */
async function loadCategories(o: DatasetRunOptions, ds: Dataset): Promise<Category[]> {
  const s = o.settings;
  const explicit = s.category.toLowerCase() !== 'all';
  const cats: Category[] = [];
  for (const name of selectCategories(ds, s.category)) {
    const c = await ds.load(name);
    if (c.items.length === 0) {
      if (explicit) throw new DatasetError(`category '${name}': no images found (layout ${ds.kind}, data ${ds.root})`);
      o.warn?.(`category '${name}': no images, skipped`);
      continue;
    }
    cats.push(c);
  }
  if (cats.length === 0) throw new DatasetError(`no images found in ${ds.root} (layout ${ds.kind})`);
  return cats;
}

/** Reference images per category (--reference-dir), without the category's own test images. */
async function referenceFiles(o: DatasetRunOptions, cats: Category[]): Promise<Map<string, string[]>> {
  const refFiles = new Map<string, string[]>();
  const dir = o.settings.reference_dir;
  if (!dir) return refFiles;
  for (const c of cats) {
    const listed = await listReferenceImages(await referenceFolder(dir, c.name));
    const { files, dropped } = await excludeTestImages(listed, c.items);
    for (const f of dropped) o.warn?.(`reference image ${f} is also a test image of '${c.name}': not used as a reference`);
    if (files.length === 0) throw new DatasetError(`category '${c.name}': every reference image is also a test image`);
    refFiles.set(c.name, files);
  }
  return refFiles;
}

/** The run's backbone; a bad weight file or option is a ConfigError. */
async function loadRunBackbone(o: DatasetRunOptions): Promise<Backbone> {
  const s = o.settings;
  try {
    return await o.loadBackbone(s.backbone, backboneLoadOptions(s));
  } catch (e) {
    if (isBackboneConfigError(e)) throw new ConfigError(`cannot load backbone '${s.backbone}': ${(e as Error).message}`);
    throw e;
  }
}

/** The feature cache (default <out>/.cache/features), unless --no-cache. */
async function openFeatureCache(o: DatasetRunOptions, backbone: Backbone): Promise<FeatureCache | undefined> {
  const s = o.settings;
  if (s.cache === false) return undefined;
  const dir = s.cache_dir ?? join(o.out, '.cache', 'features');
  registerOutputDir(dir);
  if (s.cache_dir !== undefined) await removeStaleTemporaries(dir);
  return new FeatureCache(dir, featureIdentity(backbone, s.backbone), s.feature_storage);
}

/**
 * One category: references, runCategory, outputs. A category that cannot be scored (DatasetError)
 * does not stop the others when there are several: it is returned as failed.
 */
async function runOneCategory(run: DatasetRun, c: Category, nCats: number): Promise<CategoryDone | { failed: string }> {
  const { o, ds, backbone, cache } = run;
  const s = o.settings;
  o.progress?.start(c.name, c.items.length);
  let r: CategoryResult;
  const rf = run.refFiles.get(c.name);
  const refOpts = { batchSize: s.batch_size, storage: s.feature_storage, ...(cache ? { cache } : {}) };
  await o.beforeCategory?.(c, cache);
  const references = rf ? await extractReferences(rf, backbone, refOpts) : undefined;
  if (rf) o.log?.(`${c.name}: ${rf.length} reference images (${s.mode ?? 'musc'})`);
  const hits0 = cache?.hits ?? 0; // the test images' features only
  const writes0 = cache?.writes ?? 0;
  try {
    r = await runCategory(
      c,
      { backbone, scorer: o.scorer, ...(o.metrics ? { metrics: o.metrics } : {}), ...(cache ? { cache } : {}) },
      {
        kind: ds.kind,
        rList: run.rList,
        ...(run.stageRList ? { stageRList: run.stageRList } : {}),
        imageScore: parseImageScoreRule(s.image_score),
        repeatFilter: s.repeat_filter === 'on',
        ...(s.score_grid !== undefined ? { scoreGrid: s.score_grid } : {}),
        ...(s.project !== undefined ? { project: s.project } : {}),
        ...(run.normExponent !== 1 ? { normExponent: run.normExponent } : {}),
        ...(densityActive(s.density_exponent) ? { densityExponent: s.density_exponent } : {}),
        ...(densityActive(s.density_exponent) && s.density_scope ? { densityScope: s.density_scope } : {}),
        interval: s.interval,
        kList: run.kList,
        batchSize: s.batch_size,
        divideNum: s.divide_num,
        ...(s.max_memory !== undefined ? { maxMemoryMb: s.max_memory } : {}),
        ...(s.max_pixels !== undefined ? { maxPixels: s.max_pixels } : {}),
        maskRule: s.mask_rule,
        strict: s.strict,
        seed: s.seed,
        device: s.device,
        precision: s.msm_precision,
        featureStorage: s.feature_storage,
        ...(references ? { references, mode: s.mode ?? 'musc' } : {}),
        ...(run.decision ? { decision: run.decision } : {}),
        onProgress: (stage, done, total) => o.progress?.update(done, total, stage),
        ...(o.log ? { log: o.log } : {}),
      },
    );
  } catch (e) {
    // a category that cannot be scored does not stop the others (several categories only)
    if (!(e instanceof DatasetError) || nCats === 1) throw e;
    o.progress?.stop();
    o.warn?.(`category '${c.name}' not scored: ${e.message}`);
    return { failed: e.message };
  } finally {
    o.progress?.stop();
  }
  if (r.divideNum > s.divide_num) {
    const largest = Math.max(...r.subsets.map((x) => x.length));
    const mb = Math.ceil(r.estimatedBytes / 2 ** 20);
    const fit = `to fit --max-memory ${s.max_memory} MB`;
    o.log?.(`${c.name}: divided into ${r.divideNum} subsets (largest ${largest} images, about ${mb} MB) ${fit}`);
  }
  if (cache) {
    const computed = cache.writes - writes0;
    o.log?.(`${c.name}: features of ${cache.hits - hits0} images from the cache, ${computed} computed and cached (${cache.dir})`);
  }
  checkInterrupted();
  const w = await writeOutputs(run, r, rf);
  for (const sk of r.skipped) o.warn?.(`skipped ${sk.path}: ${sk.reason}`);
  for (const wn of r.warnings) o.warn?.(wn);
  const sk = r.skipped.length ? `, ${r.skipped.length} skipped` : '';
  o.log?.(`${c.name}: ${r.items.length} images${sk} -> ${join(o.out, categoryFolder(r.name))}`);
  return { entry: { category: c.name, metrics: w.metrics }, result: r };
}

/** The category's output files, with the settings and backbone they were made with. */
function writeOutputs(run: DatasetRun, r: CategoryResult, rf: string[] | undefined): ReturnType<typeof writeCategoryOutputs> {
  const { o, ds, backbone } = run;
  const s = o.settings;
  const settingsOut: Record<string, unknown> = {
    ...s,
    dataset: ds.kind,
    image_size: backbone.imageSize,
    stages: backbone.stages,
    r_list: run.rList,
    ...(run.stageRList ? { stage_r_list: run.stageRList } : {}),
    norm_exponent: run.normExponent,
    k_list: run.kList,
    ...(rf ? { reference_images: rf } : {}),
  };
  return writeCategoryOutputs(run.staging, r, {
    heatmapScale: runPixelScale(r),
    where: (dir, res) => writeRunWhere(dir, res, s.heatmaps !== 'none'),
    heatmaps: s.heatmaps,
    visNorm: s.norm,
    info: {
      settings: settingsOut,
      data_root: ds.root,
      backbone: {
        name: backbone.info?.name ?? s.backbone,
        weights_path: backbone.weightsPath,
        weights_sha256: backbone.weightsSha256,
        image_size: backbone.imageSize,
        stages: backbone.stages,
        border_pad: backbone.borderPad ?? 0,
        fuse_sizes: [...(backbone.fuseSizes ?? [])],
        ...(backbone.info ? { layers: stageLayerNames(backbone.info.family, backbone.stages) } : {}),
      },
    },
  });
}
