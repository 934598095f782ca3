/** Defaults of the method, defined once (the CLI, config, library and ablations use these). */
import type { Interval } from './types.js';

/** LNAMD aggregation degrees r (paper §3.2). Do not mutate. */
export const DEFAULT_R_LIST: number[] = [1, 3, 5];

/** MSM interval [lo, hi) of the sorted distances to the other images (paper §3.3, eq. 6). Do not mutate. */
export const DEFAULT_INTERVAL: Interval = [0, 0.3];
