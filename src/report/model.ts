/**
 * The report's data model, read from a `musc run` output folder:
 *
 *   <out>/summary.json                 category order (optional: else every sub-folder with scores.csv, sorted)
 *   <out>/<cat>/scores.csv             path,defect,label,score,score_rscin (required)
 *   <out>/<cat>/metrics.json           the eight metrics and counts (optional)
 *   <out>/<cat>/run.json               settings, timings, data_root, dataset (optional)
 *   <out>/<cat>/maps.safetensors       F32 [N, S, S] maps, row order = scores.csv (optional)
 *
 * The ranking score is score_rscin (the classification score the image metrics use); the raw
 * image score of the map is shown beside it. Its ROC curve, F1-optimal and label-free thresholds come from
 * the evaluator (src/metrics/evaluator.ts, the run's --decision rule from metrics.json), as in
 * `musc run`; the page only shows them. Mask files are not in the outputs: they are found again from
 * the dataset layout (run.json data_root + dataset + category), matched by relative path.
 */
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseScoresCsv, type ScoreRow } from '../outputs/scores.js';
import { readMaps } from '../outputs/maps.js';
import { openDataset } from '../datasets/index.js';
import type { DatasetKind } from '../datasets/types.js';
import type { MetricsJson } from '../outputs/metrics-json.js';
import { evaluateImages, type ImageEvaluation } from '../metrics/evaluator.js';
import { DEFAULT_DECISION_RULE, type DecisionRule } from '../threshold.js';

/** A problem with the output folder that prevents a report (names the file). */
export class ReportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReportError';
  }
}

/** The parts of run.json the report shows (all optional: older or partial runs). */
export interface RunInfoForReport {
  category?: string;
  dataset?: string;
  data_root?: string;
  settings?: Record<string, unknown>;
  backbone?: { name?: string; image_size?: number; stages?: number[]; weights_path?: string };
  versions?: Record<string, string>;
  divide_num_used?: number;
  n_images?: number;
  timings_ms?: Record<string, number>;
  timings_ms_per_image?: Record<string, number>;
  peak_rss_mb?: number;
  skipped?: { path: string; reason: string }[];
  warnings?: string[];
  /** per subset: the repeated-anomaly filter's left_out (image path -> the image paths left out of its pool) */
  repeat_filter?: ({ left_out?: Record<string, string[]> } | null)[];
}

/** One category's outputs as read from disk. */
export interface CategoryOutputs {
  /** display name (run.json category, else the folder name) */
  name: string;
  /** folder name under <out> */
  folder: string;
  rows: ScoreRow[];
  metrics: MetricsJson | null;
  /** curve and thresholds of the ranking scores (score_rscin) */
  evaluation: ImageEvaluation;
  run: RunInfoForReport | null;
  /** [N, S, S] in scores.csv row order, or null when maps.safetensors is absent */
  maps: Float32Array | null;
  /** S (0 without maps) */
  size: number;
  /** absolute image path per row, or null when the data root is unknown */
  images: (string | null)[];
  /** mask files per row (null: none known) */
  masks: (string[] | null)[];
  /** non-fatal problems (missing maps, masks not found, ...) */
  warnings: string[];
}

async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch {
    return false;
  }
}

