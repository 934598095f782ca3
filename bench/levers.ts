/**
 * The accuracy levers of issue 17 on one category. Features are extracted once per input geometry,
 * through the FeatureStore (musc's extraction loop; the native geometry runs its own H x W graphs);
 * the full MSM nearest-distance table [N, P, N] of every (aggregation, stage, r) is cached on disk
 * (MUSC_LEVERS_CACHE, default <tmpdir>/musc-levers-tables), so every reduction and post-processing
 * row (interval, r list, stages, map smoothing, image score, RsCIN / RsCon) is evaluated without
 * scoring again. Rows are specs 'key=value/...' ('base' = the reference's choices: max, RsCIN 1,2,3):
 *   g=squash|letterbox|mirrorP|tileA|native  input geometry: squashed to S x S; aspect kept with mirrored
 *        margins; the backbone's border padding P px; images longer than A:1 cut into ceil(ratio / A)
 *        tiles along the long side, each squashed (tiles never score tiles of their own image);
 *        native: one scale for the batch (median sqrt(w h) -> S), aspect kept, each image its own
 *        grid (sides rounded to 16 px), maps squashed to S x S for the metrics; nativeagg: the same
 *        inputs, each image's LNAMD features (on its own grid) resized to the S / 8 grid; nativegrid:
 *        the same inputs, each image's stage features resized to the squashed input's grids
 *   pre=normalise|clahe  per-image contrast: 1-99 % luminance stretch, or CLAHE (8 x 8 tiles)
 *   tta=flip  each piece's stage features and token averaged with those of its horizontal mirror
 *        (the mirror's features mirrored back): extraction 2x, the MSM unchanged
 *   tta=flipref:h|hv  mirrored references: each image scored against the others and their mirrors
 *        (h: left-right; hv: left-right, top-bottom and both), a patch's nearest distance to an image
 *        over its copies; extraction and MSM (1 + K)x
 *   msf=320.288  several sizes fused at the feature level (squash; the backbone's fuseSizes, `--fuse-sizes`):
 *        each stage's features at these input sizes too, resized to the row's stage grids and averaged before LNAMD
 *   replink=plain  the filter's links from the row's features without tta / msf (one more r = 1 table)
 *   s=224  st=2.3 (stages)  c=1024 (LNAMD channels)  r=1.3.5  l=0.1 (stage indices kept)
 *   grid=28  LNAMD's target grid G x G (default the first stage's): features at s px, scored on G x G
 *   agg=box|ctr|sw:T|md|mdsw:T  LNAMD box mean (ours); ctr = the box features centred on the
 *        batch's mean feature; sw = similarity-weighted r x r mean with weights exp(-|u_q - u_p| / T)
 *        on unit vectors (MuSc-V2's SWPooling); md = one feature per stage, the mean of the
 *        (L2-normalised) r = 1,3,5 features (MuSc-V2's multi-degree: one MSM pass, not 3);
 *        pca:K = the box features projected on K directions of the batch (`musc run --project K`,
 *        src/core/project.ts; the filter's links from the projected r = 1 table, as in musc)
 *        pcr:K = K - 1 of those directions plus the residual's norm sqrt(1 - |projection|^2) as channel K:
 *        unit without renormalising; what the projection drops keeps its size, not its direction
 *        relpca:E:K = rel:E's rows projected on K directions of their own batch (as pca:K) and made unit, then
 *        given back their norm, the patch energy (|z| / rho)^(1 - E); relpcu:E:K: the directions of the unit rows
 *        wht:K:A = the same K directions, each principal one scaled by (its variance / the top one's)^(-A/2)
 *        before the unit normalisation: partial whitening (A = 1: Mahalanobis-like), the mean direction kept at 1
 *   gm=W  image score = z(the row's) + W z(each image's token scored against the others' tokens by MSM)
 *   pair=F pairmix=0  image-pair scoring: D(i, j) = the mean of the top fraction F of i's weighted patch
 *        distances to j, image score = the interval mean of D(i, .) over i's pool (pairmix=W: mixed in as z-scores)
 *   joint=a:b.a:b jadd=0  joint stages: one table per pair over layer2 at r = a and layer3 at r = b
 *        concatenated (PatchCore's form); jadd=1: beside the stages' own passes, as one more group
 *   rep=FPR repw=0.02 repmax=0.5 repmap=0 repl=0  repeated-anomaly filter (src/core/repeats.ts; links
 *        from the r = 3 tables of stages repl, summed; the engine's: stage 0): image scores from the
 *        filtered scores; repmap=1: the maps too
 *   fuse=288.320  several sizes fused: the row's maps at these input sizes too, averaged (squash)
 *   pn=0.5 pnmap=0  pseudo-normal references: each image scored again against only the fraction pn of
 *        the batch whose image scores (the row's, before RsCIN) are lowest, less the images the filter
 *        left out of its pool; the image scores from those (pnmap=1: the maps too; 2: only the maps)
 *   mix=5.0  image score = the mean of robust z-scores (over the batch: (s - median) / MAD) of the top
 *        fraction's score and of these top fractions' in thousandths (5 = 0.5%; 0 = the maximum): small and large peaks both count
 *   rl=1.5_1.3  per-stage LNAMD degrees (stage index order; the filter's links still from rList's smallest r)
 *   imc=1  image score minus imc x the median of the image's map (negative: plus)
 *   rc=max  a stage's r tables combined by their maximum instead of their mean (sn=1: each scaled by its batch median first)
 *   geo=0.5  geometry-matched pools: each image scored against the fraction geo of the other images
 *        nearest in original size (|ln w_a - ln w_b| + |ln h_a - ln h_b|: how differently squashing
 *        scaled their textures; ties at the cut all kept, so a batch of one size is unchanged),
 *        intersected with the filter's pools
 *   lof=A  reference density (`musc run --density-exponent A`, core/density.ts): each nearest distance divided
 *        by (its reference patch's own MSM score / the table's median)^A (nearest indices cached per table);
 *        lofc=1: weights of at least 1 only, -1: at most 1; lofl=1: only the passes of stage index 1;
 *        lofg=R: entries whose nearest patch lies within R grid cells of the query's own position keep
 *        their distance (aligned object parts compared like for like; textures match anywhere);
 *        lofimg=1: only the image scores (the filter's reductions) from the normalised tables, the maps from MSM's
 *   pnorm=E  each (i, j) column of a table divided by its median over i's patches to the power E
 *   peer=F peerw=1 peerby=tok|geo  image score minus peerw x the median score of the fraction F of the
 *        other images nearest by layer4 token or by original size
 *   topa=E  with top: each image's top fraction scaled by (the batch's median original area / its own)^E,
 *        so that the statistic covers one physical area on images of mixed native sizes (1: the same area);
 *        topas=SEED: the areas shuffled among the images (the control); sizep=W: robust z of the image
 *        scores + W x robust z of log original area (the control: how far size alone ranks them);
 *        sized=1: the batch's Theil-Sen trend of image score over log original area removed (2: the
 *        good images' slope, an oracle for analysis)
 *   q=0.3 qa=0 (MSM interval [qa, q))  sig=4 (Gaussian map smoothing)  top=0.025 (image score = mean of
 *   the top fraction; 0 = max)  k=1.2.3 (RsCIN windows; 0 = off)  tok=l4 (backbone token) | top
 *   (RsCon-like: the unit r = 3 stage-0 feature of each image's highest-scoring patch)
 *   node dist/bench/levers.js CATEGORY ROW[,ROW...]      (data: $MUSC_SHARED/data or ../shared/data)
 * Prints one JSON line per row: metrics in % (pixel metrics with any non-zero mask pixel = defect),
 * extract_s and score_s (the MSM time of the tables the row uses, as measured when cached).
 * MUSC_LEVERS_BY_TYPE=1 adds each defect type's image AUROC against the good images, and its pixel
 * AUROC / PRO over its images and the good ones, and the category's pixel AUROC / PRO were it perfect.
 * MUSC_LEVERS_REPEATS=1 adds, per defect type, the share of each defect patch's 3 nearest images
 * (stage-0 r = 3 table) that have the same defect type, and that share by chance (repeated anomalies).
 * MUSC_LEVERS_MAPS = a musc run's maps.safetensors: post-processing rows on that run's maps.
 * MUSC_LEVERS_PEAKS=1 prints (stderr), for each table a lof row normalises, the density of each image's
 * highest normalised patches (peakDensity).
 * MUSC_LEVERS_LOCALITY=1 prints (stderr), for each table a lof row normalises, how local the nearest
 * patches are: the share within 2 grid cells (Chebyshev) of the query patch's own position, that
 * share were they uniform over the grid, and the IQR of the densities' logarithm (seventeenth round).
 */
import { dirname, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isMainThread } from 'node:worker_threads';
import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createHash } from 'node:crypto';
import sharp from 'sharp';
import { openDataset, type DatasetItem } from '../src/datasets/index.js';
import { loadMask } from '../src/datasets/masks.js';
import { decodeRgb, type RgbImage } from '../src/image/decode.js';
import { FeatureStore } from '../src/features/store.js';
import { stackStages, stackTokens } from '../src/features/stack.js';
import { backboneInfo, loadBackbone, resolveWeightsPath } from '../src/backbones/registry.js';
import { preprocessResNet, readResNet } from '../src/backbones/resnet.js';
import { buildResNetGraph } from '../src/backbones/cnn.js';
import { RemoteModel } from '../src/compute/models.js';
import type { StageFeatures, ImageTokens } from '../src/core/types.js';
import { layerNormImages, aggregateStage, lnamdTarget, resizeBilinearHWC, type AggregateOptions } from '../src/core/lnamd.js';
import { allPairs, intervalBounds, nearestDistanceTable, nearestTableWithIndices } from '../src/core/msm.js';
import { densityNormalised, densityWeights, normaliseRows } from '../src/core/density.js';
import { reduceTable } from '../src/core/score.js';
import { addBurnoutLinks, burnoutBounds, DEFAULT_REPEAT_FILTER, filteredPools, filteredVariant, linkRIndex } from '../src/core/repeats.js';
import { stagePasses, unionRList, zeroShotVariant } from '../src/core/plan.js';
import { projectBank, projectCoordinates, projectionBasis, projectUnit } from '../src/core/project.js';
import type { MatMul } from '../src/core/kernel.js';
import { l2NormalizeRows, rscin } from '../src/core/rscin.js';
import { upsampleAlignCorners, gaussianSmooth, imageScoreOf, imageScores, MAX_IMAGE_SCORE } from '../src/core/maps.js';
import { computeMetrics } from '../src/metrics/index.js';
import { computeWorker, shutdownCompute } from '../src/compute/worker.js';
import { kernelFor } from '../src/scoring/tasks.js';
import { readMaps } from '../src/outputs/maps.js';

