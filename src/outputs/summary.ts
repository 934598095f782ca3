/**
 * Top-level outputs: summary.json (every category's metrics.json plus the mean over categories)
 * and metrics.md (a table like the paper's: percentages with one decimal, a mean row).
 * The mean of a metric skips categories where it is null; null when all are.
 */
import { METRIC_KEYS } from '../metrics/index.js';
import type { MetricsJson } from './metrics-json.js';

export interface SummaryEntry {
  category: string;
  metrics: MetricsJson;
}

export interface SummaryJson {
  dataset: string;
  backbone: string;
  image_size: number;
  categories: ({ category: string } & MetricsJson)[];
  mean: Record<string, number | null>;
}

export function meanMetrics(entries: SummaryEntry[]): Record<string, number | null> {
  const mean: Record<string, number | null> = {};
  for (const k of METRIC_KEYS) {
    const vals = entries.map((e) => e.metrics[k]).filter((v): v is number => typeof v === 'number');
    mean[k] = vals.length ? vals.reduce((a, b) => a + b, 0) / vals.length : null;
  }
  return mean;
}

export function summaryJson(dataset: string, backbone: string, imageSize: number, entries: SummaryEntry[]): SummaryJson {
  return {
    dataset,
    backbone,
    image_size: imageSize,
    categories: entries.map((e) => ({ category: e.category, ...e.metrics })),
    mean: meanMetrics(entries),
  };
}

const COLUMNS: [keyof MetricsJson, string][] = [
  ['image_auroc', 'AUROC-cls'],
  ['image_f1max', 'F1-max-cls'],
  ['image_ap', 'AP-cls'],
  ['pixel_auroc', 'AUROC-segm'],
  ['pixel_f1max', 'F1-max-segm'],
  ['pixel_ap', 'AP-segm'],
  ['pixel_pro', 'PRO'],
  ['aupro', 'AUPRO@0.3'],
];

/** Percentage with one decimal ('99.9'), '-' when null. */
export function pct(v: number | null | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? (v * 100).toFixed(1) : '-';
}

/** Escapes a table cell (pipes and line breaks). */
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ');

export function metricsMarkdown(title: string, entries: SummaryEntry[]): string {
  const head = ['Category', ...COLUMNS.map((c) => c[1]), 'Images', 'Skipped'];
  const lines = [`# ${cell(title)}`, '', `| ${head.join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`];
  for (const e of entries) {
    lines.push(
      `| ${cell(e.category)} | ${COLUMNS.map(([k]) => pct(e.metrics[k] as number | null)).join(' | ')} | ` +
        `${e.metrics.n_images} | ${e.metrics.n_skipped} |`,
    );
  }
  if (entries.length > 0) {
    const mean = meanMetrics(entries);
    const n = entries.reduce((a, e) => a + e.metrics.n_images, 0);
    const sk = entries.reduce((a, e) => a + e.metrics.n_skipped, 0);
    lines.push(`| **mean** | ${COLUMNS.map(([k]) => pct(mean[k])).join(' | ')} | ${n} | ${sk} |`);
  }
  lines.push(
    '',
    "Metrics in percent. PRO is MuSc's cal_pro_score (the paper's PRO); " +
      'AUPRO@0.3 the MVTec AD official definition. "-" = undefined (no labels, or a single class).',
    '',
  );
  return lines.join('\n');
}
