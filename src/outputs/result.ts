/**
 * What one category's run produced, as the output writers (and the report, the cluster merge and
 * the bank's "where" pictures) read it: scores, maps, metrics, decisions, timings.
 */
import type { RepeatSummary } from '../core/repeats.js';
import type { DatasetItem, DatasetKind } from '../datasets/types.js';
import type { SkippedImage } from '../features/types.js';
import type { MetricsValues } from '../metrics/index.js';
import type { Decisions } from '../threshold.js';

/** Milliseconds spent per stage over the whole category. */
export interface StageTimings {
  decode: number;
  backbone: number;
  /** LNAMD + MSM + map upsampling */
  scoring: number;
  /** the LNAMD part of scoring */
  lnamd: number;
  /** the MSM part of scoring */
  msm: number;
  rscin: number;
  metrics: number;
  write: number;
}

export interface CategoryResult {
  name: string;
  kind: DatasetKind;
  /** the data root `items[].rel` is relative to */
  root: string;
  /** scored images, in dataset order */
  items: DatasetItem[];
  skipped: SkippedImage[];
  /** map side S (the backbone's input size) */
  size: number;
  /** [N, S, S] anomaly maps */
  maps: Float32Array;
  /** [N] per-image max of the maps */
  imageScores: Float64Array;
  /** [N] RsCIN scores (the classification score) */
  rscinScores: Float64Array;
  /** [N, S, S] 0/1 masks at size S, when every image has a label */
  masks: Uint8Array | null;
  metrics: MetricsValues | null;
  /** F1-optimal threshold of the RsCIN scores when every image has a label (score >= t is defective) */
  f1Threshold?: number | null;
  /** label-free OK/NG decisions, when requested */
  decisions?: Decisions;
  /** reference images used (few-shot), absolute paths */
  referenceFiles?: string[];
  /** subsets actually scored: indices into `items` */
  subsets: number[][];
  /** per scored subset: what the repeated-anomaly filter left out, leftOut in `items` indices and `subsets[k]` order (null: no filter) */
  repeatFilter?: (RepeatSummary | null)[];
  divideNum: number;
  /** bytes estimated for the largest subset */
  estimatedBytes: number;
  timings: StageTimings;
  warnings: string[];
}