interface Row {
  geometry: string;
  /** photometric preprocessing before the backbone: '' | 'normalise' (1-99% stretch) | 'clahe' */
  pre: string;
  /** test-time augmentation of the features: '' | 'flip' (the mean of the image's and its mirror's, mirrored back) */
  tta: string;
  /** several input sizes fused at the feature level (the backbone's fuseSizes): each stage's features at these sizes too, resized to the row's grids and averaged */
  msf: number[];
  /** 'plain': the filter's links from the features without tta / msf (the row's own otherwise) */
  replink: string;
  size: number;
  stages: number[];
  channels?: number;
  agg: string;
  rList: number[];
  layers?: number[];
  q: number;
  /** MSM interval start: scores average the nearest distances of ranks [qa, q) of the other images */
  qa: number;
  /** repeated-anomaly filter (src/core/repeats.ts): the burnout test's false-positive rate; 0 = off */
  rep: number;
  /** the filter's link shares: at least repw, at most repmax of a pair's patches */
  repw: number;
  repmax: number;
  /** 1: the maps (pixel metrics) from the filtered scores too; 0: only the image scores */
  repmap: number;
  /** the stages whose r = 3 tables give the links (summed); the engine's: [0] */
  repl: number[];
  /** several sizes fused: the maps of the same row at these input sizes averaged with its own (squash only) */
  fuse: number[];
  /** LNAMD target grid G x G (0: the first stage's grid) */
  grid: number;
  sigma: number;
  top: number;
  kList: number[];
  token: string;
  /** position normalisation of the patch scores over the batch (1: minus the median at each patch; 2: also / the MAD) */
  pos: number;
  /** 1: the pixel maps position-normalised too */
  posmap: number;
  /** image score from the map without its outer bm pixels */
  bm: number;
  /** 2: each image also leaves out the images linked to those it is linked to (two hops), at most half */
  rephop: number;
  /** each (stage, r) table's scores scaled before the mean: 1 = / their batch median, 2 = (s - median) / MAD */
  sn: number;
  /** the r of the link tables (0: the engine's, linkRIndex: the row's smallest r; the third and fourth rounds: 3) */
  repr: number;
  /** pseudo-normal references: image scores again against only the fraction pn of the batch with the lowest image scores (0: off) */
  pn: number;
  /** 1: the maps from the pseudo-normal scores too; 2: only the maps (image scores the row's own) */
  pnmap: number;
  /** image score minus imc x the median of the image's own map (local peaks over a global level) */
  imc: number;
  /** image score mixed over peak sizes: the mean of robust z-scores (over the batch) of the top fraction and of these, in thousandths (0 = max) */
  mix?: number[];
  /** per-stage LNAMD degrees: r lists by stage index joined by '_' ('1.5_1.3'); '' = rList for every stage */
  rl: string;
  /** geometry-matched pools: each image scored against the fraction geo of the others nearest in original width and height (log scale) */
  geo: number;
  /** how a stage's r tables combine: 'mean' (MuSc) or 'max' (a patch anomalous at any degree; with sn=1 for comparable scales) */
  rc: string;
  /** image-level mutual scoring: image score = z(patch-level score) + gm x z(the mean of the lowest q of its token distances to the other images) */
  gm: number;
  /** image-pair scoring: D(i, j) = the mean of the top fraction `pair` of i's patches' weighted nearest distances to j; image score = the MSM interval mean of D(i, .) over i's pool (0: off) */
  pair: number;
  /** with pair: image score = z(the row's image score) + pairmix x z(the pair score) (0: the pair score alone) */
  pairmix: number;
  /** joint stages (PatchCore-like): passes of one table each over layer2 at r = a and layer3 at r = b concatenated, 'a:b.a:b' (replaces the stage passes) */
  joint: string;
  /** 1: the joint passes added as one more group beside the stages' own passes (each group 1 / (L + 1) of the mean) */
  jadd: number;
  /**
   * reference cleaning: every table scored again with the suspect patches of the references left out
   * ('top:F' = the batch's top fraction F of first-pass patch scores, 'z:T' = robust z above T,
   * 'oracle' = the ground-truth defect patches, to bound the idea; '' = off)
   */
  rm: string;
  /** with rm: the suspect set dilated by rmd patches (Chebyshev) */
  rmd: number;
  /** with rm: 1 = the filter's links from the cleaned tables too (0: from the first pass) */
  rml: number;
  /** with rep: the control of random pools of the filter's sizes (the seed; 0 = off) */
  reprand: number;
  /** per-patch skip: each patch of every table skips its nearest images before a burnout jump (the filter's test at this fpr, per patch; 0 = off) */
  psk: number;
  /**
   * own-image references: each pass's patch scores plus own x the patch's nearest distance to its own
   * image outside its neighbourhood (ownx: the excluded Chebyshev radius beyond the LNAMD window's,
   * in the stage's own patches; with ownq, ownx alone); own = -1: that distance alone; 0: off
   */
  own: number;
  ownx: number;
  /** own: only the passes of r <= ownr (larger windows overlap most of the grid) */
  ownr: number;
  /** own: the mean distance to the nearest fraction ownq of the image's own patches instead of the nearest one (0) */
  ownq: number;
  /**
   * reference density (LOF-like; musc's --density-exponent, core/density.ts): each nearest distance d(p, q*)
   * to image j divided by (rho_q* / median rho)^lof, rho_q = the reference patch's own MSM score in the same
   * table (how far normal patches like it lie from their matches) (0: off)
   */
  lof: number;
  /** with lof: 1 = weights of at least 1 only (dense references raise distances, sparse ones never lower them); -1 = at most 1 */
  lofc: number;
  /** with lof: entries whose nearest patch lies within this many grid cells (Chebyshev) of the query's position are not normalised; -1 = every entry */
  lofg: number;
  /** with lof: 1 = only the filtered reductions (the image scores) normalised; the maps from MSM's own tables */
  lofimg: number;
  /** with lof: only the passes of these stage indices (empty: every stage) */
  lofl?: number[];
  /**
   * pair normalisation: each nearest distance d_ij(p) divided by the median over i's patches of d_ij
   * to the power pnorm (how far image j is from image i as a whole), so that a patch counts by how
   * much worse image j explains it than the rest of its image (0: off)
   */
  pnorm: number;
  /**
   * peer normalisation of image scores: s_i - peerw x the median score of i's peers, the fraction peer
   * of the other images nearest by peerby: 'tok' (layer4 tokens: pose, lighting, scale) or 'geo' (original
   * width and height); a score's baseline that comes with such nuisances cancels (0: off)
   */
  peer: number;
  peerw: number;
  /** with top: each image's top fraction times (median original area / its area)^topa (0: one fraction for all) */
  topa: number;
  /** with topa: the areas shuffled among the images (seed; 0: off), the control that keeps the fractions' spread without their reason */
  topas: number;
  /** a pure size prior (the control of topa): robust z of the image scores + sizep x robust z of log original area (0: off) */
  sizep: number;
  /** 1: the batch's trend of image score over log original area removed (Theil-Sen slope, label-free); 2: the slope of the good images only (an oracle, for analysis); 0: off */
  sized: number;
  peerby: string;
}
const BASE: Row = {
  geometry: 'squash',
  pre: '',
  tta: '',
  msf: [],
  replink: '',
  size: 224,
  stages: [2, 3],
  agg: 'box',
  rList: [1, 3, 5],
  q: 0.3,
  qa: 0,
  rep: 0,
  repw: DEFAULT_REPEAT_FILTER.minShare,
  repmax: DEFAULT_REPEAT_FILTER.maxShare,
  repmap: 0,
  repl: [0],
  fuse: [],
  grid: 0,
  sigma: 0,
  top: 0,
  kList: [1, 2, 3],
  token: 'l4',
  pos: 0,
  posmap: 0,
  bm: 0,
  rephop: 1,
  sn: 0,
  repr: 0,
  pn: 0,
  pnmap: 0,
  imc: 0,
  geo: 0,
  rc: 'mean',
  rl: '',
  gm: 0,
  pair: 0,
  pairmix: 0,
  joint: '',
  jadd: 0,
  rm: '',
  rmd: 0,
  rml: 0,
  reprand: 0,
  psk: 0,
  own: 0,
  ownx: 1,
  ownr: 1,
  ownq: 0,
  lof: 0,
  lofc: 0,
  lofg: -1,
  lofimg: 0,
  pnorm: 0,
  peer: 0,
  peerw: 1,
  topa: 0,
  topas: 0,
  sizep: 0,
  sized: 0,
  peerby: 'tok',
};

/** Spec keys -> Row fields, by the value's kind: text, a number, a list of numbers (dot-separated). */
type Fields<T> = { [K in keyof Row]-?: Row[K] extends T ? K : never }[keyof Row];
const TEXT_KEYS: Record<string, Fields<string>> = {
  g: 'geometry',
  pre: 'pre',
  tta: 'tta',
  replink: 'replink',
  agg: 'agg',
  tok: 'token',
  rc: 'rc',
  rl: 'rl',
  joint: 'joint',
  rm: 'rm',
  peerby: 'peerby',
};
const NUMBER_KEYS: Record<string, Fields<number | undefined>> = {
  s: 'size',
  c: 'channels',
  q: 'q',
  qa: 'qa',
  rep: 'rep',
  repw: 'repw',
  repmax: 'repmax',
  repmap: 'repmap',
  repr: 'repr',
  rephop: 'rephop',
  pn: 'pn',
  pnmap: 'pnmap',
  imc: 'imc',
  geo: 'geo',
  grid: 'grid',
  sig: 'sigma',
  top: 'top',
  pos: 'pos',
  posmap: 'posmap',
  bm: 'bm',
  sn: 'sn',
  gm: 'gm',
  jadd: 'jadd',
  pair: 'pair',
  pairmix: 'pairmix',
  rmd: 'rmd',
  rml: 'rml',
  reprand: 'reprand',
  psk: 'psk',
  own: 'own',
  ownx: 'ownx',
  ownr: 'ownr',
  ownq: 'ownq',
  lof: 'lof',
  lofc: 'lofc',
  lofg: 'lofg',
  lofimg: 'lofimg',
  pnorm: 'pnorm',
  peer: 'peer',
  peerw: 'peerw',
  topa: 'topa',
  topas: 'topas',
  sizep: 'sizep',
  sized: 'sized',
};
const LIST_KEYS: Record<string, Fields<number[] | undefined>> = {
  st: 'stages',
  lofl: 'lofl',
  r: 'rList',
  l: 'layers',
  repl: 'repl',
  fuse: 'fuse',
  msf: 'msf',
  mix: 'mix',
  k: 'kList',
};

function parseRow(spec: string): Row {
  const row: Row = { ...BASE };
  if (spec === 'base') return row;
  for (const kv of spec.split('/')) {
    const [k, v] = kv.split('=') as [string, string];
    if (TEXT_KEYS[k]) row[TEXT_KEYS[k]] = v;
    else if (NUMBER_KEYS[k]) row[NUMBER_KEYS[k]] = Number(v);
    else if (LIST_KEYS[k]) row[LIST_KEYS[k]] = v.split('.').map(Number);
    else throw new Error(`bad row key ${k}`);
  }
  if (!/^(squash|letterbox|mirror\d+|tile[\d.]+|native|nativeagg|nativegrid)$/.test(row.geometry))
    throw new Error(`bad geometry ${row.geometry}`);
  return row;
}

/** One backbone input: an image or one tile of it; `box` = where its content sits in the S x S input. */
interface Piece {
  item: number;
  k: number;
  K: number;
  axis: 'x' | 'y';
  box: Box;
}
interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** The pieces of every image under a geometry (one per image unless tiled). */
async function piecesOf(paths: string[], g: string, S: number): Promise<Piece[]> {
  const full = { x: 0, y: 0, w: S, h: S };
  const out: Piece[] = [];
  for (const [item, p] of paths.entries()) {
    if (!g.startsWith('tile')) {
      out.push({ item, k: 0, K: 1, axis: 'x', box: full });
      continue;
    }
    const img = await decodeRgb(p); // sharp alone does not read every format (BMP)
    const aspect = img.width / img.height;
    const long = Math.max(aspect, 1 / aspect);
    const A = Number(g.slice(4));
    const K = long > A ? Math.ceil(long / A) : 1;
    for (let k = 0; k < K; k++) out.push({ item, k, K, axis: aspect >= 1 ? 'x' : 'y', box: full });
  }
  return out;
}

/** A piece's RGB input at S x S (the backbone squashes it) and its content box. */
async function pieceImage(img: RgbImage, piece: Piece, S: number, g: string): Promise<{ img: RgbImage; box: Box }> {
  const raw = (im: RgbImage) =>
    sharp(Buffer.from(im.data.buffer, im.data.byteOffset, im.data.byteLength), {
      raw: { width: im.width, height: im.height, channels: 3 },
    });
  if (g.startsWith('tile') && piece.K > 1) {
    const [len, at] = piece.axis === 'x' ? [img.width, 'left'] : [img.height, 'top'];
    const a0 = Math.round((piece.k * len) / piece.K),
      a1 = Math.round(((piece.k + 1) * len) / piece.K);
    const region =
      at === 'left' ? { left: a0, top: 0, width: a1 - a0, height: img.height } : { left: 0, top: a0, width: img.width, height: a1 - a0 };
    const px = await raw(img).extract(region).raw().toBuffer();
    return { img: { width: region.width, height: region.height, data: new Uint8Array(px) }, box: piece.box };
  }
  if (g !== 'letterbox') return { img, box: piece.box };
  const s = S / Math.max(img.width, img.height);
  const w = Math.max(1, Math.round(img.width * s)),
    h = Math.max(1, Math.round(img.height * s));
  const x = (S - w) >> 1,
    y = (S - h) >> 1;
  const px = await raw(img)
    .resize(w, h, { fit: 'fill', kernel: 'cubic' })
    .extend({ left: x, right: S - w - x, top: y, bottom: S - h - y, extendWith: 'mirror' })
    .raw()
    .toBuffer();
  return { img: { width: S, height: S, data: new Uint8Array(px) }, box: { x, y, w, h } };
}

/** Per-image contrast normalisation (sharp): evens out exposure differences between images. */
async function photometric(img: RgbImage, pre: string): Promise<RgbImage> {
  if (!pre) return img;
  let sh = sharp(Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength), {
    raw: { width: img.width, height: img.height, channels: 3 },
  });
  if (pre === 'normalise') sh = sh.normalise();
  else if (pre === 'clahe') sh = sh.clahe({ width: Math.max(1, img.width >> 3), height: Math.max(1, img.height >> 3) });
  else throw new Error(`bad pre ${pre}`);
  const px = await sh.raw().toBuffer();
  return { width: img.width, height: img.height, data: new Uint8Array(px) };
}

interface Extracted {
  stages: StageFeatures<Float32Array>[];
  tokens: ImageTokens;
  /** native geometry: each image's own stage features [1, h_i, w_i, C] (then `stages` is empty) */
  native?: StageFeatures<Float32Array>[][];
}

/** The native geometry's input sides [H, W] per image of sizes [h, w]: one scale (median sqrt(w h) -> S), sides rounded to 16 px (>= 64). */
function nativeSides(dims: [number, number][], S: number): [number, number][] {
  const roots = dims.map(([h, w]) => Math.sqrt(h * w)).sort((a, b) => a - b);
  const f = S / roots[roots.length >> 1]!;
  const side = (v: number) => Math.max(64, Math.round((v * f) / 16) * 16);
  return dims.map(([h, w]) => [side(h), side(w)]);
}

/** Native geometry: every image through a ResNet graph of its own input size (one graph per distinct size). */
async function extractNative(paths: string[], row: Row): Promise<Extracted> {
  const info = backboneInfo('resnet50');
  const { net, convention } = await readResNet(resolveWeightsPath(info, {}), info);
  const images: RgbImage[] = []; // each image decoded once (its size sets the input side)
  for (const p of paths) images.push(await photometric(await decodeRgb(p), row.pre));
  const sides = nativeSides(
    images.map((im) => [im.height, im.width]),
    row.size,
  );
  const native: StageFeatures<Float32Array>[][] = new Array(paths.length);
  const tokens: Float32Array[] = new Array(paths.length);
  let d = 0;
  const bySize = new Map<string, number[]>();
  sides.forEach(([h, w], i) => bySize.set(`${h}x${w}`, [...(bySize.get(`${h}x${w}`) ?? []), i]));
  for (const [key, idx] of bySize) {
    const [H, W] = sides[idx[0]!]!;
    const graph = buildResNetGraph(net, { imageSize: H, imageWidth: W, stages: row.stages, name: 'resnet50' });
    const model = await RemoteModel.load(`levers-native-${key}`, graph.bytes);
    for (const i of idx) {
      const x = await preprocessResNet(images[i]!, [H, W], convention);
      const out = await model.run({ pixels: { type: 'float32', dims: [1, 3, H, W], data: x } }, [
        ...graph.stageShapes.map((g) => g.name),
        'tokens',
      ]);
      native[i] = graph.stageShapes.map((g) => ({ n: 1, h: g.h, w: g.w, c: g.c, data: out[g.name]!.data as Float32Array }));
      d = out.tokens!.data.length;
      tokens[i] = l2NormalizeRows(out.tokens!.data as Float32Array, 1, d); // unit, as the backbone's tokens
    }
    await model.dispose();
  }
  const data = new Float32Array(paths.length * d);
  tokens.forEach((t, i) => data.set(t, i * d));
  return { stages: [], tokens: { n: paths.length, d, data }, native };
}

/** x [rows, w, c] (channels-last; c = 1 for a CHW plane stack) mirrored along w; a new array. */
function mirrorW(x: Float32Array, rows: number, w: number, c: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++)
    for (let j = 0; j < w; j++) out.set(x.subarray((r * w + j) * c, (r * w + j + 1) * c), (r * w + (w - 1 - j)) * c);
  return out;
}

/** tta=flipref:h|hv -> the mirrors added as references: 'h' (left-right), 'v' (top-bottom), 'hv' (both, = 180 degrees). */
function mirrorKinds(tta: string): string[] {
  if (!tta.startsWith('flipref')) return [];
  const spec = tta.split(':')[1] ?? 'h';
  if (spec === 'h') return ['h'];
  if (spec === 'hv') return ['h', 'v', 'hv'];
  throw new Error(`bad tta ${tta}: flipref:h or flipref:hv`);
}

