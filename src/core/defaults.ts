/** Defaults of the method, defined once (the CLI, config, library and ablations use these). */
import type { Interval } from './types.js';

/** LNAMD aggregation degrees r (paper §3.2). Do not mutate. */
export const DEFAULT_R_LIST: number[] = [1, 3, 5];

/**
 * The degrees when a backbone fuses several input sizes (resnet.ts fuseSizes; `musc run`'s ResNet
 * default, banks built with --fuse-sizes): the fused features already describe each patch at two
 * scales, and r = 3 then added nothing on any dev category and metric while costing a third of the
 * MSM (docs/accuracy.md, the seventh round). Do not mutate.
 */
export const FUSED_R_LIST: number[] = [1, 5];

/** The LNAMD degrees of a backbone: FUSED_R_LIST when it fuses input sizes, else DEFAULT_R_LIST (a copy). */
export function defaultRList(fuseSizes: readonly number[] | undefined): number[] {
  return [...((fuseSizes ?? []).length > 0 ? FUSED_R_LIST : DEFAULT_R_LIST)];
}

/**
 * How a map becomes its image score (src/core/maps.ts ImageScoreRule): the paper takes the maximum;
 * the default is the mean of the top 2.5% of the map's pixels (README, the accuracy table).
 */
export const DEFAULT_IMAGE_SCORE = 'top:0.025';

/** MSM interval [lo, hi) of the sorted distances to the other images (paper §3.3, eq. 6). Do not mutate. */
export const DEFAULT_INTERVAL: Interval = [0, 0.3];
