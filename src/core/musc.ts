/** PLACEHOLDER signatures of the MuSc core API (being implemented). */
import type { StageFeatures, ImageTokens, Interval, BackboneFeatures } from './types.js';
import type { ProgressListener } from '../compute/worker.js';

export interface ScoreOptions {
  /** LNAMD aggregation degrees (default [1, 3, 5]) */
  rList?: number[];
  /** MSM interval [lo, hi) of the sorted per-image scores (default [0, 0.3]) */
  interval?: Interval;
  /** LNAMD common channel count when stages differ (default: the first stage's C) */
  targetChannels?: number;
  device?: 'cpu' | 'cuda';
  onProgress?: ProgressListener;
}

/** Patch scores of N images on an H x W grid: data is [N, H, W] (float64). */
export interface PatchScores {
  n: number;
  h: number;
  w: number;
  data: Float64Array;
}

/** LNAMD + MSM over every stage and r (runs in the compute worker). */
export async function scorePatches(stages: StageFeatures[], opts: ScoreOptions = {}): Promise<PatchScores> {
  void stages; void opts;
  throw new Error('not implemented');
}

/** Bilinear (align_corners=true) upsampling of patch scores to [N, outH, outW]. */
export function upsampleMaps(ps: PatchScores, outH: number, outW: number): Float32Array {
  void ps; void outH; void outW;
  throw new Error('not implemented');
}

/** Image score = maximum of each map [N, H, W] -> [N]. */
export function imageScoresFromMaps(maps: Float32Array | Float64Array, n: number): Float64Array {
  void maps; void n;
  throw new Error('not implemented');
}

/** RsCIN re-scoring; kList [] or containing 0 returns the scores unchanged. */
export function rscin(scores: Float64Array, tokens: ImageTokens, kList: number[]): Float64Array {
  void scores; void tokens; void kList;
  throw new Error('not implemented');
}

export interface MuscResult {
  patchScores: PatchScores;
  /** [N, S, S] maps at the input size */
  maps: Float32Array;
  imageScores: Float64Array;
  rscinScores: Float64Array;
}

/** The whole zero-shot pipeline on features of one batch. */
export async function musc(features: BackboneFeatures, opts: ScoreOptions & { imageSize: number; kList?: number[] }): Promise<MuscResult> {
  void features; void opts;
  throw new Error('not implemented');
}