/** A CHW batch [planes, S, S] mirrored left-right ('h'), top-bottom ('v') or both ('hv'); a new array. */
function mirrorBatch(x: Float32Array, planes: number, S: number, kind: string): Float32Array {
  let out = kind.includes('h') ? mirrorW(x, planes * S, S, 1) : x.slice();
  if (kind.includes('v')) {
    const src = out;
    out = new Float32Array(src.length);
    for (let p = 0; p < planes; p++)
      for (let y = 0; y < S; y++) out.set(src.subarray((p * S + y) * S, (p * S + y + 1) * S), (p * S + (S - 1 - y)) * S);
  }
  return out;
}

/** a = (a + b) / 2 in place. */
function averageInto(a: Float32Array, b: Float32Array): void {
  for (let i = 0; i < a.length; i++) a[i] = (a[i]! + b[i]!) / 2;
}

/**
 * Stage features and tokens [M, D] of every piece (boxes filled in), through the FeatureStore
 * (src/features/store.ts, musc's one extraction loop; no cache, float32). Each piece is decoded by
 * the row's photometric step and geometry; tta=flip averages each piece's features with its
 * mirror's (mirrored back); tta=flipref appends the mirrors' features as references, kind by kind:
 * stages [(1 + K) M, h, w, C].
 */
async function extract(paths: string[], pieces: Piece[], row: Row): Promise<Extracted> {
  const pad = row.geometry.startsWith('mirror') ? Number(row.geometry.slice(6)) : 0;
  if (row.msf.length && row.geometry !== 'squash') throw new Error('msf needs g=squash');
  if (row.tta && row.tta !== 'flip' && !row.tta.startsWith('flipref')) throw new Error(`bad tta ${row.tta}`);
  const mirrors = mirrorKinds(row.tta);
  // msf: the backbone's own fused sizes (resnet.ts), as `musc run --fuse-sizes`
  const bb = await loadBackbone('resnet50', { imageSize: row.size, stages: row.stages, borderPad: pad, fuseSizes: row.msf });
  const views = ['', ...(row.tta === 'flip' ? ['h'] : []), ...mirrors];
  const viewOf = new WeakMap<RgbImage, string>();
  const sides = [row.size, ...(bb.fuseSizes ?? [])].map((s) => s + 2 * pad); // the input's [3, s, s] blocks
  const store = new FeatureStore({
    backbone: {
      imageSize: bb.imageSize,
      borderPad: bb.borderPad,
      fuseSizes: bb.fuseSizes,
      extract: (x, n) => bb.extract(x, n),
      preprocess: async (img) => mirrorInput(await bb.preprocess(img), sides, viewOf.get(img) ?? ''),
    },
    storage: 'float32',
    badFiles: 'error',
    decode: async (key) => {
      const [m, view] = key.split('#') as [string, string];
      const pc = pieces[Number(m)]!;
      const pi = await pieceImage(await photometric(await decodeRgb(paths[pc.item]!), row.pre), pc, row.size, row.geometry);
      pc.box = pi.box;
      viewOf.set(pi.img, view);
      return pi.img;
    },
  });
  const { images } = await store.extract(views.flatMap((v) => pieces.map((_, m) => ({ path: `${m}#${v}` }))));
  await bb.dispose();
  const M = pieces.length;
  const feats = images.map((im) => im.features);
  const stages = stackStages(feats, store.dims!, 'float32') as StageFeatures<Float32Array>[];
  const tokens = stackTokens(feats.slice(0, M), store.tokenDim);
  if (row.tta !== 'flip') return { stages, tokens };
  // flip: the mirror's features mirrored back and averaged with the piece's own
  const own = stages.map((st) => ({ ...st, n: M, data: st.data.slice(0, M * st.h * st.w * st.c) }));
  own.forEach((st, si) => averageInto(st.data, mirrorW(stages[si]!.data.subarray(st.data.length), M * st.h, st.w, st.c)));
  averageInto(tokens.data as Float32Array, stackTokens(feats.slice(M), store.tokenDim).data as Float32Array);
  return { stages: own, tokens };
}

/** One preprocessed input ([3, s, s] per side in `sides`, one after another) mirrored: '' (as is), 'h', 'v' or 'hv'. */
function mirrorInput(x: Float32Array, sides: number[], kind: string): Float32Array {
  if (!kind) return x;
  const out = new Float32Array(x.length);
  let at = 0;
  for (const s of sides) {
    const block = x.subarray(at, at + 3 * s * s);
    out.set(mirrorBatch(block, 3, s, kind), at);
    at += 3 * s * s;
  }
  if (at !== x.length) throw new Error(`input of ${x.length} values, sides ${sides.join(', ')} give ${at}`);
  return out;
}

/**
 * MuSc-V2-like aggregations of one layer-normed stage [N, h, w, C] (screening only, not in musc):
 * 'sw:T' similarity-weighted r x r mean (weights exp(-|u_q - u_p| / T), u = unit vectors, no padding);
 * 'md' / 'mdsw:T' the mean of the L2-normalised r = 1,3,5 box / weighted means: one feature.
 * Resized to the target grid and L2-normalised as LNAMD. Returns Z [N, H*W, C].
 */
function aggregateExperimental(
  spec: string,
  stage: StageFeatures,
  normed: Float32Array,
  r: number,
  target: AggregateOptions,
): Float32Array {
  const [kind, tStr] = spec.split(':') as [string, string | undefined];
  const T = Number(tStr ?? 1);
  const { n, h, w, c } = stage;
  const P = target.gridH * target.gridW,
    per = h * w * c;
  const weighted = kind.endsWith('sw');
  const degrees = kind.startsWith('md') ? [1, 3, 5] : [r];
  const out = new Float32Array(n * P * c);
  const unit = new Float32Array(per);
  const acc = new Float64Array(per);
  const g = new Float64Array(c);
  const l2 = (v: ArrayLike<number>, o: number) => {
    let ss = 0;
    for (let k = 0; k < c; k++) ss += v[o + k]! ** 2;
    return ss > 0 ? 1 / Math.sqrt(ss) : 0;
  };
  for (let i = 0; i < n; i++) {
    const x = normed.subarray(i * per, (i + 1) * per);
    for (let p = 0; p < h * w; p++) {
      const inv = l2(x, p * c);
      for (let k = 0; k < c; k++) unit[p * c + k] = x[p * c + k]! * inv;
    }
    acc.fill(0);
    for (const rr of degrees) {
      const rad = (rr - 1) >> 1;
      for (let y = 0; y < h; y++) {
        for (let xx = 0; xx < w; xx++) {
          const p = y * w + xx;
          g.fill(0);
          for (let dy = -rad; dy <= rad; dy++) {
            for (let dx = -rad; dx <= rad; dx++) {
              const yy = y + dy,
                x2 = xx + dx;
              if (yy < 0 || yy >= h || x2 < 0 || x2 >= w) continue; // box: zero padding (scale only)
              const q = yy * w + x2;
              let wt = 1;
              if (weighted) {
                let d2 = 0;
                for (let k = 0; k < c; k++) d2 += (unit[q * c + k]! - unit[p * c + k]!) ** 2;
                wt = Math.exp(-Math.sqrt(d2) / T);
              }
              for (let k = 0; k < c; k++) g[k] += wt * x[q * c + k]!;
            }
          }
          const inv = l2(g, 0);
          for (let k = 0; k < c; k++) acc[p * c + k] += g[k]! * inv;
        }
      }
    }
    const grid = h === target.gridH && w === target.gridW ? acc : resizeBilinearHWC(acc, h, w, c, target.gridH, target.gridW);
    for (let p = 0; p < P; p++) {
      const inv = l2(grid, p * c);
      for (let k = 0; k < c; k++) out[(i * P + p) * c + k] = grid[p * c + k]! * inv;
    }
  }
  return out;
}

/** Batch centring: the mean unit feature of all patches of all images subtracted, L2-normalised again. z [N*P, C] in place. */
function centred(z: Float32Array, c: number): Float32Array {
  const rows = z.length / c;
  const mean = new Float64Array(c);
  for (let t = 0; t < rows; t++) for (let k = 0; k < c; k++) mean[k] += z[t * c + k]! / rows;
  for (let t = 0; t < rows; t++) {
    let ss = 0;
    for (let k = 0; k < c; k++) ss += (z[t * c + k]! - mean[k]!) ** 2;
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let k = 0; k < c; k++) z[t * c + k] = (z[t * c + k]! - mean[k]!) * inv;
  }
  return z;
}

/** Runs in the compute worker: the nearest-distance table of a bank (pairs in `need`; Euclidean for rows that are not unit, raw:E and rel:E). */
export async function tableTask(
  z: Float32Array,
  n: number,
  p: number,
  c: number,
  need: Uint8Array,
  euclidean = false,
): Promise<Float32Array> {
  return nearestDistanceTable(z, n, p, c, await kernelFor('cpu', 'fast'), { need, euclidean });
}

/**
 * Runs in the compute worker: the table of a bank whose references leave out the patches in `mask`
 * [N, P] (rm): zeroed rows are at distance sqrt 2 under the fast form sqrt(2 - 2 a.b), farther than
 * any real nearest patch; the masked patches' own rows are then scored with their features.
 */
export async function maskedTableTask(z: Float32Array, n: number, p: number, c: number, need: Uint8Array, mask: Uint8Array) {
  const kernel = await kernelFor('cpu', 'fast');
  const zr = z.slice();
  for (let t = 0; t < n * p; t++) if (mask[t]) zr.fill(0, t * c, (t + 1) * c);
  const table = await nearestDistanceTable(zr, n, p, c, kernel, { need });
  const rows = Array.from(mask.keys()).filter((t) => mask[t]);
  const zT = new Float32Array(c * n * p); // [C, N P]
  for (let t = 0; t < n * p; t++) for (let k = 0; k < c; k++) zT[k * n * p + t] = zr[t * c + k]!;
  for (let r0 = 0; r0 < rows.length; r0 += 256) {
    const chunk = rows.slice(r0, r0 + 256);
    const a = new Float32Array(chunk.length * c);
    chunk.forEach((t, x) => a.set(z.subarray(t * c, (t + 1) * c), x * c));
    const dots = await kernel.matMul!(a, zT, chunk.length, c, n * p, false); // [rows, N P]
    chunk.forEach((t, x) => {
      const i = Math.floor(t / p);
      for (let j = 0; j < n; j++) {
        if (!need[i * n + j]) continue;
        let best = -Infinity;
        for (let q = 0; q < p; q++) best = Math.max(best, dots[x * n * p + j * p + q]!);
        table[t * n + j] = Math.sqrt(Math.max(0, 2 - 2 * best));
      }
    });
  }
  return table;
}

/** lofg: the table [M, P, M] with each entry times its nearest patch's weight [M, P], unless that patch lies within `radius` cells of the query's position. */
function gatedDensity(table: Float32Array, idx: Float32Array, M: number, w: number, weight: Float32Array, radius: number): Float32Array {
  const P = table.length / (M * M);
  const out = table.slice();
  forEachMatch(idx, M, P, w, (e, j, q, shift) => {
    if (shift > radius) out[e]! *= weight[j * P + q]!;
  });
  return out;
}

/** Every entry e = (i, p, j), i != j, of a nearest-index table [M, P, M] on a w-wide grid: j, its nearest patch q, and q's Chebyshev distance from p. */
function forEachMatch(
  idx: Float32Array,
  M: number,
  P: number,
  w: number,
  f: (e: number, j: number, q: number, shift: number) => void,
): void {
  for (let t = 0; t < M * P; t++) {
    const i = Math.floor(t / P),
      py = Math.floor((t % P) / w),
      px = t % w;
    for (let j = 0; j < M; j++) {
      const q = idx[t * M + j]!;
      if (j !== i) f(t * M + j, j, q, Math.max(Math.abs(Math.floor(q / w) - py), Math.abs((q % w) - px)));
    }
  }
}

/**
 * How local a table's nearest patches are (MUSC_LEVERS_LOCALITY): the share of entries (i, p, j), i != j,
 * whose nearest patch in j lies within 2 cells of p on the h x w grid; that share for uniform matches;
 * the IQR of ln rho [M, P]. An aligned object matches at its own position, a texture anywhere.
 */
function locality(idx: Float32Array, rho: Float64Array, M: number, h: number, w: number) {
  const P = h * w;
  let near = 0,
    uniform = 0;
  forEachMatch(idx, M, P, w, (_e, _j, _q, shift) => {
    if (shift <= 2) near++;
  });
  for (let p = 0; p < P; p++) {
    const py = Math.floor(p / w),
      px = p % w;
    uniform += (M * (Math.min(h - 1, py + 2) - Math.max(0, py - 2) + 1) * (Math.min(w - 1, px + 2) - Math.max(0, px - 2) + 1)) / P;
  }
  const lg = Array.from(rho, Math.log).sort((a, b) => a - b);
  const q = (f: number): number => lg[Math.floor(f * (lg.length - 1))]!;
  const r3 = (v: number): number => Math.round(v * 1000) / 1000;
  return { within2: r3(near / (M * P * (M - 1))), within2_uniform: r3(uniform / (M * P)), log_rho_iqr: r3(q(0.75) - q(0.25)) };
}

/**
 * Where the highest normalised patch scores lie (MUSC_LEVERS_PEAKS): for each image, the own density
 * rho(i, p) / median rho of its top 2.5% patches by the normalised score `s` [M, P], their median;
 * then the median of that over the good images and over the defective ones. Below 1: an image's
 * peaks are in its densest (most uniform) regions, where A > 1 makes normal noise score highest.
 */
function peakDensity(s: Float64Array, rho: Float64Array, paths: string[], P: number) {
  const med = (a: number[]): number => {
    const b = a.slice().sort((x, y) => x - y);
    return b[Math.floor((b.length - 1) / 2)]!;
  };
  const m = med(Array.from(rho));
  const k = Math.max(1, Math.round(0.025 * P));
  const good: number[] = [],
    bad: number[] = [];
  for (let i = 0; i < paths.length; i++) {
    const order = Array.from({ length: P }, (_, p) => p).sort((a, b) => s[i * P + b]! - s[i * P + a]!);
    const v = med(order.slice(0, k).map((p) => rho[i * P + p]! / m));
    (/[\\/]good[\\/]/.test(paths[i]!) ? good : bad).push(v);
  }
  const r3 = (v: number): number => Math.round(v * 1000) / 1000;
  return { peak_rho_good: r3(med(good)), peak_rho_defective: r3(med(bad)) };
}

