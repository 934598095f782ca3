/**
 * The report page's data (the JSON block #musc-data of report.html): written by build.ts, read by
 * the page script (page/main.ts). Types only, shared by the Node.js and the browser code.
 */
import type { ImageEvaluation } from '../metrics/evaluator.js';

/** One image as the page sees it. */
export interface PageItem {
  /** row in scores.csv */
  i: number;
  /** asset id (file stem under <cat>/report/<kind>/) */
  id: string;
  path: string;
  defect: string;
  label: 0 | 1 | null;
  /** the ranking score (score_rscin); null when not finite */
  score: number | null;
  /** raw image score (map max) */
  raw: number | null;
  /** 1 when the original (thumb/, orig/) exists */
  o: 0 | 1;
  /** 1 when the map (map/, thumb-overlay/, overlay/) exists */
  m: 0 | 1;
  /** 1 when the ground-truth outline exists */
  g: 0 | 1;
}

export interface PageCategory {
  name: string;
  folder: string;
  /** URL prefix of the assets relative to report.html, ending in '/' ('<folder>/report/', percent-encoded) */
  base: string;
  dataset: string | null;
  backbone: { name: string; image_size?: number; stages?: number[] } | null;
  mapSize: number;
  metrics: Record<string, number | null> | null;
  /** the ranking scores' ROC curve, F1-optimal and label-free thresholds (src/metrics/evaluator.ts) */
  evaluation: ImageEvaluation;
  settings: Record<string, unknown> | null;
  versions: Record<string, string> | null;
  timings: Record<string, number> | null;
  timingsPerImage: Record<string, number> | null;
  peakRssMb: number | null;
  warnings: string[];
  skipped: { path: string; reason: string }[];
  items: PageItem[];
}

export interface PageData {
  title: string;
  subtitle: string;
  categories: PageCategory[];
}
