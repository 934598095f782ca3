/**
 * metrics.json of one category: the eight metrics (fractions in [0,1], null when undefined or
 * without labels) and the image counts. Fixed key order, no timestamps: byte-identical across
 * identical runs. Optional keys, after the counts: `f1_threshold` (the F1-optimal threshold of the
 * RsCIN scores, null without both labels) when the result carries it; `decision_method`,
 * `decision_k` (mad), `decision_threshold`, `n_ng` with a label-free decision (--decision).
 */
import { METRIC_KEYS, type MetricsValues } from '../metrics/index.js';
import type { CategoryResult } from './result.js';

export interface MetricsJson extends MetricsValues {
  n_images: number;
  n_good: number;
  n_defective: number;
  n_skipped: number;
  f1_threshold?: number | null;
  decision_method?: string;
  decision_k?: number;
  decision_threshold?: number;
  n_ng?: number;
}

type MetricsSource = Pick<CategoryResult, 'items' | 'skipped' | 'metrics'> & Pick<Partial<CategoryResult>, 'f1Threshold' | 'decisions'>;

export function metricsJson(r: MetricsSource): MetricsJson {
  const out: Record<string, number | null> = {};
  for (const k of METRIC_KEYS) {
    const v = r.metrics?.[k];
    out[k] = typeof v === 'number' && Number.isFinite(v) ? v : null;
  }
  out.n_images = r.items.length;
  out.n_good = r.items.filter((it) => it.label === 0).length;
  out.n_defective = r.items.filter((it) => it.label === 1).length;
  out.n_skipped = r.skipped.length;
  const extra: Record<string, number | string | null> = {};
  if (r.f1Threshold !== undefined) extra.f1_threshold = r.f1Threshold !== null && Number.isFinite(r.f1Threshold) ? r.f1Threshold : null;
  if (r.decisions) {
    extra.decision_method = r.decisions.method;
    if (r.decisions.k !== undefined) extra.decision_k = r.decisions.k;
    extra.decision_threshold = Number.isFinite(r.decisions.threshold) ? r.decisions.threshold : null;
    extra.n_ng = r.decisions.ng;
  }
  return { ...out, ...extra } as unknown as MetricsJson;
}

export function formatMetricsJson(r: MetricsSource): string {
  return JSON.stringify(metricsJson(r), null, 2) + '\n';
}