/** Runs in the compute worker (lof): the nearest patches' indices [N, P, N] of a bank (musc's nearestTableWithIndices), as floats. */
export async function indexTableTask(z: Float32Array, n: number, p: number, c: number, need: Uint8Array, euclidean: boolean) {
  const { index } = await nearestTableWithIndices(z, n, p, c, await kernelFor('cpu', 'fast'), { need, euclidean });
  return Float32Array.from(index);
}

/**
 * Runs in the compute worker (own): each patch's nearest distance [N, P] to the patches of its own
 * image farther than `excl` grid cells (Chebyshev) on the w-wide grid; Euclidean for rows that are
 * not unit. z [N, P, C].
 */
export async function ownTableTask(
  z: Float32Array,
  n: number,
  p: number,
  c: number,
  w: number,
  excl: number,
  euclidean: boolean,
  frac = 0,
): Promise<Float32Array> {
  const mm = (await kernelFor('cpu', 'fast')).matMul!;
  const out = new Float32Array(n * p);
  const sq = new Float64Array(p);
  const d2 = new Float64Array(p);
  for (let i = 0; i < n; i++) {
    const zi = z.subarray(i * p * c, (i + 1) * p * c);
    const ziT = new Float32Array(c * p); // [C, P]
    for (let a = 0; a < p; a++) for (let k = 0; k < c; k++) ziT[k * p + a] = zi[a * c + k]!;
    const dots = await mm(zi, ziT, p, c, p, false); // [P, P]
    for (let a = 0; a < p; a++) sq[a] = euclidean ? dots[a * p + a]! : 1;
    for (let a = 0; a < p; a++) {
      const ya = Math.floor(a / w),
        xa = a % w;
      let m = 0;
      for (let b = 0; b < p; b++)
        if (Math.max(Math.abs(Math.floor(b / w) - ya), Math.abs((b % w) - xa)) > excl)
          d2[m++] = Math.max(0, sq[a]! + sq[b]! - 2 * dots[a * p + b]!);
      out[i * p + a] = ownReduce(d2.subarray(0, m), frac);
    }
  }
  return out;
}

/** own: the nearest of a patch's squared distances to its own image (frac 0), or the mean distance of their lowest fraction frac. */
function ownReduce(d2: Float64Array, frac: number): number {
  if (d2.length === 0) return Infinity;
  if (frac <= 0) return Math.sqrt(d2.reduce((a, v) => Math.min(a, v), Infinity));
  d2.sort();
  const k = Math.max(1, Math.ceil(frac * d2.length));
  let s = 0;
  for (let t = 0; t < k; t++) s += Math.sqrt(d2[t]!);
  return s / k;
}

const CACHE = process.env.MUSC_LEVERS_CACHE ?? join(tmpdir(), 'musc-levers-tables');
const DATA = join(process.env.MUSC_SHARED ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared'), 'data');
const f32 = (file: string): Float32Array => {
  const b = readFileSync(file);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4).slice();
};
/** Written whole or not at all (a killed run leaves no truncated table). */
const save = (file: string, a: Float32Array): void => {
  writeFileSync(`${file}.tmp`, Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  renameSync(`${file}.tmp`, file);
};

interface Meta {
  pieces: Piece[];
  h: number;
  w: number;
  c0: number;
  d: number;
  extract_s: number;
  score_s: Record<string, number>;
  /** native geometry: each image's stage-0 grid [h, w]; tables then hold P = max h w rows per image (h = 1, w = P) */
  grids?: [number, number][];
}

/**
 * Native geometry: LNAMD of stage l at r on each image's own grid, Z [N, P, C] with P = the largest
 * grid; an image with fewer patches repeats its first patch (a repeated patch never changes a
 * nearest distance; its query rows are ignored).
 */
function nativeFeatures(native: StageFeatures<Float32Array>[][], l: number, r: number, meta: Meta, agg: string): Float32Array {
  if (agg !== 'box') throw new Error('native geometry: box aggregation only');
  const P = meta.h * meta.w,
    c = meta.c0;
  const z = new Float32Array(native.length * P * c);
  native.forEach((stages, i) => {
    const [h, w] = meta.grids?.[i] ?? [meta.h, meta.w]; // nativeagg: every image to the common grid
    const st = stages[l]!;
    const zi = aggregateStage(st, layerNormImages(st), r, { gridH: h, gridW: w, channels: c });
    z.set(zi, i * P * c);
    for (let p = h * w; p < P; p++) z.set(zi.subarray(0, c), (i * P + p) * c);
  });
  return z;
}

/** nativegrid: each image's stage features [1, h_i, w_i, C] resized to the grids of an S x S input -> [N, h, w, C] per stage. */
function squashedGrids(native: StageFeatures<Float32Array>[][], S: number, layers: number[]): StageFeatures<Float32Array>[] {
  return native[0]!.map((s0, l) => {
    const side = S / 2 ** (layers[l]! + 1), // layer k has stride 2^(k+1)
      per = side * side * s0.c;
    const data = new Float32Array(native.length * per);
    native.forEach((stages, i) => {
      const st = stages[l]!;
      data.set(resizeBilinearHWC(Float64Array.from(st.data), st.h, st.w, st.c, side, side), i * per);
    });
    return { n: native.length, h: side, w: side, c: s0.c, data };
  });
}

/** Patch scores [M, P] -> maps [M, S, S] (native: each image from its own grid, squashed to S x S). */
function patchMaps(patch: Float64Array, meta: Meta, S: number): Float32Array {
  const M = meta.pieces.length;
  if (!meta.grids) return upsampleAlignCorners(patch, M, meta.h, meta.w, S, S);
  const P = meta.w,
    out = new Float32Array(M * S * S);
  meta.grids.forEach(([h, w], i) => out.set(upsampleAlignCorners(patch.subarray(i * P, i * P + h * w), 1, h, w, S, S), i * S * S));
  return out;
}

/** Maps [n, S, S] -> [n, S - 2b, S - 2b]: the outer b pixels cut away. */
function cropMaps(maps: Float32Array, n: number, S: number, b: number): Float32Array {
  const T = S - 2 * b,
    out = new Float32Array(n * T * T);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < T; y++) out.set(maps.subarray((i * S + y + b) * S + b, (i * S + y + b) * S + b + T), (i * T + y) * T);
  return out;
}

/** A row's image score rule: the mean of its top fraction, or the maximum (top=0). */
function imageRule(row: Row) {
  return row.top > 0 ? ({ kind: 'top', fraction: row.top } as const) : MAX_IMAGE_SCORE;
}

/** A row's image-score post-processing from its maps: imc, then mix. */
function peakPost(img: Float64Array, maps: Float32Array, row: Row): Float64Array {
  const c = row.imc ? minusMapMedians(img, maps, row.imc) : img;
  return row.mix ? mixedPeaks(c, maps, row.mix) : c;
}

/** The image-level levers after peakPost: gm (token MSM mixed in), then pair (alone, or mixed in with pairmix). */
function imageLevel(img: Float64Array, row: Row, fc: FeatureConfig, pairImg: Float64Array | undefined): Float64Array {
  const g = row.gm ? withGlobalMutual(img, fc.tokens(), row) : img;
  if (!pairImg) return g;
  if (!row.pairmix) return pairImg;
  const zi = robustZ(g),
    zp = robustZ(pairImg);
  return zi.map((v, i) => v + row.pairmix * zp[i]!);
}

/** Robust z-scores over the batch: (s - median) / MAD. */
function robustZ(s: Float64Array): Float64Array {
  const med = s.slice().sort()[s.length >> 1]!;
  const mad = Float64Array.from(s, (v) => Math.abs(v - med)).sort()[s.length >> 1]! || 1;
  return s.map((v) => (v - med) / mad);
}

/** mix: the mean of robust z-scores of the row's image scores and of the maps' top fractions `fs` in thousandths (0 = max). */
function mixedPeaks(img: Float64Array, maps: Float32Array, fs: number[]): Float64Array {
  const n = img.length;
  const rule = (f: number) => (f > 0 ? ({ kind: 'top', fraction: f / 1000 } as const) : MAX_IMAGE_SCORE);
  const all = [img, ...fs.map((f) => imageScores(maps, n, rule(f)))].map(robustZ);
  return img.map((_, i) => all.reduce((a, z) => a + z[i]!, 0) / all.length);
}

/** gm: robust z of the image scores plus gm x robust z of an image-level MSM over the unit tokens [n, d]. */
function withGlobalMutual(img: Float64Array, tokens: ImageTokens, row: Row): Float64Array {
  const { n, d } = tokens;
  const t = tokens.data as Float32Array;
  const g = new Float64Array(n);
  const K = Math.max(1, Math.round(row.q * (n - 1)));
  for (let i = 0; i < n; i++) {
    const dist: number[] = [];
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      let dot = 0;
      for (let c = 0; c < d; c++) dot += t[i * d + c]! * t[j * d + c]!;
      dist.push(Math.sqrt(Math.max(0, 2 - 2 * dot)));
    }
    dist.sort((a, b) => a - b);
    g[i] = dist.slice(0, K).reduce((a, v) => a + v, 0) / K;
  }
  const zi = robustZ(img),
    zg = robustZ(g);
  return zi.map((v, i) => v + row.gm * zg[i]!);
}

/** Image scores minus f x the median of each image's map [n, T, T]. */
function minusMapMedians(img: Float64Array, maps: Float32Array, f: number): Float64Array {
  const T2 = maps.length / img.length;
  return img.map((v, i) => {
    const m = maps.slice(i * T2, (i + 1) * T2).sort();
    return v - f * m[T2 >> 1]!;
  });
}

/** Patch scores [M, P] normalised per patch position over the batch: minus the median (and / the MAD with mode 2). */
function positionNormalised(s: Float64Array, M: number, P: number, mode: number): Float64Array {
  const out = new Float64Array(M * P);
  const col = new Float64Array(M);
  const median = (a: Float64Array) => {
    const b = a.slice().sort();
    return M % 2 ? b[(M - 1) / 2]! : (b[M / 2 - 1]! + b[M / 2]!) / 2;
  };
  for (let p = 0; p < P; p++) {
    for (let i = 0; i < M; i++) col[i] = s[i * P + p]!;
    const med = median(col);
    let scale = 1;
    if (mode === 2) {
      for (let i = 0; i < M; i++) col[i] = Math.abs(s[i * P + p]! - med);
      scale = median(col) + 1e-6;
    }
    for (let i = 0; i < M; i++) out[i * P + p] = (s[i * P + p]! - med) / scale;
  }
  return out;
}

