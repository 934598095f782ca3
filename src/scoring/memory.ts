/**
 * Memory estimate for scoring one batch of n images (a run's subset: pipeline/memory.ts divides by
 * it for `--max-memory`; a bank's calibration: estimateBankBytes). Bytes counted (float32 except the stored features):
 *   features   n * sum_s(H_s W_s C_s) * b        the kept backbone stages (b = 2 for float16 storage, 4 for float32)
 *   layernorm  n * max_s(H_s W_s C_s) * 4         one stage layer-normalised (float32)
 *   aggregated n * sum_s(L C_s) * 4               LNAMD output for one r (L = patches of the grid)
 *   distances  n * (n - 1) * L * 4               MSM: each patch's nearest distance to every other image, one stage
 *   maps       n * S * S * 4                     upsampled maps
 * With a norm exponent other than 1 (Euclidean MSM) a table also holds its bank's reference rows
 * with two more channels (core/msm.ts euclideanBank): one more (stage, r) bank of C_0 + 2 channels,
 * which `aggregated` covers when the stages' channels sum to at least 2 C_0 + 2 (every stage is
 * pooled to C_0: the default's layer2 + layer3 hold 512 + 1024 against 1026); not counted otherwise.
 * With `--density-exponent` (indexed) a table also holds its nearest indices:
 *   indices    n * (n - 1) * L * 2              16-bit (32-bit above 65536 patches; core/msm.ts indexRows)
 * A bank's calibration with `--density-exponent` (estimateBankBytes) also holds each image's
 * held-out densities (core/density.ts normaliseHeldOut):
 *   held-out   n * n * L * 4                    rho_-i(j, q) for every (i, j, q), float32
 */
import type { FeatureStorage } from '../core/types.js';
import { DEFAULT_FEATURE_STORAGE, type StageDims } from '../features/types.js';

export function estimateSubsetBytes(
  n: number,
  stages: readonly StageDims[],
  size: number,
  storage: FeatureStorage = DEFAULT_FEATURE_STORAGE,
  indexed = false,
): number {
  const hwc = stages.reduce((a, s) => a + s.h * s.w * s.c, 0);
  const hwcMax = stages.reduce((a, s) => Math.max(a, s.h * s.w * s.c), 0);
  const l = stages.reduce((a, s) => Math.max(a, s.h * s.w), 0);
  const lc = stages.reduce((a, s) => a + l * s.c, 0);
  const indices = indexed ? (l > 65536 ? 4 : 2) * n * Math.max(0, n - 1) * l : 0;
  return (storage === 'float16' ? 2 : 4) * n * hwc + 4 * (n * hwcMax + n * lc + n * Math.max(0, n - 1) * l + n * size * size) + indices;
}

/** estimateSubsetBytes for a bank's calibration (float16 features), with its held-out densities when density-normalised. */
export function estimateBankBytes(n: number, stages: readonly StageDims[], size: number, density: boolean): number {
  const l = stages.reduce((a, s) => Math.max(a, s.h * s.w), 0);
  return estimateSubsetBytes(n, stages, size, 'float16', density) + (density ? 4 * n * n * l : 0);
}
