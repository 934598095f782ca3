/**
 * `musc report OUT_DIR`: reads every category's outputs, writes the report images under
 * <out>/<cat>/report/ and the page <out>/report.html (atomic).
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { type AssetOptions, type ItemAssets, REPORT_ASSET_DIR, writeCategoryAssets } from './assets.js';
import { renderReportHtml } from './html.js';
import { type CategoryOutputs, listCategoryFolders, readCategoryOutputs } from './model.js';
import type { PageCategory, PageData } from './page-data.js';
import { isPredictFolder, readPredictOutputs } from './predict-model.js';

export const REPORT_FILE = 'report.html';

export interface ReportOptions extends Omit<AssetOptions, 'onProgress'> {
  /** write the assets and report.html under this folder instead of outDir (outputs/report-commit.ts switches them in) */
  stageDir?: string;
  /** page title (default 'MuSc report') */
  title?: string;
  /** progress per category: name, images done, total */
  onProgress?: (category: string, done: number, total: number) => void;
}

export interface ReportResult {
  /** absolute path of report.html */
  file: string;
  data: PageData;
  warnings: string[];
}

const finite = (x: number): number | null => (Number.isFinite(x) ? x : null);

/** '<folder>/report/' with each segment percent-encoded (folder names may hold '#', '%', spaces). */
export function assetBase(folder: string): string {
  return `${encodeURIComponent(folder)}/${REPORT_ASSET_DIR}/`;
}

/** Per image path, the rows the repeated-anomaly filter scored it without (run.json repeat_filter.left_out; paths not in scores.csv are dropped). */
function leftOutRows(cat: CategoryOutputs): Map<string, number[]> {
  const row = new Map(cat.rows.map((r, i) => [r.path, i]));
  const out = new Map<string, number[]>();
  for (const f of cat.run?.repeat_filter ?? []) {
    for (const [path, others] of Object.entries(f?.left_out ?? {})) {
      if (!row.has(path) || !Array.isArray(others)) continue;
      out.set(
        path,
        others.flatMap((p) => (row.has(p) ? [row.get(p)!] : [])),
      );
    }
  }
  return out;
}

/** The page's view of one category. */
export function pageCategory(cat: CategoryOutputs, assets: ItemAssets[], warnings: string[]): PageCategory {
  const r = cat.run;
  const without = leftOutRows(cat);
  return {
    name: cat.name,
    folder: cat.folder,
    base: assetBase(cat.folder),
    dataset: r?.dataset ?? null,
    backbone: r?.backbone?.name
      ? {
          name: r.backbone.name,
          ...(r.backbone.image_size ? { image_size: r.backbone.image_size } : {}),
          ...(r.backbone.stages ? { stages: r.backbone.stages } : {}),
        }
      : null,
    mapSize: cat.size,
    metrics: cat.metrics ? (cat.metrics as unknown as Record<string, number | null>) : null,
    evaluation: cat.evaluation,
    settings: r?.settings ?? null,
    versions: r?.versions ?? null,
    timings: r?.timings_ms ?? null,
    timingsPerImage: r?.timings_ms_per_image ?? null,
    peakRssMb: r?.peak_rss_mb ?? null,
    warnings: [...(r?.warnings ?? []), ...warnings],
    skipped: r?.skipped ?? [],
    items: cat.rows.map((row, i) => {
      const a = assets[i]!;
      const w = without.get(row.path);
      return {
        i,
        id: a.id,
        path: row.path,
        defect: row.defect,
        label: row.label,
        score: finite(row.score_rscin),
        raw: finite(row.score),
        o: a.original ? 1 : 0,
        m: a.map ? 1 : 0,
        g: a.outline ? 1 : 0,
        ...(w?.length ? { w } : {}),
      };
    }),
  };
}

function subtitleOf(cats: CategoryOutputs[]): string {
  const r = cats.find((c) => c.run)?.run;
  const parts: string[] = [];
  if (r?.dataset) parts.push(r.dataset);
  if (r?.backbone?.name) parts.push(`${r.backbone.name}${r.backbone.image_size ? ` @ ${r.backbone.image_size} px` : ''}`);
  parts.push(`${cats.length} categor${cats.length === 1 ? 'y' : 'ies'}, ${cats.reduce((a, c) => a + c.rows.length, 0)} images`);
  return parts.join(' · ');
}

/** The report of a `musc predict` folder: no assets to write (the composites are predict's own files). */
async function buildPredictReport(outDir: string, o: ReportOptions): Promise<ReportResult> {
  const predict = await readPredictOutputs(outDir);
  const ng = predict.items.filter((p) => p.verdict === 'NG').length;
  const subtitle = [
    `predict: ${predict.items.length} images, ${ng} NG`,
    `bank ${predict.bank.path}${predict.bank.backbone ? ` (${predict.bank.backbone})` : ''}`,
  ].join(' · ');
  const data: PageData = { title: o.title ?? 'MuSc report', subtitle, categories: [], predict };
  const file = join(o.stageDir ?? outDir, REPORT_FILE);
  await writeFileAtomic(file, renderReportHtml(data));
  const warnings = predict.skipped.map((s) => `skipped ${s.name}: ${s.reason}`);
  return { file, data, warnings };
}

/** Builds report.html of a `musc run` folder (categories) or of a `musc predict` folder (predictions.json). */
export async function buildReport(outDir: string, o: ReportOptions = {}): Promise<ReportResult> {
  if (await isPredictFolder(outDir)) return buildPredictReport(outDir, o);
  const folders = await listCategoryFolders(outDir);
  const cats: CategoryOutputs[] = [];
  const pages: PageCategory[] = [];
  const warnings: string[] = [];
  for (const folder of folders) {
    const cat = await readCategoryOutputs(outDir, folder);
    const { assets, warnings: w } = await writeCategoryAssets(o.stageDir ?? outDir, cat, {
      ...(o.thumbSize !== undefined ? { thumbSize: o.thumbSize } : {}),
      ...(o.maxLargeSize !== undefined ? { maxLargeSize: o.maxLargeSize } : {}),
      ...(o.norm !== undefined ? { norm: o.norm } : {}),
      ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}),
      onProgress: (d, t) => o.onProgress?.(cat.name, d, t),
    });
    const all = [...cat.warnings, ...w];
    for (const x of all) warnings.push(`${cat.name}: ${x}`);
    cats.push(cat);
    pages.push(pageCategory(cat, assets, all));
  }
  const data: PageData = { title: o.title ?? 'MuSc report', subtitle: subtitleOf(cats), categories: pages };
  const file = join(o.stageDir ?? outDir, REPORT_FILE);
  await writeFileAtomic(file, renderReportHtml(data));
  return { file, data, warnings };
}