/** The cached state of one feature config: pieces, tables per (agg, l, r), tokens; extracts on demand. */
class FeatureConfig {
  private feats: Extracted | null = null;
  readonly key: string;
  meta: Meta | null;
  /** rm: the features' first-pass config and the references' suspect patches [M, P] (left out as nearest patches) */
  private parent: FeatureConfig | null = null;
  private refMask: Uint8Array | null = null;
  constructor(
    private readonly cat: string,
    private readonly paths: string[],
    private readonly row: Row,
    suffix = '',
  ) {
    this.key = `${cat}-${row.geometry}${row.pre ? `-${row.pre}` : ''}${row.tta ? `-${row.tta}` : ''}${row.msf.length ? `-msf${row.msf.join('_')}` : ''}-${row.size}-${row.stages.join('_')}-${row.channels ?? 'first'}${row.grid ? `-grid${row.grid}` : ''}${suffix}`;
    mkdirSync(CACHE, { recursive: true });
    const mf = join(CACHE, `${this.key}.json`);
    this.meta = existsSync(mf) ? (JSON.parse(readFileSync(mf, 'utf8')) as Meta) : null;
  }
  /** The same features with reference cleaning: tables whose references leave out the patches in `mask` [M, P] (cached by its hash). */
  withRefMask(mask: Uint8Array): FeatureConfig {
    const tag = createHash('sha256').update(mask).digest('hex').slice(0, 12);
    const fc = new FeatureConfig(this.cat, this.paths, this.row, `-rm${tag}`);
    fc.parent = this;
    fc.refMask = mask;
    fc.meta ??= { ...this.meta!, score_s: {} };
    return fc;
  }
  /** The tables the filter's links come from: the first pass's unless rml = 1. */
  linkSource(): FeatureConfig {
    return this.parent && !this.row.rml ? this.parent : this;
  }
  /** The same row's features without test-time augmentation or fused sizes (replink=plain). */
  async plain(): Promise<FeatureConfig> {
    const fc = new FeatureConfig(this.cat, this.paths, { ...this.row, tta: '', msf: [] });
    await fc.ensureMeta();
    return fc;
  }
  private writeMeta(): void {
    writeFileSync(join(CACHE, `${this.key}.json`), JSON.stringify(this.meta));
  }
  async features(): Promise<Extracted> {
    if (this.parent) return this.parent.features();
    if (this.feats) return this.feats;
    const t0 = performance.now();
    const pieces = await piecesOf(this.paths, this.row.geometry, this.row.size);
    const g = this.row.geometry;
    let f = g.startsWith('native') ? await extractNative(this.paths, this.row) : await extract(this.paths, pieces, this.row);
    if (g === 'nativegrid') f = { stages: squashedGrids(f.native!, this.row.size, this.row.stages), tokens: f.tokens };
    const grids = g === 'native' ? f.native!.map((st) => [st[0]!.h, st[0]!.w] as [number, number]) : undefined;
    const side = this.row.size / 2 ** (this.row.stages[0]! + 1); // the squashed input's stage-0 grid
    const target = f.native
      ? grids
        ? { gridH: 1, gridW: Math.max(...grids.map(([h, w]) => h * w)), channels: f.native[0]![0]!.c }
        : { gridH: side, gridW: side, channels: f.native[0]![0]!.c }
      : this.target(f.stages);
    save(join(CACHE, `${this.key}-tokens.f32`), f.tokens.data as Float32Array);
    const extract_s = (performance.now() - t0) / 1000;
    this.meta = {
      pieces,
      h: target.gridH,
      w: target.gridW,
      c0: target.channels,
      d: f.tokens.d,
      extract_s,
      score_s: this.meta?.score_s ?? {},
      ...(grids ? { grids } : {}),
    };
    this.writeMeta();
    this.feats = f;
    return f;
  }
  async ensureMeta(): Promise<Meta> {
    if (!this.meta || !existsSync(join(CACHE, `${this.key}-tokens.f32`))) await this.features();
    return this.meta!;
  }
  /** Table [M, P, M] of (agg, stage l, r); r = 0: a multi-degree aggregation. */
  async table(agg: string, l: number, r: number): Promise<Float32Array> {
    const name = `${agg}-l${l}-r${r}`;
    const file = join(CACHE, `${this.key}-${name}.f32`);
    if (existsSync(file)) {
      const t = f32(file);
      const m = this.meta!;
      const want = m.pieces.length ** 2 * m.h * m.w;
      if (t.length !== want) throw new Error(`${file}: ${t.length} values, a table [M, P, M] has ${want}: delete it to recompute`);
      return t;
    }
    const f = await this.features();
    const meta = this.meta!;
    const z = await this.bank(f, agg, l, r);
    const M = meta.pieces.length,
      P = meta.h * meta.w;
    // flipref: Z holds (1 + K) M banks, the pieces' and their mirrors'; only the pieces are queries,
    // and a piece's nearest distance to image b is over b and b's mirrors
    const C = agg.startsWith('joint') ? 2 * meta.c0 : (projectedChannels(agg) ?? meta.c0);
    const Mt = z.length / (P * C);
    const need = new Uint8Array(Mt * Mt);
    for (let a = 0; a < M; a++) for (let b = 0; b < Mt; b++) need[a * Mt + b] = meta.pieces[a]!.item !== meta.pieces[b % M]!.item ? 1 : 0;
    const t0 = performance.now();
    if (this.refMask && Mt !== M) throw new Error('rm: not with flipref');
    const euclid = euclideanAgg(agg);
    if (euclid && this.refMask) throw new Error('rm: not with raw features');
    const full = this.refMask
      ? await computeWorker().call<Float32Array>(import.meta.url, 'maskedTableTask', [z, Mt, P, C, need, this.refMask])
      : await computeWorker().call<Float32Array>(import.meta.url, 'tableTask', [z, Mt, P, C, need, euclid]);
    const table = Mt === M ? full : minOverMirrors(full, M * P, M, Mt);
    meta.score_s[name] = (performance.now() - t0) / 1000;
    save(file, table);
    this.writeMeta();
    return table;
  }
  /** lof: the table of (agg, l, r) density-normalised as musc's --density-exponent (core/density.ts; Row.lof). */
  async lofTable(agg: string, l: number, r: number, row: Row, nImages: number): Promise<Float32Array> {
    const meta = this.meta!;
    const M = meta.pieces.length,
      P = meta.h * meta.w;
    if (M !== nImages) throw new Error('lof: one squashed piece per image');
    const base = await this.table(agg, l, r);
    const file = join(CACHE, `${this.key}-${agg}-l${l}-r${r}-nnidx.f32`);
    let idx: Float32Array;
    if (existsSync(file)) idx = f32(file);
    else {
      const bank = await this.bank(await this.features(), agg, l, r);
      const args = [bank, M, P, bank.length / (M * P), allPairs(M), euclideanAgg(agg)];
      idx = await computeWorker().call<Float32Array>(import.meta.url, 'indexTableTask', args);
      save(file, idx);
    }
    const rho = reduceRow(base, meta.pieces, nImages, P, row.qa, row.q);
    if (process.env.MUSC_LEVERS_LOCALITY)
      process.stderr.write(`${JSON.stringify({ cat: this.key, agg, l, r, ...locality(idx, rho, M, meta.h, meta.w) })}\n`);
    if (row.lofg >= 0) return gatedDensity(base, idx, M, meta.w, densityWeights(rho, row.lof), row.lofg);
    let out: Float32Array;
    if (!row.lofc) out = densityNormalised(base, Uint16Array.from(idx), M, P, row.lof, rho);
    else {
      const w = densityWeights(rho, row.lof).map((v) => (row.lofc > 0 ? Math.max(1, v) : Math.min(1, v)));
      out = base.slice();
      normaliseRows(out, Uint16Array.from(idx), 0, M, P, w);
    }
    if (process.env.MUSC_LEVERS_PEAKS) {
      const peaks = peakDensity(reduceRow(out, meta.pieces, nImages, P, row.qa, row.q), rho, this.paths, P);
      process.stderr.write(`${JSON.stringify({ cat: this.key, agg, l, r, lof: row.lof, lofc: row.lofc, ...peaks })}\n`);
    }
    return out;
  }
  /** own: each patch's nearest distance [M, P] to its own image outside the neighbourhood `excl` (ownTableTask). */
  async ownTable(agg: string, l: number, r: number, excl: number, frac: number): Promise<Float32Array> {
    const file = join(CACHE, `${this.key}-${agg}-l${l}-r${r}-own${excl}${frac ? `q${frac}` : ''}.f32`);
    if (existsSync(file)) return f32(file);
    const meta = this.meta!;
    if (meta.grids || meta.pieces.length !== this.paths.length) throw new Error('own: one squashed piece per image');
    const z = await this.bank(await this.features(), agg, l, r);
    const P = meta.h * meta.w;
    const euclid = euclideanAgg(agg);
    const args = [z, meta.pieces.length, P, z.length / (meta.pieces.length * P), meta.w, excl, euclid, frac];
    const t = await computeWorker().call<Float32Array>(import.meta.url, 'ownTableTask', args);
    save(file, t);
    return t;
  }
  /** The unit features Z [M, P, C] of (agg, stage l, r) that a table scores. */
  private async bank(f: Extracted, agg: string, l: number, r: number): Promise<Float32Array> {
    if (f.native) return nativeFeatures(f.native, l, r, this.meta!, agg);
    const st = f.stages[l]!;
    const target = this.target(f.stages);
    const normed = layerNormImages(st);
    if (agg === 'box') return aggregateStage(st, normed, r, target);
    // rel:E = musc's --norm-exponent E (lnamd.ts); raw:E without the image's RMS
    if (agg.startsWith('rel:')) return aggregateStage(st, normed, r, { ...target, normExponent: Number(agg.slice(4)) });
    if (agg.startsWith('raw:'))
      return rawNorms(aggregateStage(st, normed, r, { ...target, skipL2: true }), target.channels, Number(agg.slice(4)));
    if (agg === 'ctr') return centred(aggregateStage(st, normed, r, target), target.channels);
    if (agg.startsWith('pca:'))
      // musc's projection with its kernel's product (run here on the main thread)
      return projectBank(
        aggregateStage(st, normed, r, target),
        target.channels,
        Number(agg.slice(4)),
        (await kernelFor('cpu', 'fast')).matMul,
      );
    if (agg.startsWith('relpca:') || agg.startsWith('relpcu:')) {
      const [, E, K] = agg.split(':').map(Number);
      const energyRows = aggregateStage(st, normed, r, { ...target, normExponent: E! });
      const basisRows = agg.startsWith('relpcu:') ? aggregateStage(st, normed, r, target) : energyRows;
      const mm = (await kernelFor('cpu', 'fast')).matMul;
      const basis = await projectionBasis(basisRows, target.channels, K!, mm);
      return withEnergy(await projectUnit(energyRows, target.channels, basis, mm), energyRows, target.channels);
    }
    if (agg.startsWith('pcr:')) {
      const mm = (await kernelFor('cpu', 'fast')).matMul;
      return residualBank(aggregateStage(st, normed, r, target), target.channels, Number(agg.slice(4)), mm);
    }
    if (agg.startsWith('wht:')) {
      const [, K, A] = agg.split(':').map(Number);
      return whitenedBank(aggregateStage(st, normed, r, target), target.channels, K!, A!, (await kernelFor('cpu', 'fast')).matMul);
    }
    if (agg.startsWith('joint')) return jointBank(aggregateStage(st, normed, r, target), f.stages[1]!, Number(agg.slice(5)), target);
    return aggregateExperimental(agg, st, normed, r, target);
  }
  /** LNAMD's target: the first stage's grid, or the row's `grid` (features at S px scored on a G x G grid) */
  private target(stages: StageFeatures[]): AggregateOptions {
    const t = lnamdTarget(stages, this.row.channels);
    return this.row.grid ? { ...t, gridH: this.row.grid, gridW: this.row.grid } : t;
  }
  tokens(): ImageTokens {
    if (this.parent) return this.parent.tokens();
    const data = f32(join(CACHE, `${this.key}-tokens.f32`));
    return { n: this.meta!.pieces.length, d: this.meta!.d, data };
  }
  /** Unit r = 3 box features of stage 0 [M, P, C] (RsCon tokens). */
  async stage0r3(): Promise<Float32Array> {
    const f = await this.features();
    const st = f.stages[0]!;
    return aggregateStage(st, layerNormImages(st), 3, this.target(f.stages));
  }
}

/** raw:E: each LNAMD patch row [C] divided by its norm to the power E (1: unit rows; 0: PatchCore's raw features). */
function rawNorms(z: Float32Array, c: number, E: number): Float32Array {
  for (let t = 0; t < z.length / c; t++) {
    let ss = 0;
    for (let k = 0; k < c; k++) ss += z[t * c + k]! * z[t * c + k]!;
    const inv = ss > 0 ? ss ** (-E / 2) : 0;
    for (let k = 0; k < c; k++) z[t * c + k]! *= inv;
  }
  return z;
}

/** Aggregations whose r = 1 table is not the plain box table (centred; pca:K = musc's `--project K`, src/core/project.ts). */
function ownAtR1(agg: string): boolean {
  return agg === 'ctr' || /^(raw|rel):/.test(agg) || projectedChannels(agg) !== undefined;
}

/** K of the projected aggregations (pca:K, pcr:K, wht:K:A, relpca:E:K): the channels of their tables; undefined for the others. */
function projectedChannels(agg: string): number | undefined {
  if (/^relpc[au]:/.test(agg)) return Number(agg.split(':')[2]);
  return /^(pca|pcr|wht):/.test(agg) ? Number(agg.split(':')[1]) : undefined;
}

/** Whether a row's tables are Euclidean (rows not unit: raw:E, rel:E with E != 1, relpca:E:K). */
function euclideanAgg(agg: string): boolean {
  if (/^relpc[au]:/.test(agg)) return Number(agg.split(':')[1]) !== 1;
  return /^(raw|rel):/.test(agg) && Number(agg.slice(4)) !== 1;
}

/**
 * relpca:E:K, relpcu:E:K: the projected unit directions y [rows, K] scaled by the patch energy of rel:E, the
 * norm of each row of `energy` [rows, C] ((|z| / rho)^(1 - E)): the projection keeps the direction, not the energy.
 */
function withEnergy(y: Float32Array, energy: Float32Array, C: number): Float32Array {
  const rows = energy.length / C,
    K = y.length / rows;
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let c = 0; c < C; c++) ss += energy[i * C + c]! ** 2;
    const g = Math.sqrt(ss);
    for (let k = 0; k < K; k++) y[i * K + k]! *= g;
  }
  return y;
}

/** pcr:K: unit z [rows, C] -> [rows, K]: its coordinates on K - 1 of musc's directions, then the norm of the rest. */
async function residualBank(z: Float32Array, C: number, K: number, mm: MatMul): Promise<Float32Array> {
  const basis = await projectionBasis(z, C, K - 1, mm);
  const rows = z.length / C,
    k = K - 1;
  const p = await projectCoordinates(z, C, basis, mm); // [rows, K - 1]
  const out = new Float32Array(rows * K);
  for (let i = 0; i < rows; i++) {
    let ss = 0;
    for (let j = 0; j < k; j++) {
      const v = p[i * k + j]!;
      out[i * K + j] = v;
      ss += v * v;
    }
    out[i * K + k] = Math.sqrt(Math.max(0, 1 - ss));
  }
  return out;
}

/**
 * wht:K:A: unit z [rows, C] on musc's K projection directions, direction k >= 1 scaled by
 * (var_k / var_1)^(-A/2) (var_k: the variance of z . b_k over the rows), then unit again.
 */
async function whitenedBank(z: Float32Array, C: number, K: number, A: number, mm: MatMul): Promise<Float32Array> {
  const basis = await projectionBasis(z, C, K, mm);
  const rows = z.length / C;
  const p = await projectCoordinates(z, C, basis, mm); // [rows, K]
  const sum = new Float64Array(K),
    sq = new Float64Array(K);
  for (let i = 0; i < rows; i++)
    for (let k = 0; k < K; k++) {
      const v = p[i * K + k]!;
      sum[k]! += v;
      sq[k]! += v * v;
    }
  const variance = Array.from(sq, (s2, k) => s2 / rows - (sum[k]! / rows) ** 2);
  for (let k = 1; k < K; k++) {
    const w = (Math.max(variance[k]!, 1e-12) / variance[1]!) ** (-A / 2);
    for (let c = 0; c < C; c++) basis[k * C + c]! *= w;
  }
  return projectUnit(z, C, basis, mm);
}

/** joint: unit [M, P, 2C] = (layer2's unit patch feature, layer3's at r = b on the same grid) / sqrt 2. */
function jointBank(z0: Float32Array, st1: StageFeatures<Float32Array>, b: number, target: AggregateOptions): Float32Array {
  const z1 = aggregateStage(st1, layerNormImages(st1), b, target);
  const C = target.channels,
    rows = z0.length / C;
  const out = new Float32Array(rows * 2 * C);
  for (let k = 0; k < rows; k++)
    for (let c = 0; c < C; c++) {
      out[k * 2 * C + c] = z0[k * C + c]! * Math.SQRT1_2;
      out[k * 2 * C + C + c] = z1[k * C + c]! * Math.SQRT1_2;
    }
  return out;
}

/** A table [rows, Mt] (Mt = (1 + K) M: each image then its mirrors) -> [rows, M], the minimum over each image's copies. */
function minOverMirrors(full: Float32Array, rows: number, M: number, Mt: number): Float32Array {
  const out = new Float32Array(rows * M).fill(Infinity);
  for (let q = 0; q < rows; q++)
    for (let b = 0; b < Mt; b++) {
      const v = full[q * Mt + b]!;
      if (v < out[q * M + (b % M)]!) out[q * M + (b % M)] = v;
    }
  return out;
}