async function readJson<T>(file: string): Promise<T | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ReportError(`${file}: cannot read: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new ReportError(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

/** Category folders of an output folder: summary.json's order when present, else sorted sub-folders with scores.csv. */
export async function listCategoryFolders(outDir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = (await readdir(outDir, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch (e) {
    throw new ReportError(`output folder ${outDir}: cannot read: ${(e as Error).message}`);
  }
  const withScores: string[] = [];
  for (const d of entries.sort()) if (await exists(join(outDir, d, 'scores.csv'))) withScores.push(d);
  const summary = await readJson<{ categories?: { category?: string }[] }>(join(outDir, 'summary.json'));
  if (summary?.categories?.length) {
    // summary.json names categories; folders are categoryFolder(name), usually the same string
    const order = summary.categories.map((c) => c.category ?? '');
    const rank = (d: string): number => {
      const k = order.indexOf(d);
      return k < 0 ? order.length : k;
    };
    withScores.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  }
  if (withScores.length === 0)
    throw new ReportError(`${outDir}: no category outputs found (expected <category>/scores.csv from 'musc run')`);
  return withScores;
}

/** Mask files and absolute image paths for the rows, from the dataset layout recorded in run.json. */
async function locateFiles(
  run: RunInfoForReport | null,
  rows: ScoreRow[],
  warnings: string[],
): Promise<{ images: (string | null)[]; masks: (string[] | null)[] }> {
  const images: (string | null)[] = rows.map(() => null);
  const masks: (string[] | null)[] = rows.map(() => null);
  if (!run?.data_root) {
    warnings.push('run.json has no data_root: originals and masks are not shown');
    return { images, masks };
  }
  const root = run.data_root;
  rows.forEach((r, i) => (images[i] = join(root, ...r.path.split('/'))));
  if (!rows.some((r) => r.label === 1)) return { images, masks };
  try {
    const ds = await openDataset(root, run.dataset as DatasetKind | undefined);
    const name =
      run.category && ds.categories.includes(run.category) ? run.category : ds.categories.length === 1 ? ds.categories[0]! : run.category;
    if (!name) throw new Error('category unknown');
    const cat = await ds.load(name);
    const byRel = new Map(cat.items.map((it) => [it.rel, it.masks]));
    let found = 0;
    rows.forEach((r, i) => {
      const m = byRel.get(r.path);
      if (m?.length) {
        masks[i] = m;
        found++;
      }
    });
    if (found === 0) warnings.push(`no mask files found for this category under ${root}`);
  } catch (e) {
    warnings.push(`masks not shown: cannot list the dataset at ${root}: ${(e as Error).message}`);
  }
  return { images, masks };
}

/** The label-free rule of the run (metrics.json decision_method, decision_k), else the default (mad, k = 3). */
export function runDecisionRule(metrics: MetricsJson | null): DecisionRule {
  if (metrics?.decision_method === 'otsu') return { method: 'otsu' };
  const k = metrics?.decision_k;
  if (metrics?.decision_method === 'mad' && typeof k === 'number' && k >= 0) return { method: 'mad', k };
  return DEFAULT_DECISION_RULE;
}

/** Reads one category's outputs. */
export async function readCategoryOutputs(outDir: string, folder: string): Promise<CategoryOutputs> {
  const dir = join(outDir, folder);
  const scoresFile = join(dir, 'scores.csv');
  let rows: ScoreRow[];
  try {
    rows = parseScoresCsv(await readFile(scoresFile, 'utf8'));
  } catch (e) {
    throw new ReportError(`${scoresFile}: ${(e as Error).message}`);
  }
  const warnings: string[] = [];
  const metrics = await readJson<MetricsJson>(join(dir, 'metrics.json'));
  const run = await readJson<RunInfoForReport>(join(dir, 'run.json'));
  let maps: Float32Array | null = null;
  let size = 0;
  const mapsFile = join(dir, 'maps.safetensors');
  if (await exists(mapsFile)) {
    try {
      const m = await readMaps(mapsFile);
      if (m.n !== rows.length) throw new Error(`${m.n} maps for ${rows.length} rows of scores.csv`);
      const bad = m.paths.findIndex((p, i) => p !== rows[i]!.path);
      if (m.paths.length && bad >= 0)
        throw new Error(`map ${bad} is of '${m.paths[bad]}' but row ${bad} of scores.csv is '${rows[bad]!.path}'`);
      maps = m.maps;
      size = m.size;
    } catch (e) {
      throw new ReportError(`${mapsFile}: ${(e as Error).message}`);
    }
  } else warnings.push('no maps.safetensors: heatmaps are not shown');
  const { images, masks } = await locateFiles(run, rows, warnings);
  const evaluation = evaluateImages(
    rows.map((r) => r.score_rscin),
    rows.map((r) => r.label),
    runDecisionRule(metrics),
  );
  return { name: run?.category ?? folder, folder, rows, metrics, evaluation, run, maps, size, images, masks, warnings };
}
