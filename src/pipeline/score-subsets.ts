/**
 * Per subset of a category: features from the feature store, then mutual scoring
 * (`scorer.scorePatches` on the subset, references appended last) and the maps upsampled to S x S.
 */
import { performance } from 'node:perf_hooks';
import { sharedFeatures } from '../compute/worker.js';
import type { StageFeatures } from '../core/types.js';
import type { RepeatSummary } from '../core/repeats.js';
import { DatasetError } from '../datasets/types.js';
import { stackStages } from '../features/stack.js';
import type { ExtractedImage } from '../features/types.js';
import { checkInterrupted } from './interrupt.js';
import { estimateSubsetBytes } from '../scoring/memory.js';
import { densityActive } from '../core/density.js';
import { appendReferences } from '../features/references.js';
import type { CategoryRun } from './run-category.js';

/** What scoring the subsets gave, per item index of the category. */
export interface ScoredSubsets {
  /** item -> [S, S] */
  mapOf: Map<number, Float32Array>;
  /** item -> [D] */
  tokenOf: Map<number, Float32Array>;
  /** item -> image score (from the repeated-anomaly filter's scores where its subset had the filter) */
  imageScoreOf: Map<number, number>;
  /** item -> decoded [width, height] */
  sizeOf: Map<number, [number, number]>;
  /** subsets actually scored (item indices) */
  subsets: number[][];
  /** per scored subset: what the repeated-anomaly filter left out, leftOut in item indices and in `subsets[k]` order (null: it did not run) */
  repeatFilter: (RepeatSummary | null)[];
  /** bytes estimated for the largest subset scored */
  estimatedBytes: number;
}

export async function scoreSubsets(run: CategoryRun, subsets: number[][]): Promise<ScoredSubsets> {
  const { category, opts } = run;
  const all = category.items;
  const out: ScoredSubsets = {
    mapOf: new Map(),
    tokenOf: new Map(),
    imageScoreOf: new Map(),
    sizeOf: new Map(),
    subsets: [],
    repeatFilter: [],
    estimatedBytes: 0,
  };
  let extracted = 0;
  for (let si = 0; si < subsets.length; si++) {
    const subset = subsets[si]!;
    const ex = await run.store.extract(
      subset.map((i) => all[i]!),
      (count) => {
        extracted += count;
        opts.onProgress?.('extract', Math.min(extracted, all.length), all.length);
      },
    );
    run.skipped.push(...ex.skipped);
    if (ex.images.length === 0) continue;
    const items = ex.images.map((im) => subset[im.index]!);
    checkSubset(run, items, si, subsets);
    const { maps, imageScores, filter } = await scoreOne(run, ex.images, (d, tot) =>
      opts.onProgress?.('score', si + d / tot, subsets.length),
    );
    const S = run.S;
    ex.images.forEach((im, i) => {
      const item = items[i]!;
      out.mapOf.set(item, maps.subarray(i * S * S, (i + 1) * S * S));
      out.imageScoreOf.set(item, imageScores[i]!);
      out.tokenOf.set(item, im.features.token);
      out.sizeOf.set(item, [im.features.width, im.features.height]);
    });
    const nRef = opts.references?.files.length ?? 0;
    out.estimatedBytes = Math.max(
      out.estimatedBytes,
      estimateSubsetBytes(items.length + nRef, run.store.dims!, S, run.store.storage, densityActive(opts.densityExponent)),
    );
    out.subsets.push(items);
    out.repeatFilter.push(filter && { ...filter, leftOut: filter.leftOut.map((js) => js.map((j) => items[j]!)) });
    opts.onProgress?.('score', si + 1, subsets.length);
  }
  return out;
}