/** MSM patch scores [M, P] from a table: interval [0, q) over the other images (a tiled image's nearest = over its tiles). */
function reduceRow(table: Float32Array, pieces: Piece[], nImages: number, P: number, qa: number, q: number): Float64Array {
  const M = pieces.length;
  if (M === nImages) return reduceTable(table, M, P, [zeroShotVariant(M, [qa, q])])[0]!;
  if (qa > 0) throw new Error('an interval start needs one piece per image (not with tiles)');
  const out = new Float64Array(M * P);
  const best = new Float32Array(nImages);
  const others = new Float32Array(nImages - 1); // nearest distance to every other image, sorted
  const k = Math.max(1, Math.floor((nImages - 1) * q));
  for (let i = 0; i < M; i++) {
    const own = pieces[i]!.item;
    for (let p = 0; p < P; p++) {
      best.fill(Infinity);
      const row = (i * P + p) * M;
      for (let j = 0; j < M; j++) {
        const it = pieces[j]!.item;
        if (it !== own && table[row + j]! < best[it]!) best[it] = table[row + j]!;
      }
      let c = 0;
      for (let it = 0; it < nImages; it++) if (it !== own) others[c++] = best[it]!;
      others.sort();
      let s = 0;
      for (let t = 0; t < k; t++) s += others[t]!;
      out[i * P + p] = s / k;
    }
  }
  return out;
}

/**
 * The repeated-anomaly filter of a row (src/core/repeats.ts): burnout links from the stage-0 r = 3
 * table, each image's filtered pool. `info` counts the excluded pairs by kind (labels used only here,
 * to see what the label-free filter did): same defect type, good with good, other.
 */
async function repeatFilter(fc: FeatureConfig, row: Row, items: DatasetItem[], M: number, P: number) {
  if (M !== items.length) throw new Error('the repeated-anomaly filter needs one piece per image (not with tiles)');
  const bounds = burnoutBounds(M - 1, [row.qa, row.q]);
  if (bounds === null) throw new Error('too few images for the burnout test');
  const links = new Float64Array(M * M);
  const grids = fc.meta!.grids;
  const src = row.replink === 'plain' ? await fc.linkSource().plain() : fc.linkSource();
  if (row.replink && row.replink !== 'plain') throw new Error(`bad replink ${row.replink}`);
  for (const l of row.repl) {
    const table = await src.table(ownAtR1(row.agg) ? row.agg : 'box', l, linkR(row));
    if (!grids) addBurnoutLinks(table, 0, M, P, bounds[1], row.rep, links);
    else
      grids.forEach(([h, w], i) => addBurnoutLinks(table.subarray(i * P * M, (i * P + h * w) * M), i, M, h * w, bounds[1], row.rep, links));
  }
  // native: link shares of the mean grid
  const Pshare = grids ? Math.round(grids.reduce((a, [h, w]) => a + h * w, 0) / M) : P;
  let pools = filteredPools(links, M, Pshare, { fpr: row.rep, minShare: row.repw, maxShare: row.repmax });
  if (row.rephop === 2) pools = twoHopPools(pools, M);
  if (row.reprand) pools = randomPools(pools, M, row.reprand);
  const info = { images: 0, excluded: 0, same_type: 0, good_good: 0, other: 0 };
  pools.forEach((pool, a) => {
    const kept = new Set(pool);
    if (pool.length < M - 1) info.images++;
    for (let b = 0; b < M; b++) {
      if (b === a || kept.has(b)) continue;
      const [x, y] = [items[a]!, items[b]!];
      info.excluded++;
      if (x.label === 0 && y.label === 0) info.good_good++;
      else if (x.label === 1 && x.defect === y.defect) info.same_type++;
      else info.other++;
    }
  });
  return { variant: filteredVariant(pools, bounds), pools, info };
}

/** A seeded permutation of xs (xorshift32, Fisher-Yates). */
function shuffled<T>(xs: T[], seed: number): T[] {
  let x = seed >>> 0 || 1;
  const out = xs.slice();
  for (let k = out.length - 1; k > 0; k--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = Math.floor(((x >>> 0) / 4294967296) * (k + 1));
    [out[k], out[j]] = [out[j]!, out[k]!];
  }
  return out;
}

/** reprand: each image leaves out as many images as the filter left out, chosen at random (seed s): the pool size's share of the filter's gain. */
function randomPools(pools: number[][], M: number, seed: number): number[][] {
  let x = seed >>> 0 || 1;
  const rand = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
  return pools.map((pool, a) => {
    const others = Array.from({ length: M }, (_, b) => b).filter((b) => b !== a);
    for (let k = others.length - 1; k > 0; k--) {
      const j = Math.floor(rand() * (k + 1));
      [others[k], others[j]] = [others[j]!, others[k]!];
    }
    return others.slice(0, pool.length).sort((u, v) => u - v);
  });
}

/** The r of a row's link tables: its repr, else the engine's choice from its r list. */
function linkR(row: Row): number {
  return row.repr || row.rList[linkRIndex(row.rList)]!;
}

/** Pools with two hops: a leaves out what it left out and what those left out (not itself), at most half of the others. */
function twoHopPools(pools: number[][], M: number): number[][] {
  const out = pools.map((pool, a) => {
    const kept = new Set(pool);
    return Array.from({ length: M }, (_, b) => b).filter((b) => b !== a && !kept.has(b));
  });
  return out.map((direct, a) => {
    const gone = new Set(direct);
    for (const b of direct) for (const c of out[b]!) if (c !== a && gone.size < Math.floor((M - 1) / 2)) gone.add(c);
    return Array.from({ length: M }, (_, b) => b).filter((b) => b !== a && !gone.has(b));
  });
}

/** A table's scores' offset and scale for row.sn (0: none; 1: / median; 2: (s - median) / MAD). */
function tableScale(s: Float64Array, sn: number): [number, number] {
  if (!sn) return [0, 1];
  const sorted = s.slice().sort();
  const med = sorted[sorted.length >> 1]!;
  if (sn === 1) return [0, med];
  const dev = Float64Array.from(s, (v) => Math.abs(v - med)).sort();
  return [med, dev[dev.length >> 1]!];
}

/** MSM scores [M, P] already reduced in this process, by (feature config, table, q): rows sharing tables read and sort them once. */
const reduced = new Map<string, Float64Array>();

/** Piece maps [M, S, S] -> image maps [N, S, S] in squashed-image coordinates (letterbox: content box; tiles: side by side). */
function toImageMaps(maps: Float32Array, pieces: Piece[], nImages: number, S: number): Float32Array {
  const SS = S * S;
  if (pieces.length === nImages && pieces.every((p) => p.box.w === S && p.box.h === S)) return maps;
  const out = new Float32Array(nImages * SS);
  const lerp = (v: number, len: number) => Math.min(len - 1, Math.max(0, ((v + 0.5) * len) / S - 0.5));
  pieces.forEach((pc, m) => {
    const b = pc.box;
    const a0 = Math.round((S * pc.k) / pc.K),
      a1 = Math.round((S * (pc.k + 1)) / pc.K);
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const along = pc.axis === 'x' ? x : y;
        if (along < a0 || along >= a1) continue;
        // position in the piece's own S x S map: tile stretch, then content box
        let px = x,
          py = y;
        if (pc.K > 1) {
          const s = ((along - a0 + 0.5) * S) / (a1 - a0) - 0.5;
          if (pc.axis === 'x') px = s;
          else py = s;
        }
        const sx = b.x + lerp(px, b.w),
          sy = b.y + lerp(py, b.h);
        const x0 = Math.floor(sx),
          y0 = Math.floor(sy),
          x1 = Math.min(S - 1, x0 + 1),
          y1 = Math.min(S - 1, y0 + 1),
          fx = sx - x0,
          fy = sy - y0;
        const at = (yy: number, xx: number) => maps[m * SS + yy * S + xx]!;
        out[pc.item * SS + y * S + x] =
          (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
      }
    }
  });
  return out;
}

/** Image tokens of the RsCon row: each image's highest-scoring patch's unit r = 3 stage-0 feature. */
function topPatchTokens(z: Float32Array, patch: Float64Array, n: number, P: number): ImageTokens {
  const c = z.length / (n * P);
  const data = new Float32Array(n * c);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let p = 1; p < P; p++) if (patch[i * P + p]! > patch[i * P + best]!) best = p;
    data.set(z.subarray((i * P + best) * c, (i * P + best + 1) * c), i * c);
  }
  return { n, d: c, data };
}

/** Image AUROC of each defect type against the good images (MUSC_LEVERS_BY_TYPE=1). */
function imageAurocByType(items: DatasetItem[], scores: Float64Array): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of new Set(items.filter((it) => it.label === 1).map((it) => it.defect))) {
    const keep = items.flatMap((it, i) => (it.label === 0 || it.defect === t ? [i] : []));
    const m = computeMetrics({
      imageScores: Float64Array.from(keep, (i) => scores[i]!),
      imageLabels: Uint8Array.from(keep, (i) => items[i]!.label!),
    });
    out[t] = +((m.image_auroc ?? NaN) * 100).toFixed(1);
  }
  return out;
}

/**
 * Per defect type (MUSC_LEVERS_BY_TYPE=1): pixel AUROC / PRO over its images and the good ones, and
 * the whole category's pixel AUROC and PRO if that type's defect pixels alone were scored perfectly
 * (above every other pixel), its share of the category's defect pixels, and the category's pixel
 * AUROC and PRO if every other type were perfect (this one as it is): how much of the category's
 * pixel metrics the type holds, and what they can reach while it stays.
 * [pixel AUROC, PRO, pixel AUROC if perfect, PRO if perfect, share, pixel AUROC if the others perfect, PRO if the others perfect].
 */
function pixelByType(items: DatasetItem[], maps: Float32Array, masks: Uint8Array, S: number): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  const SS = S * S;
  const labels = Uint8Array.from(items, (it) => it.label ?? 0);
  let top = -Infinity,
    allPx = 0;
  for (const v of maps) top = Math.max(top, v);
  for (const v of masks) if (v) allPx++;
  // the category's pixel metrics with the defect pixels of the types `perfect` says scored above every other pixel
  const withPerfect = (perfect: (type: string | undefined) => boolean) => {
    const oracle = maps.slice();
    items.forEach((it, i) => {
      if (it.label !== 1 || !perfect(it.defect)) return;
      for (let k = i * SS; k < (i + 1) * SS; k++) if (masks[k]) oracle[k] = top + 1;
    });
    return computeMetrics({ imageScores: new Float64Array(items.length), imageLabels: labels, maps: oracle, masks, height: S, width: S });
  };
  for (const t of new Set(items.filter((it) => it.label === 1).map((it) => it.defect))) {
    let typePx = 0;
    items.forEach((it, i) => {
      if (it.defect === t) for (let k = i * SS; k < (i + 1) * SS; k++) typePx += masks[k] ? 1 : 0;
    });
    const ifPerfect = withPerfect((d) => d === t);
    const othersPerfect = withPerfect((d) => d !== t);
    const keep = items.flatMap((it, i) => (it.label === 0 || it.defect === t ? [i] : []));
    const sub = new Float32Array(keep.length * SS),
      subMasks = new Uint8Array(keep.length * SS);
    keep.forEach((i, k) => {
      sub.set(maps.subarray(i * SS, (i + 1) * SS), k * SS);
      subMasks.set(masks.subarray(i * SS, (i + 1) * SS), k * SS);
    });
    const m = computeMetrics({
      imageScores: new Float64Array(keep.length),
      imageLabels: Uint8Array.from(keep, (i) => items[i]!.label!),
      maps: sub,
      masks: subMasks,
      height: S,
      width: S,
    });
    const pct = (v: number | null | undefined) => +((v ?? NaN) * 100).toFixed(1);
    out[t] = [
      pct(m.pixel_auroc),
      pct(m.pixel_pro),
      pct(ifPerfect.pixel_auroc),
      pct(ifPerfect.pixel_pro),
      pct(typePx / allPx),
      pct(othersPerfect.pixel_auroc),
      pct(othersPerfect.pixel_pro),
    ];
  }
  return out;
}

/**
 * Per defect type: of each defect patch (any mask pixel in its cell), the share of its 3 nearest
 * images in the stage-0 r = 3 table with the same defect type, and that share by chance.
 */
async function sameTypeShare(fc: FeatureConfig, items: DatasetItem[], masks: Uint8Array, S: number, P: number, W: number) {
  const M = items.length;
  const table = await fc.table('box', 0, 3);
  const cell = S / W;
  const out: Record<string, { nearest3: number; chance: number }> = {};
  for (const t of new Set(items.filter((it) => it.label === 1).map((it) => it.defect))) {
    let hits = 0,
      patches = 0;
    items.forEach((it, i) => {
      if (it.defect !== t) return;
      for (let p = 0; p < P; p++) {
        const [y0, x0] = [Math.floor(p / W) * cell, (p % W) * cell];
        let defect = false;
        for (let y = y0; y < y0 + cell && !defect; y++)
          for (let x = x0; x < x0 + cell && !defect; x++) defect = masks[(i * S + y) * S + x]! > 0;
        if (!defect) continue;
        const o = (i * P + p) * M;
        const near = items
          .map((_, j) => j)
          .filter((j) => j !== i)
          .sort((a, b) => table[o + a]! - table[o + b]!)
          .slice(0, 3);
        hits += near.filter((j) => items[j]!.defect === t).length / 3;
        patches++;
      }
    });
    const same = items.filter((it) => it.defect === t).length - 1;
    out[t] = { nearest3: +(hits / Math.max(1, patches)).toFixed(3), chance: +(same / (M - 1)).toFixed(3) };
  }
  return out;
}

