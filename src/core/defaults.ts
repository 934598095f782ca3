/** Defaults of the method, defined once (the CLI, config, library and ablations use these). */
import { unionRList } from './plan.js';
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

/** The backbone stages FUSED_STAGE_R_LIST is for: a ResNet's layer2 and layer3 (its default stages). */
export const FUSED_STAGE_R_STAGES: readonly number[] = [2, 3];

/**
 * Per-stage degrees of a ResNet that fuses input sizes at layer2 + layer3 (`musc run`'s default):
 * layer2 (stride 8, small receptive field) at r = 1,3 keeps small defects sharp (PRO), layer3
 * (stride 16) at r = 1,5,7 gives broad defects their context (pixel AUROC): every dev mean up
 * against r = 1,5 at 1.25x the MSM (docs/accuracy.md, the eighth and ninth rounds). Do not mutate.
 */
export const FUSED_STAGE_R_LIST: number[][] = [
  [1, 3],
  [1, 5, 7],
];

/** Per-stage lists as the CLI writes them: '1,3/1,5,7' (`sep` between stages). */
export function stageLabel(lists: readonly (readonly number[])[], sep = '/'): string {
  return lists.map((l) => l.join(',')).join(sep);
}

/** LNAMD degrees: every stage at rList, or stage l at stageRList[l] only (core/plan.ts ScoringPlan). */
export interface Degrees {
  rList: number[];
  stageRList?: number[][];
}

/** Degrees as titles, logs and cache keys show them: '1,3 / 1,5,7' per stage (`sep` between stages), else '1,5'. */
export function degreesLabel(d: Degrees, sep = ' / '): string {
  return d.stageRList ? stageLabel(d.stageRList, sep) : d.rList.join(',');
}

/**
 * The LNAMD degrees of a backbone when none are asked for: FUSED_STAGE_R_LIST (rList their union)
 * when it fuses input sizes at layer2 + layer3, else defaultRList. Copies.
 */
export function defaultDegrees(b: { fuseSizes?: readonly number[]; stages: readonly number[] }): Degrees {
  const fused = (b.fuseSizes ?? []).length > 0;
  if (fused && b.stages.join() === FUSED_STAGE_R_STAGES.join()) {
    const stageRList = FUSED_STAGE_R_LIST.map((l) => [...l]);
    return { rList: unionRList(stageRList), stageRList };
  }
  return { rList: defaultRList(b.fuseSizes) };
}

/**
 * The degrees of a run or bank: explicit per-stage lists (their union as rList), else an explicit
 * r list (every stage), else the backbone's defaults (defaultDegrees).
 */
export function resolveDegrees(
  b: { fuseSizes?: readonly number[]; stages: readonly number[] },
  rList: number[] | undefined,
  stageRList: number[][] | undefined,
): Degrees {
  if (stageRList) return { rList: unionRList(stageRList), stageRList };
  return rList ? { rList } : defaultDegrees(b);
}

/**
 * LNAMD's norm exponent when a ResNet fuses input sizes (`musc run`'s default): each patch keeps the
 * square root of its feature energy relative to its image (core/lnamd.ts), which unit vectors throw
 * away: a surface whose texture is weaker or stronger than the rest of its image (a smoothed or
 * rough region, a faint scratch) then differs in distance, not only in direction. Every dev
 * category and metric up (docs/accuracy.md, the twelfth round); with `--project K` too, whose
 * projection keeps each row's energy (the fourteenth round). Unit vectors (1) elsewhere: ViT tokens
 * (the paper's), the 'exact' and 'int8' precisions.
 */
export const FUSED_NORM_EXPONENT = 0.5;

/** The norm exponent of a run: the explicit one, else FUSED_NORM_EXPONENT for a backbone that fuses sizes with 'fast' MSM, else 1. */
export function resolveNormExponent(b: { fuseSizes?: readonly number[] }, explicit: number | undefined, precision: string): number {
  if (explicit !== undefined) return explicit;
  return (b.fuseSizes ?? []).length > 0 && precision === 'fast' ? FUSED_NORM_EXPONENT : 1;
}

/**
 * How a map becomes its image score (src/core/maps.ts ImageScoreRule): the paper takes the maximum;
 * the default is the mean of the top 2.5% of the map's pixels (README, the accuracy table).
 */
export const DEFAULT_IMAGE_SCORE = 'top:0.025';

/** MSM interval [lo, hi) of the sorted distances to the other images (paper §3.3, eq. 6). Do not mutate. */
export const DEFAULT_INTERVAL: Interval = [0, 0.3];
