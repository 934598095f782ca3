/**
 * The scorer of a one-process run: the scoring runtime's functions (src/scoring/musc.ts). The
 * cluster runner replaces scorePatches with its block jobs and keeps the rest.
 */
import * as core from '../scoring/musc.js';
import type { Scorer } from './types.js';

export const localScorer: Scorer = {
  scorePatches: core.scorePatches,
  upsampleMaps: core.upsampleMaps,
  imageScoresOf: core.imageScoresOf,
  rscin: core.rscin,
};