/** A row's MSM patch scores [M, P] from the tables of its feature config (and the filter's, with rep). */
async function rowPatchScores(fc: FeatureConfig, row: Row, items: DatasetItem[], meta: Meta) {
  const n = items.length,
    M = meta.pieces.length,
    P = meta.h * meta.w;
  const passes = rowPasses(row);
  const patch = new Float64Array(M * P);
  const filter = row.rep > 0 ? await repeatFilter(fc, row, items, M, P) : null;
  const filtered = filter ? new Float64Array(M * P) : null;
  const geo = row.geo > 0 ? await geometryPools(items, row.geo) : null;
  if (geo && M !== n) throw new Error('geo: one piece per image');
  const plainVariant = geo ? poolVariant(geo, row) : null;
  const filterVariant = geo && filter ? poolVariant(intersectPools(filter.pools, geo), row) : filter?.variant;
  let score_s = 0;
  const pairTable = row.pair > 0 ? new Float64Array(M * P * M) : null;
  if (row.rc !== 'mean' && row.rc !== 'max') throw new Error(`bad rc ${row.rc}`);
  for (const stage of passes) {
    const most =
      row.rc === 'max' ? { patch: new Float64Array(M * P).fill(-Infinity), filtered: new Float64Array(M * P).fill(-Infinity) } : null;
    for (const { l, r, w: wgt, j } of stage) {
      // r = 1 is the same under every neighbourhood aggregation; joint: layer3 at r = j concatenated
      const agg = j ? `joint${j}` : r === 1 && !ownAtR1(row.agg) ? 'box' : row.agg;
      const key = `${fc.key}-${agg}-l${l}-r${r}-q${row.qa}:${row.q}${row.geo ? `-geo${row.geo}` : ''}${row.psk ? `-psk${row.psk}` : ''}${row.lof && (!row.lofl || row.lofl.includes(l)) ? `-lof${row.lof}c${row.lofc}${row.lofg >= 0 ? `g${row.lofg}` : ''}${row.lofimg ? 'img' : ''}` : ''}${row.pnorm ? `-pnorm${row.pnorm}` : ''}`;
      // the filtered reduction depends on the links: their r too (a row's smallest r when repr is 0)
      const fkey = `${key}-rep${row.rep}:${row.repw}:${row.repmax}:${row.repl.join('.')}:${row.rephop}:${linkR(row)}:${row.replink}:${row.reprand}`;
      if (!reduced.has(key) || (filter && !reduced.has(fkey))) {
        const dens = row.lof && (!row.lofl || row.lofl.includes(l));
        const raw = dens ? await fc.lofTable(agg, l, r, row, n) : await fc.table(agg, l, r);
        const table = row.pnorm ? pairNormalised(raw, M, P, row.pnorm) : raw;
        if (dens && row.lofimg && (row.pnorm || row.psk || plainVariant || !filterVariant))
          throw new Error('lofimg: with the filter, alone');
        const mapTable = dens && row.lofimg ? await fc.table(agg, l, r) : table;
        if (!reduced.has(key))
          reduced.set(
            key,
            row.psk
              ? patchSkipReduce(table, M, P, row, n)
              : plainVariant
                ? reduceTable(table, M, P, [plainVariant])[0]!
                : reduceRow(mapTable, meta.pieces, n, P, row.qa, row.q),
          );
        if (filterVariant) reduced.set(fkey, reduceTable(table, M, P, [filterVariant])[0]!);
      }
      score_s += fc.meta!.score_s[`${agg}-l${l}-r${r}`] ?? NaN;
      if (pairTable) {
        const table = await fc.table(agg, l, r);
        for (let k = 0; k < pairTable.length; k++) pairTable[k]! += wgt * table[k]!;
      }
      let s = reduced.get(key)!;
      if (row.own && r <= row.ownr) s = await withOwn(fc, row, s, agg, l, r);
      const [c0, c1] = tableScale(s, row.sn); // the unfiltered table's scale for both
      addScaled(most?.patch ?? patch, s, c0, c1, most ? 0 : wgt);
      if (filter) {
        const f = row.own && r <= row.ownr ? await withOwn(fc, row, reduced.get(fkey)!, agg, l, r) : reduced.get(fkey)!;
        addScaled(most?.filtered ?? filtered!, f, c0, c1, most ? 0 : wgt);
      }
    }
    if (most) {
      addScaled(patch, most.patch, 0, 1, 1 / passes.length);
      if (filtered) addScaled(filtered, most.filtered, 0, 1, 1 / passes.length);
    }
  }
  const pairImg = pairTable ? pairScores(pairTable, M, P, row, filter?.pools) : undefined;
  return { patch, filtered, repInfo: filter?.info as Record<string, number> | undefined, pools: filter?.pools, score_s, pairImg };
}

/** pnorm: table [M, P, M] with each (i, j) column divided by its median over i's P patches to the power e. */
function pairNormalised(table: Float32Array, M: number, P: number, e: number): Float32Array {
  const out = new Float32Array(table.length);
  const col = new Float32Array(P);
  for (let i = 0; i < M; i++)
    for (let j = 0; j < M; j++) {
      if (i === j) continue;
      for (let p = 0; p < P; p++) col[p] = table[(i * P + p) * M + j]!;
      col.sort();
      const med = Math.max(col[P >> 1]!, 1e-6) ** e;
      for (let p = 0; p < P; p++) out[(i * P + p) * M + j] = table[(i * P + p) * M + j]! / med;
    }
  return out;
}

/**
 * own: a pass's patch scores s [M, P] plus own x each patch's nearest distance to its own image
 * outside the LNAMD window's reach plus ownx patches of the stage (own = -1: that distance alone).
 */
async function withOwn(fc: FeatureConfig, row: Row, s: Float64Array, agg: string, l: number, r: number): Promise<Float64Array> {
  const step = 2 ** (row.stages[l]! - row.stages[0]!); // the stage's patch in target grid cells
  // ownq: the image's majority (most of it is far from the patch anyway), else beyond the window's reach
  const d = await fc.ownTable(agg, l, r, step * (row.ownq ? row.ownx : r - 1 + row.ownx), row.ownq);
  if (d.some((v) => !Number.isFinite(v))) throw new Error(`own: no patch of the image outside the neighbourhood at stage ${l}, r = ${r}`);
  return Float64Array.from(s, (v, k) => (row.own < 0 ? d[k]! : v + row.own * d[k]!));
}

/**
 * psk: patch scores [M, P] of a table [M, P, M] in which each patch skips its nearest images before
 * a burnout jump: the filter's test (repeats.ts: scaled log gaps of the K nearest distances, the
 * level from the image's median gap at the row's psk as fpr) run per patch, and the mean of ranks
 * [t, t + K) instead of [0, K) where the largest gap after rank t passes it.
 */
function patchSkipReduce(table: Float32Array, M: number, P: number, row: Row, n: number): Float64Array {
  if (M !== n || row.qa) throw new Error('psk: one piece per image, qa = 0');
  const K = intervalBounds(M - 1, [0, row.q])[1];
  if (K < 5) throw new Error('psk: too few images');
  const out = new Float64Array(M * P);
  const sorted = new Float64Array(P * (M - 1)); // [P, M - 1] one image's rows, ascending
  const gaps = new Float64Array(P * (K - 1));
  const jump = new Float64Array(P),
    at = new Int32Array(P);
  for (let i = 0; i < M; i++) {
    for (let p = 0; p < P; p++) {
      const d = sorted.subarray(p * (M - 1), (p + 1) * (M - 1));
      for (let j = 0, c = 0; j < M; j++) if (j !== i) d[c++] = table[(i * P + p) * M + j]!;
      d.sort();
      jump[p] = 0;
      at[p] = 0;
      for (let t = 1; t < K; t++) {
        const g = t * Math.log(Math.max(d[t]!, 1e-6) / Math.max(d[t - 1]!, 1e-6));
        gaps[p * (K - 1) + t - 1] = g;
        if (g > jump[p]!) [jump[p], at[p]] = [g, t];
      }
    }
    const level = (gaps.slice().sort()[gaps.length >> 1]! / Math.LN2) * Math.log((K - 1) / row.psk);
    for (let p = 0; p < P; p++) {
      const t0 = jump[p]! > level ? Math.min(at[p]!, M - 1 - K) : 0;
      let s = 0;
      for (let t = t0; t < t0 + K; t++) s += sorted[p * (M - 1) + t]!;
      out[i * P + p] = s / K;
    }
  }
  return out;
}

/** pair: image scores from image-pair distances D(i, j) (top fraction of i's patch distances to j), the interval mean over i's pool. */
function pairScores(table: Float64Array, M: number, P: number, row: Row, pools: number[][] | undefined): Float64Array {
  const top = Math.max(1, Math.round(row.pair * P));
  const col = new Float64Array(P);
  return Float64Array.from({ length: M }, (_, i) => {
    const pool = pools?.[i] ?? Array.from({ length: M }, (_, j) => j).filter((j) => j !== i);
    const D = pool.map((j) => {
      for (let p = 0; p < P; p++) col[p] = table[(i * P + p) * M + j]!;
      const sorted = col.slice().sort();
      let s = 0;
      for (let t = P - top; t < P; t++) s += sorted[t]!;
      return s / top;
    });
    D.sort((a, b) => a - b);
    const [lo, hi] = intervalBounds(D.length, [row.qa, row.q]);
    return D.slice(lo, hi).reduce((a, v) => a + v, 0) / (hi - lo);
  });
}

/**
 * A row's MSM passes grouped by kept stage: each (l, r) with its weight in the patch score's mean,
 * from musc's planPasses (src/core/plan.ts) over the kept stages' r lists (`rl` per stage, else
 * rList; md: one pass per stage, r = 0).
 */
function rowPasses(row: Row): { l: number; r: number; w: number; j?: number }[][] {
  if (row.joint) {
    const pairs = row.joint.split('.').map((x) => x.split(':').map(Number) as [number, number]);
    const joint = pairs.map(([r, j]) => ({ l: 0, r, w: 1 / pairs.length, j }));
    if (!row.jadd) return [joint];
    const own = rowPasses({ ...row, joint: '' });
    const G = own.length + 1;
    return [...own.map((ps) => ps.map((p) => ({ ...p, w: (p.w * own.length) / G }))), joint.map((p) => ({ ...p, w: p.w / G }))];
  }
  const layers = row.layers ?? row.stages.map((_, l) => l);
  const per = row.rl ? row.rl.split('_').map((x) => x.split('.').map(Number)) : null;
  const lists = layers.map((l) => {
    if (row.agg.startsWith('md')) return [0];
    if (!per) return row.rList;
    if (!per[l]?.length || per[l]!.some((r) => !(r >= 1 && r % 2 === 1))) throw new Error(`bad rl ${row.rl} for stage ${l}`);
    return per[l]!;
  });
  const rList = unionRList(lists);
  return stagePasses({ rList, stageRList: lists }, layers.length).map((ps) =>
    ps.map((p) => ({ l: layers[p.l]!, r: rList[p.ri]!, w: p.w })),
  );
}

/** out += w (s - c0) / c1, or out = max(out, (s - c0) / c1) with w = 0. */
function addScaled(out: Float64Array, s: Float64Array, c0: number, c1: number, w: number): void {
  for (let k = 0; k < s.length; k++) out[k] = w > 0 ? out[k]! + ((s[k]! - c0) / c1) * w : Math.max(out[k]!, (s[k]! - c0) / c1);
}

/** Original image sizes [w, h] by path (decoded once per process). */
const sizeOf = new Map<string, [number, number]>();

/** Fills sizeOf with the items' original [width, height] (decoded once per path). */
async function originalSizes(items: DatasetItem[]): Promise<void> {
  for (const it of items)
    if (!sizeOf.has(it.path)) {
      const im = await decodeRgb(it.path);
      sizeOf.set(it.path, [im.width, im.height]);
    }
}

/** Each image's pool: the fraction f of the others nearest in original size, ties at the cut kept. */
async function geometryPools(items: DatasetItem[], f: number): Promise<number[][]> {
  await originalSizes(items);
  const lw = items.map((it) => Math.log(sizeOf.get(it.path)![0])),
    lh = items.map((it) => Math.log(sizeOf.get(it.path)![1]));
  const N = items.length,
    keep = Math.ceil(f * (N - 1));
  return items.map((_, a) => {
    const d = (b: number) => Math.abs(lw[a]! - lw[b]!) + Math.abs(lh[a]! - lh[b]!);
    const others = items.map((_, b) => b).filter((b) => b !== a);
    const cut = others.map(d).sort((x, y) => x - y)[keep - 1]!;
    return others.filter((b) => d(b) <= cut);
  });
}

/** sized: s_i - b x (log area_i - median log area), b the median of the pairwise slopes (Theil-Sen) over pairs of different areas. */
async function sizeDetrended(img: Float64Array, items: DatasetItem[], goodOnly: boolean): Promise<Float64Array> {
  await originalSizes(items);
  const x = items.map((it) => Math.log(sizeOf.get(it.path)![0] * sizeOf.get(it.path)![1]));
  const use = items.map((it) => !goodOnly || !it.label);
  const slopes: number[] = [];
  for (let i = 0; i < x.length; i++)
    for (let j = i + 1; j < x.length; j++) if (use[i] && use[j] && x[i] !== x[j]) slopes.push((img[i]! - img[j]!) / (x[i]! - x[j]!));
  if (slopes.length === 0) return img;
  const b = slopes.sort((u, v) => u - v)[slopes.length >> 1]!;
  const mx = x.slice().sort((u, v) => u - v)[x.length >> 1]!;
  console.error(`sized: slope ${b.toPrecision(4)} per unit log area`);
  return img.map((v, i) => v - b * (x[i]! - mx));
}

/** sizep: robust z of the image scores + w x robust z of log original area. */
async function withSizePrior(img: Float64Array, items: DatasetItem[], w: number): Promise<Float64Array> {
  await originalSizes(items);
  const z = robustZ(img),
    za = robustZ(Float64Array.from(items, (it) => Math.log(sizeOf.get(it.path)![0] * sizeOf.get(it.path)![1])));
  return z.map((v, i) => v + w * za[i]!);
}

/** topa: each map's mean of its top fraction row.top x (median original area / its own)^row.topa, within [1 pixel, the map]. */
async function areaScaledTop(maps: Float32Array, items: DatasetItem[], row: Row): Promise<Float64Array> {
  if (!(row.top > 0)) throw new Error('topa needs top');
  await originalSizes(items);
  let area = items.map((it) => sizeOf.get(it.path)![0] * sizeOf.get(it.path)![1]);
  if (row.topas) area = shuffled(area, row.topas);
  const median = area.slice().sort((a, b) => a - b)[area.length >> 1]!;
  const per = maps.length / items.length;
  return Float64Array.from(items, (_, i) => {
    const f = Math.min(1, Math.max(1 / per, row.top * (median / area[i]!) ** row.topa));
    return imageScoreOf(maps.subarray(i * per, (i + 1) * per), { kind: 'top', fraction: f });
  });
}

/** peer: each image's peers, the fraction row.peer of the others nearest by tokens or by original size. */
async function peerPools(row: Row, items: DatasetItem[], fc: FeatureConfig): Promise<number[][]> {
  if (row.peerby === 'geo') return geometryPools(items, row.peer);
  if (row.peerby !== 'tok') throw new Error(`bad peerby ${row.peerby}`);
  const { n, d, data } = fc.tokens();
  const t = data as Float32Array;
  if (n !== items.length) throw new Error('peer: one piece per image');
  const keep = Math.max(1, Math.ceil(row.peer * (n - 1)));
  const norm = items.map((_, i) => Math.sqrt(t.subarray(i * d, (i + 1) * d).reduce((a, v) => a + v * v, 0)) || 1);
  return items.map((_, i) => {
    const dist = items.map((_, j) => {
      let dot = 0;
      for (let c = 0; c < d; c++) dot += t[i * d + c]! * t[j * d + c]!;
      return { j, v: j === i ? Infinity : -dot / (norm[i]! * norm[j]!) };
    });
    return dist
      .sort((a, b) => a.v - b.v)
      .slice(0, keep)
      .map((e) => e.j);
  });
}

