/**
 * metrics.json of one category: the eight metrics (fractions in [0,1], null when undefined or
 * without labels) and the image counts. Fixed key order, no timestamps: byte-identical across
 * identical runs.
 */
import { METRIC_KEYS, type CategoryResult, type MetricsValues } from '../pipeline/types.js';

export interface MetricsJson extends MetricsValues {
  n_images: number;
  n_good: number;
  n_defective: number;
  n_skipped: number;
}

export function metricsJson(r: Pick<CategoryResult, 'items' | 'skipped' | 'metrics'>): MetricsJson {
  const out: Record<string, number | null> = {};
  for (const k of METRIC_KEYS) {
    const v = r.metrics?.[k];
    out[k] = typeof v === 'number' && Number.isFinite(v) ? v : null;
  }
  out.n_images = r.items.length;
  out.n_good = r.items.filter((it) => it.label === 0).length;
  out.n_defective = r.items.filter((it) => it.label === 1).length;
  out.n_skipped = r.skipped.length;
  return out as unknown as MetricsJson;
}

export function formatMetricsJson(r: Pick<CategoryResult, 'items' | 'skipped' | 'metrics'>): string {
  return JSON.stringify(metricsJson(r), null, 2) + '\n';
}
