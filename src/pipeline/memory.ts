/**
 * The automatic subset count for `--max-memory`, from the memory estimate of scoring a subset
 * (scoring/memory.ts estimateSubsetBytes), over the images whose headers read.
 */
import { divideSubsets } from '../datasets/divide.js';
import { probeImage } from '../image/decode.js';
import type { FeatureStorage } from '../core/types.js';
import { DEFAULT_FEATURE_STORAGE, type StageDims } from '../features/types.js';
import { estimateSubsetBytes } from '../scoring/memory.js';

export type { StageDims };

/** The paths whose image header reads (format, dimensions within `maxPixels`): what the estimate counts. */
export async function readablePaths(paths: readonly string[], maxPixels?: number): Promise<Set<string>> {
  const ok = new Set<string>();
  for (const p of paths) if ((await probeImage(p, maxPixels)) === null) ok.add(p);
  return ok;
}

/** Largest subset of a division, counting only `counted` paths (all when undefined). */
function largestSubset(paths: readonly string[], d: number, seed: number, counted?: ReadonlySet<string>): number {
  const size = (s: number[]): number => (counted ? s.filter((i) => counted.has(paths[i]!)).length : s.length);
  return divideSubsets(paths, d, seed).reduce((a, s) => Math.max(a, size(s)), 0);
}

/**
 * Fewest subsets >= `minDivide` whose largest subset fits `maxBytes` (MSM needs >= 5 images each).
 * `counted`: the readable images (unreadable ones are skipped later and take no memory).
 */
export function autoDivideNum(
  paths: readonly string[],
  stages: readonly StageDims[],
  size: number,
  maxBytes: number,
  minDivide: number,
  seed: number,
  storage: FeatureStorage = DEFAULT_FEATURE_STORAGE,
  counted?: ReadonlySet<string>,
  indexed = false,
): { divideNum: number; bytes: number } {
  const n = counted ? paths.filter((p) => counted.has(p)).length : paths.length;
  const maxDivide = Math.max(1, minDivide, Math.floor(n / 5));
  for (let d = Math.max(1, minDivide); d <= maxDivide; d++) {
    const bytes = estimateSubsetBytes(largestSubset(paths, d, seed, counted), stages, size, storage, indexed);
    if (bytes <= maxBytes) return { divideNum: d, bytes };
  }
  const largest = largestSubset(paths, maxDivide, seed, counted);
  const need = estimateSubsetBytes(largest, stages, size, storage, indexed);
  throw new RangeError(
    `--max-memory ${Math.round(maxBytes / 2 ** 20)} MB is too small: ${n} readable images in at most ${maxDivide} ` +
      `subset${maxDivide > 1 ? 's' : ''} (each needs at least 5 images) leave a largest subset of ${largest} images, ` +
      `which needs about ${Math.ceil(need / 2 ** 20)} MB`,
  );
}
