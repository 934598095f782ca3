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
  /** raw image score of the map (the run's --image-score rule) */
  raw: number | null;
  /** 1 when the original (thumb/, orig/) exists */
  o: 0 | 1;
  /** 1 when the map (map/, thumb-overlay/, overlay/) exists */
  m: 0 | 1;
  /** 1 when the ground-truth outline exists */
  g: 0 | 1;
  /** rows the repeated-anomaly filter scored this image without (they share a repeated defect); absent: none */
  w?: number[];
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

/** One region of a predicted defect mask (bounding box in original pixels; raw anomaly scores). */
import type { Region as PredictRegion } from '../bank/types.js';
export type { PredictRegion };

/** One image of a `musc predict` folder, as predictions.json has it. */
export interface PredictItem {
  name: string;
  verdict: 'OK' | 'NG';
  /** classification score (NG iff score >= threshold); null when not finite */
  score: number | null;
  /** normalised score at the threshold predict used (0.5 = that threshold) */
  normalized: number | null;
  imageScore: number | null;
  width: number;
  height: number;
  regions: PredictRegion[];
  /** the composite picture relative to report.html (percent-encoded), or null (--no-pictures) */
  composite: string | null;
}

/** The page of a `musc predict` output folder (predictions.json). */
export interface PagePredict {
  bank: { path: string; images: number; backbone: string | null };
  /** the thresholds predict used (raw score units), where they came from */
  thresholds: { image: number; pixel: number; falseAlarm: number | null; source: string };
  /** the heatmaps' colour scale (raw pixel values; the pixel threshold in the middle), null without images */
  colourScale: { lo: number; hi: number; threshold: number /** CSS gradient of the colours, lo to hi */; gradient: string } | null;
  items: PredictItem[];
  skipped: { name: string; reason: string }[];
}

export interface PageData {
  title: string;
  subtitle: string;
  categories: PageCategory[];
  /** set for a `musc predict` folder (then categories is empty) */
  predict?: PagePredict;
}