/** Too few readable images is an error (fewer than 2) or a warning (fewer than 5); the first subset logs the memory estimate. */
function checkSubset(run: CategoryRun, items: number[], si: number, subsets: number[][]): void {
  const { category, opts } = run;
  const n = items.length;
  const many = subsets.length > 1;
  if (n < 2) {
    const what = many ? `subset ${si + 1} of ${subsets.length} of category '${category.name}'` : `category '${category.name}'`;
    const hint = many ? ' (use a smaller --divide)' : '';
    const first = category.items[items[0]!]!.rel;
    throw new DatasetError(`${what} has only ${n} readable image (${first}): mutual scoring needs at least 2${hint}`);
  }
  const nRef = opts.references?.files.length ?? 0;
  if (si === 0) {
    // before the expensive part: what scoring will need (the largest subset)
    const largest = subsets.reduce((a, s) => Math.max(a, s.length), 0) + nRef;
    const mb = Math.ceil(
      estimateSubsetBytes(largest, run.store.dims!, run.S, run.store.storage, densityActive(opts.densityExponent)) / 2 ** 20,
    );
    const what = `${category.items.length} images in ${subsets.length} subset${many ? 's' : ''}`;
    opts.log?.(`${category.name}: scoring ${what}; estimated memory for scoring about ${mb} MB (largest subset ${largest} images)`);
  }
  if (n + nRef < 5 && opts.mode !== 'musc-plus') {
    run.warnings.push(
      `subset ${si + 1} of '${category.name}' has ${n} images: mutual scoring needs at least 5 for its interval ` +
        `(the reference gives NaN scores: int((N-1)*${opts.interval[1]}) = 0); ` +
        'here each patch is scored against its single nearest image, which is less reliable',
    );
  }
}

/**
 * Mutual scoring of one subset's images (references last in the pool) -> maps [n, S, S] and image
 * scores [n] (by the image score rule, of the filtered scores' maps where the repeated-anomaly filter ran).
 */
async function scoreOne(
  run: CategoryRun,
  images: ExtractedImage[],
  onProgress: (done: number, total: number) => void,
): Promise<{ maps: Float32Array; imageScores: Float64Array; filter: RepeatSummary | null }> {
  const { deps, opts, t, S } = run;
  // StageFeatures [n, H, W, C] per stage, shared with the compute worker (not copied)
  const stages: StageFeatures[] = stackStages(
    images.map((im) => im.features),
    run.store.dims!,
    run.store.storage,
    sharedFeatures,
  );
  checkInterrupted();
  const t0 = performance.now();
  const nRef = opts.references?.files.length ?? 0;
  const pool = opts.references ? appendReferences(stages, opts.references) : stages; // references last
  const ps = await deps.scorer.scorePatches(pool, {
    rList: opts.rList,
    ...(opts.stageRList ? { stageRList: opts.stageRList } : {}),
    interval: opts.interval,
    device: opts.device,
    precision: opts.precision,
    ...(opts.references ? { references: nRef, mode: opts.mode ?? 'musc' } : {}),
    ...(opts.repeatFilter ? { repeatFilter: true } : {}),
    ...(opts.scoreGrid !== undefined ? { targetGrid: opts.scoreGrid } : {}),
    ...(opts.project !== undefined ? { projectChannels: opts.project } : {}),
    ...(opts.normExponent !== undefined ? { normExponent: opts.normExponent } : {}),
    ...(densityActive(opts.densityExponent) ? { densityExponent: opts.densityExponent } : {}),
    ...(densityActive(opts.densityExponent) && opts.densityScope ? { densityScope: opts.densityScope } : {}),
    onProgress, // per stage and r, within the subset
  });
  t.lnamd += ps.timings?.lnamdMs ?? 0;
  t.msm += ps.timings?.msmMs ?? 0;
  const maps = deps.scorer.upsampleMaps(ps, S, S); // [n, S, S]
  const f = ps.filtered;
  const imageScores = deps.scorer.imageScoresOf(ps, S, S, opts.imageScore, 0, maps);
  if (f)
    opts.log?.(
      `${run.category.name}: repeated-anomaly filter: ${f.summary.images} of ${ps.n} images scored without the images ` +
        `they share a repeated defect with (${f.summary.excludedPairs} pairs)`,
    );
  t.scoring += performance.now() - t0;
  return { maps, imageScores, filter: f?.summary ?? null };
}