/** s_i - w x the median of s over i's pool. */
function peerNormalised(s: Float64Array, pools: number[][], w: number): Float64Array {
  return s.map((v, i) => {
    const p = pools[i]!.map((j) => s[j]!).sort((a, b) => a - b);
    const med = p.length % 2 ? p[p.length >> 1]! : (p[p.length / 2 - 1]! + p[p.length / 2]!) / 2;
    return v - w * med;
  });
}

/** Pools a ∩ b per image, ascending. */
function intersectPools(a: number[][], b: number[][]): number[][] {
  return a.map((pool, i) => {
    const other = new Set(b[i]);
    return pool.filter((x) => other.has(x)).sort((x, y) => x - y);
  });
}

/** A variant over given pools, each reduced over the row's interval of the smallest pool. */
function poolVariant(pools: number[][], row: Row) {
  const smallest = Math.min(...pools.map((p) => p.length));
  return filteredVariant(pools, intervalBounds(smallest, [row.qa, row.q]));
}

/**
 * Patch scores [M, P] against pseudo-normal references: the fraction pn of the batch with the lowest
 * image scores `img` (each image less itself and the images in `leftOut`), averaged over the row's
 * tables, each reduced over the same count of nearest images (the interval of the smallest pool).
 */
async function pseudoNormalScores(fc: FeatureConfig, row: Row, meta: Meta, img: Float64Array, pools: number[][] | undefined) {
  const M = meta.pieces.length,
    P = meta.h * meta.w;
  if (meta.grids || M !== img.length) throw new Error('pn: one squashed piece per image');
  // the row's passes and weights (rowPasses); not the rc or sn of rowPatchScores
  if (row.rc !== 'mean' || row.sn) throw new Error('pn: rc=mean, no sn');
  const order = Array.from(img, (_, i) => i).sort((a, b) => img[a]! - img[b]!);
  const refs = new Set(order.slice(0, Math.max(2, Math.ceil(row.pn * M))));
  const poolOf = (a: number) => (pools ? pools[a]! : order).filter((b) => b !== a && refs.has(b)).sort((x, y) => x - y);
  const pnPools = Array.from({ length: M }, (_, a) => poolOf(a));
  const smallest = Math.min(...pnPools.map((p) => p.length));
  const variant = filteredVariant(pnPools, intervalBounds(smallest, [row.qa, row.q]));
  const out = new Float64Array(M * P);
  for (const { l, r, w } of rowPasses(row).flat()) {
    const s = reduceTable(await fc.table(r === 1 && !ownAtR1(row.agg) ? 'box' : row.agg, l, r), M, P, [variant])[0]!;
    for (let k = 0; k < s.length; k++) out[k] += s[k]! * w;
  }
  return { scores: out, refs: refs.size, smallest };
}

/** A row's image scores (pnmap 0, 1) and maps (pnmap 1, 2) from pseudo-normal references. */
async function pseudoNormalRow(
  fc: FeatureConfig,
  row: Row,
  meta: Meta,
  img: Float64Array,
  maps: Float32Array,
  pools: number[][] | undefined,
  fromRun: boolean,
) {
  if (fromRun || row.fuse.length || row.pos || row.bm || row.sigma) throw new Error('pn: not with maps from a run, fuse, pos, bm or sig');
  const pn = await pseudoNormalScores(fc, row, meta, img, pools);
  const pnMaps = patchMaps(pn.scores, meta, row.size);
  return {
    img: row.pnmap !== 2 ? imageScores(pnMaps, img.length, imageRule(row)) : img,
    maps: row.pnmap ? pnMaps : maps,
    info: { refs: pn.refs, smallest: pn.smallest },
  };
}

/** fuse: the row's maps at its own and at the `fuse` input sizes, averaged at S x S (and so the filtered scores' maps). */
async function fusedSizeMaps(
  cat: string,
  paths: string[],
  row: Row,
  items: DatasetItem[],
  meta: Meta,
  patch: Float64Array,
  filtered: Float64Array | null,
): Promise<{ maps: Float32Array; fusedFiltered: Float32Array | null; score_s: number }> {
  if (row.geometry !== 'squash') throw new Error('fuse: squashed inputs only');
  const n = items.length,
    S = row.size;
  const all = [patch],
    allF = [filtered];
  const grids: [number, number][] = [[meta.h, meta.w]];
  let score_s = 0;
  for (const F of row.fuse) {
    const r2 = { ...row, size: F, fuse: [] };
    const fc2 = new FeatureConfig(cat, paths, r2);
    const m2 = await fc2.ensureMeta();
    const s2 = await rowPatchScores(fc2, r2, items, m2);
    score_s += s2.score_s;
    all.push(s2.patch);
    allF.push(s2.filtered);
    grids.push([m2.h, m2.w]);
  }
  const fuseMaps = (ps: Float64Array[]) => {
    const up = ps.map((x, k) => upsampleAlignCorners(x, n, grids[k]![0], grids[k]![1], S, S));
    return up[0]!.map((_, k) => up.reduce((a, u) => a + u[k]!, 0) / up.length);
  };
  return { maps: fuseMaps(all), fusedFiltered: filtered ? fuseMaps(allF as Float64Array[]) : null, score_s };
}

/**
 * rm: the suspect patches [M, P] of a first pass `patch` [M, P]: the batch's top fraction F
 * ('top:F'), robust z-scores (median, 1.4826 MAD over all patches) above T ('z:T'), or the patches
 * holding a ground-truth defect pixel ('oracle', masks [n, S, S]); then dilated by rmd patches.
 */
function suspectPatches(row: Row, patch: Float64Array, meta: Meta, masks: Uint8Array, n: number): Uint8Array {
  const { h, w } = meta,
    S = row.size,
    P = h * w,
    M = patch.length / P;
  if (meta.grids || M !== n) throw new Error('rm: one squashed piece per image');
  const [kind, v] = row.rm.split(':') as [string, string];
  const mask = new Uint8Array(M * P);
  if (kind === 'oracle') {
    for (let i = 0; i < M; i++)
      for (let y = 0; y < S; y++)
        for (let x = 0; x < S; x++) if (masks[(i * S + y) * S + x]) mask[i * P + Math.floor((y * h) / S) * w + Math.floor((x * w) / S)] = 1;
  } else {
    const sorted = Float64Array.from(patch).sort();
    const med = sorted[sorted.length >> 1]!;
    const mad = 1.4826 * Float64Array.from(patch, (x) => Math.abs(x - med)).sort()[sorted.length >> 1]!;
    const cut = kind === 'top' ? sorted[Math.floor((1 - Number(v)) * sorted.length)]! : kind === 'z' ? med + Number(v) * mad : Number.NaN;
    if (Number.isNaN(cut)) throw new Error(`bad rm ${row.rm}`);
    for (let t = 0; t < patch.length; t++) mask[t] = patch[t]! >= cut ? 1 : 0;
  }
  return row.rmd ? dilatePatches(mask, M, h, w, row.rmd) : mask;
}

/** A patch mask [M, h, w] dilated by d patches (Chebyshev). */
function dilatePatches(mask: Uint8Array, M: number, h: number, w: number, d: number): Uint8Array {
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < M; i++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        if (!mask[(i * h + y) * w + x]) continue;
        for (let yy = Math.max(0, y - d); yy <= Math.min(h - 1, y + d); yy++)
          for (let xx = Math.max(0, x - d); xx <= Math.min(w - 1, x + d); xx++) out[(i * h + yy) * w + xx] = 1;
      }
  return out;
}

async function evaluateRow(name: string, cat: string, items: DatasetItem[], masks: Uint8Array) {
  const row = parseRow(name);
  const paths = items.map((it) => it.path);
  const n = items.length,
    S = row.size;
  const fc = new FeatureConfig(cat, paths, row);
  const meta = await fc.ensureMeta();
  const P = meta.h * meta.w,
    M = meta.pieces.length;
  let maps: Float32Array;
  let patch: Float64Array = new Float64Array(0);
  let filtered: Float64Array | null = null;
  let fusedFiltered: Float32Array | null = null;
  let repInfo: Record<string, number> | undefined;
  let pools: number[][] | undefined;
  let pairImg: Float64Array | undefined;
  let rmInfo: Record<string, number> | undefined;
  let score_s = 0;
  const fromRun = process.env.MUSC_LEVERS_MAPS;
  if (fromRun) {
    const r = await readMaps(fromRun);
    if (r.n !== n || r.size !== S || r.paths.some((p, i) => !paths[i]!.endsWith(p)))
      throw new Error(`${fromRun}: not the maps of ${cat} at ${S} px in dataset order`);
    maps = r.maps;
  } else {
    let sc = await rowPatchScores(fc, row, items, meta);
    if (row.rm) {
      const mask = suspectPatches(row, sc.patch, meta, masks, n);
      const fc2 = fc.withRefMask(mask);
      const first_s = sc.score_s;
      sc = await rowPatchScores(fc2, row, items, fc2.meta!);
      sc.score_s += first_s;
      rmInfo = { suspect: mask.reduce((a, v) => a + v, 0), share: +(mask.reduce((a, v) => a + v, 0) / mask.length).toFixed(4) };
    }
    ({ patch, filtered, repInfo, pools, score_s, pairImg } = sc);
    if (row.pos) {
      if (meta.grids || M !== n) throw new Error('pos: one squashed piece per image');
      const normal = positionNormalised(patch, M, P, row.pos);
      if (row.posmap) patch = normal;
      filtered = filtered ? positionNormalised(filtered, M, P, row.pos) : normal;
    }
    maps = toImageMaps(patchMaps(patch, meta, S), meta.pieces, n, S);
    if (row.fuse.length) {
      const f = await fusedSizeMaps(cat, paths, row, items, meta, patch, filtered);
      ({ maps, fusedFiltered } = f);
      score_s += f.score_s;
    }
  }
  // the repeated-anomaly filter's scores give the image scores (and the maps with repmap=1)
  let scoreMaps = fusedFiltered ?? (filtered ? patchMaps(filtered, meta, S) : maps);
  if (row.repmap) maps = scoreMaps;
  if (row.sigma > 0) maps = gaussianSmooth(maps, n, S, S, row.sigma);
  if (row.sigma > 0) scoreMaps = filtered ? gaussianSmooth(scoreMaps, n, S, S, row.sigma) : maps;
  if (row.bm > 0) scoreMaps = cropMaps(scoreMaps, n, S, row.bm);
  let img = row.topa ? await areaScaledTop(scoreMaps, items, row) : imageScores(scoreMaps, n, imageRule(row));
  let pnInfo: { refs: number; smallest: number } | undefined;
  if (row.pn > 0) ({ img, maps, info: pnInfo } = await pseudoNormalRow(fc, row, meta, img, maps, pools, !!fromRun));
  img = imageLevel(peakPost(img, scoreMaps, row), row, fc, pairImg);
  if (row.peer > 0) img = peerNormalised(img, await peerPools(row, items, fc), row.peerw);
  if (row.sizep) img = await withSizePrior(img, items, row.sizep);
  if (row.sized) img = await sizeDetrended(img, items, row.sized === 2);
  if (row.token !== 'l4' && row.token !== 'top') throw new Error(`bad token ${row.token}`);
  let rs = img;
  if (!row.kList.includes(0)) {
    if (M !== n) throw new Error('RsCIN tokens need one piece per image (not with tiles)');
    rs = rscin(img, row.token === 'top' ? topPatchTokens(await fc.stage0r3(), patch, n, P) : fc.tokens(), row.kList);
  }
  const labels = Uint8Array.from(items, (it) => it.label ?? 0);
  const m = computeMetrics({ imageScores: rs, imageLabels: labels, maps, masks, height: S, width: S });
  const pct = (v: number | null | undefined) => +((v ?? NaN) * 100).toFixed(2);
  const out = {
    cat,
    row: name,
    image_auroc: pct(m.image_auroc),
    pixel_auroc: pct(m.pixel_auroc),
    pro: pct(m.pixel_pro),
    image_auroc_raw: pct(computeMetrics({ imageScores: img, imageLabels: labels }).image_auroc),
    extract_s: +meta.extract_s.toFixed(1),
    score_s: +score_s.toFixed(1),
    pieces: M,
    ...(repInfo ? { repeat_filter: repInfo } : {}),
    ...(pnInfo ? { pseudo_normal: pnInfo } : {}),
    ...(rmInfo ? { ref_clean: rmInfo } : {}),
    ...(process.env.MUSC_LEVERS_BY_TYPE ? { by_type: imageAurocByType(items, rs), pixel_by_type: pixelByType(items, maps, masks, S) } : {}),
    ...(process.env.MUSC_LEVERS_REPEATS && M === n ? { same_type_nearest3: await sameTypeShare(fc, items, masks, S, P, meta.w) } : {}),
  };
  printRow(out, items, rs);
}

/** A row's line on stdout (and $MUSC_LEVERS_LOG); $MUSC_LEVERS_DUMP gets every image's score. */
function printRow(out: { cat: string; row: string }, items: DatasetItem[], scores: Float64Array): void {
  console.log(JSON.stringify(out));
  if (process.env.MUSC_LEVERS_DUMP) {
    const images = items.map((it, i) => ({ path: it.path, defect: it.defect, score: scores[i] }));
    appendFileSync(process.env.MUSC_LEVERS_DUMP, `${JSON.stringify({ cat: out.cat, row: out.row, images })}\n`);
  }
  if (process.env.MUSC_LEVERS_LOG) appendFileSync(process.env.MUSC_LEVERS_LOG, `${JSON.stringify(out)}\n`);
}

async function main(): Promise<void> {
  const [cat, rowArg] = process.argv.slice(2);
  if (!cat || !rowArg) throw new Error('usage: levers CATEGORY ROW[,ROW...]');
  const ds = await openDataset(DATA);
  const category = await ds.load(cat);
  const items = category.items;
  const masksBySize = new Map<number, Uint8Array>();
  for (const name of rowArg.split(',')) {
    const S = parseRow(name).size;
    if (!masksBySize.has(S)) {
      const m = new Uint8Array(items.length * S * S);
      for (let i = 0; i < items.length; i++) m.set(await loadMask(items[i]!.masks, S, 'nonzero', category.kind), i * S * S);
      masksBySize.set(S, m);
    }
    await evaluateRow(name, cat, items, masksBySize.get(S)!);
  }
  await shutdownCompute();
}

if (isMainThread)
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
