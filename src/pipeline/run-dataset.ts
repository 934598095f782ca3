/**
 * A whole `musc run`: open the dataset, pick the categories, load the backbone once, run and
 * write every category, then summary.json and metrics.md at the top of the output folder.
 * Data problems (missing folder, unknown category, no images) are found before the backbone is
 * loaded.
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { openDataset, selectCategories, defaultKList } from '../datasets/index.js';
import { DatasetError, type Category } from '../datasets/types.js';
import { runCategory } from './run-category.js';
import { writeCategoryOutputs } from '../outputs/category.js';
import { summaryJson, metricsMarkdown, type SummaryEntry } from '../outputs/summary.js';
import type { Settings } from '../config.js';
import type { Backbone, LoadOptions } from '../backbones/types.js';
import type { MetricsFn, Scorer, CategoryResult } from './types.js';
import { ConfigError } from '../config.js';
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

  const backbone = await o.loadBackbone(s.backbone, {
    ...(s.image_size !== undefined ? { imageSize: s.image_size } : {}),
    ...(s.stages !== undefined ? { stages: s.stages } : {}),
    ...(s.weights !== undefined ? { weightsPath: s.weights } : {}),
    device: s.device,
  });
  const entries: SummaryEntry[] = [];
  const results: CategoryResult[] = [];
  try {
    for (const c of cats) {
      o.progress?.start(c.name, c.items.length);
      let r: CategoryResult;
      const rf = refFiles.get(c.name);
      const references = rf ? await extractReferences(rf, backbone, { batchSize: s.batch_size }) : undefined;
      if (rf) o.log?.(`${c.name}: ${rf.length} reference images (${s.mode ?? 'musc'})`);
      try {
        r = await runCategory(c, { backbone, scorer: o.scorer, ...(o.metrics ? { metrics: o.metrics } : {}) }, {
          kind: ds.kind, rList: s.r_list, interval: s.interval, kList, batchSize: s.batch_size, divideNum: s.divide_num,
          ...(s.max_memory !== undefined ? { maxMemoryMb: s.max_memory } : {}),
          maskRule: s.mask_rule, strict: s.strict, seed: s.seed, device: s.device,
          ...(references ? { references, mode: s.mode ?? 'musc' } : {}), ...(decision ? { decision } : {}),
          onProgress: (stage, done, total) => o.progress?.update(done, total, stage),
        });
      } finally {
        o.progress?.stop();
      }
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
  const summary = summaryJson(ds.kind, s.backbone, backbone.imageSize, entries);
  const markdown = metricsMarkdown(`MuSc: ${ds.kind} with ${s.backbone} at ${backbone.imageSize} px`, entries);
  await writeFileAtomic(join(o.out, 'summary.json'), JSON.stringify(summary, null, 2) + '\n');
  await writeFileAtomic(join(o.out, 'metrics.md'), markdown);
  return { out: o.out, dataset: ds.kind, entries, results, markdown };
}
