/**
 * Running ablation rows on features extracted once (see passes.ts for why one set of distance
 * tables serves every row): per row, compose the r subset, upsample to maps, image score = max,
 * RsCIN with the row's windows, metrics on the row's test images (src/metrics/evaluator.ts).
 *
 * Reference images for the shots study: the `external` images appended after the test items
 * (from --reference-dir), else the last max(shots) good test images in dataset order, held out
 * of the test set in every shots row (so 0- to 4-shot rows score the same images).
 */
import type { Device } from '../compute/session.js';
import type { ProgressListener } from '../compute/worker.js';
import type { MsmPrecision } from '../core/kernel.js';
import { composePasses } from '../core/score.js';
import { planPasses, type PoolVariant, type Reduction } from '../core/plan.js';
import { scorePlan } from '../scoring/musc.js';
import { upsampleAlignCorners, imageScores, parseImageScoreRule, type ImageScoreRule } from '../core/maps.js';
import { DEFAULT_IMAGE_SCORE } from '../core/defaults.js';
import { rscin } from '../core/rscin.js';
import { divideSubsets } from '../datasets/divide.js';
import type { StageFeatures, ImageTokens } from '../core/types.js';
import type { DatasetItem } from '../datasets/types.js';
import type { MetricsFn, MetricsValues } from '../metrics/index.js';
import { evaluate } from '../metrics/evaluator.js';
import { selectTokens } from '../rscin-plugin.js';
import type { RowConfig } from './studies.js';

export interface AblationInput {
  /** test items [N] (features rows 0..N-1) */
  items: DatasetItem[];
  /** per stage [N + E, h, w, C]: the test items, then E external reference images */
  stages: StageFeatures[];
  /** [N + E, D] */
  tokens: ImageTokens;
  external: number;
  /** [N, S, S] 0/1 masks, or null (no pixel metrics) */
  masks: Uint8Array | null;
  size: number;
  rows: RowConfig[];
  /** image score from the map (default DEFAULT_IMAGE_SCORE, as musc run) */
  imageScore?: ImageScoreRule;
  /** the metrics function (default computeMetrics, through the evaluator) */
  metrics?: MetricsFn;
  seed?: number;
  device?: Device;
  /** MSM precision (default DEFAULT_MSM_PRECISION, as musc run) */
  precision?: MsmPrecision;
  /** LNAMD's norm exponent of every row (core/lnamd.ts; default 1; the CLI passes musc run's, resolveNormExponent) */
  normExponent?: number;
  onProgress?: ProgressListener;
}

export interface AblationRow extends RowConfig {
  metrics: MetricsValues;
  /** test images scored */
  nTest: number;
  /** reference images used */
  nRef: number;
}

export interface AblationResult {
  rows: AblationRow[];
  /** reference images: indices into the features ( >= N for external ones) */
  references: number[];
  warnings: string[];
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** Reference candidates and the shots rows' test set. */
export function shotSplit(items: DatasetItem[], external: number, maxShots: number): { refs: number[]; test: number[] } {
  const n = items.length;
  if (external > 0) return { refs: range(n, n + external), test: range(0, n) };
  const good = items.map((it, i) => (it.label === 0 ? i : -1)).filter((i) => i >= 0);
  const refs = maxShots > 0 ? good.slice(-maxShots) : [];
  const held = new Set(refs);
  return { refs, test: range(0, n).filter((i) => !held.has(i)) };
}

export async function runAblation(inp: AblationInput): Promise<AblationResult> {
  const N = inp.items.length;
  const warnings: string[] = [];
  const maxShots = Math.max(0, ...inp.rows.map((r) => r.shots));
  const split = shotSplit(inp.items, inp.external, maxShots);
  let rows = inp.rows;
  if (split.refs.length < maxShots) {
    warnings.push(`only ${split.refs.length} reference images available: rows with more shots are left out`);
    rows = rows.filter((r) => r.shots <= split.refs.length);
  }
  if (rows.some((r) => r.shots > 0 || r.study === 'shots') && split.test.length < 2)
    throw new Error('shots study: fewer than 2 test images left');

  // variants, deduplicated by their definition
  const variants: PoolVariant[] = [];
  const variantKey = new Map<string, number>();
  const addVariant = (v: PoolVariant): number => {
    const k = JSON.stringify(v);
    let i = variantKey.get(k);
    if (i === undefined) {
      i = variants.length;
      variants.push(v);
      variantKey.set(k, i);
    }
    return i;
  };
  const all = range(0, N);
  const rowVariant = rows.map((row) => {
    const reduce: Reduction = row.mode === 'musc-plus' ? { kind: 'min' } : row.reduce;
    if (row.study === 'shots') {
      const refs = split.refs.slice(0, row.shots);
      const pool = row.mode === 'musc-plus' ? refs : [...split.test, ...refs];
      return addVariant({ scored: split.test, pools: [pool], poolOf: split.test.map(() => 0), reduce });
    }
    if (row.divide > 1) {
      const subsets = divideSubsets(
        inp.items.map((it) => it.path),
        row.divide,
        inp.seed,
      );
      const poolOf = new Array<number>(N).fill(0);
      subsets.forEach((s, si) => s.forEach((i) => (poolOf[i] = si)));
      return addVariant({ scored: all, pools: subsets, poolOf, reduce });
    }
    return addVariant({ scored: all, pools: [all], poolOf: all.map(() => 0), reduce });
  });
  const rUnion = [...new Set(rows.flatMap((r) => r.rList))].sort((a, b) => a - b);
  const plan = { n: inp.stages[0]!.n, rList: rUnion, variants };
  const settings = { keepPasses: true, device: inp.device, precision: inp.precision, normExponent: inp.normExponent };
  const res = await scorePlan(inp.stages, plan, settings, inp.onProgress);

  const S = inp.size;
  const out: AblationRow[] = [];
  for (const [ri, row] of rows.entries()) {
    const v = variants[rowVariant[ri]!]!;
    const n = v.scored.length;
    // the row's (stage, r) passes out of the union's, with its own weights (scorePlan's sum)
    const passes = planPasses({ rList: rUnion, stageRList: row.stageRList ?? inp.stages.map(() => row.rList) }, inp.stages.length);
    const patch = composePasses(res, rowVariant[ri]!, passes);
    const maps = upsampleAlignCorners(patch, n, res.h, res.w, S, S); // [n, S, S]
    const scores = imageScores(maps, n, inp.imageScore ?? parseImageScoreRule(DEFAULT_IMAGE_SCORE));
    const final = rscin(scores, selectTokens(inp.tokens, v.scored), row.kList);
    const labels = Uint8Array.from(v.scored, (i) => inp.items[i]!.label ?? 0);
    let masks: Uint8Array | null = null;
    if (inp.masks) {
      masks = new Uint8Array(n * S * S);
      v.scored.forEach((i, s) => masks!.set(inp.masks!.subarray(i * S * S, (i + 1) * S * S), s * S * S));
    }
    const ev = await evaluate({ imageScores: final, labels, maps, masks, size: S, ...(inp.metrics ? { metrics: inp.metrics } : {}) });
    const metrics = ev.metrics!; // labels given: always computed
    const nRef = row.study === 'shots' ? row.shots : 0;
    out.push({ ...row, metrics, nTest: n, nRef });
  }
  return { rows: out, references: split.refs, warnings };
}

const pct = (x: number | null): string => (x === null || !Number.isFinite(x) ? '-' : (100 * x).toFixed(1));

/** The rows as a markdown table like the paper's: AC (image) and AS (pixel) metrics in %. */
export function ablationMarkdown(title: string, rows: AblationRow[]): string {
  const head = '| study | setting | images | AUROC-cls | F1-max-cls | AP-cls | AUROC-segm | F1-max-segm | PRO-segm |';
  const lines = [`### ${title}`, '', head, '|---|---|---|---|---|---|---|---|---|'];
  for (const r of rows) {
    const m = r.metrics;
    lines.push(
      `| ${r.study} | ${r.setting} | ${r.nTest}${r.nRef ? ` + ${r.nRef} ref` : ''} | ` +
        `${pct(m.image_auroc)} | ${pct(m.image_f1max)} | ${pct(m.image_ap)} | ` +
        `${pct(m.pixel_auroc)} | ${pct(m.pixel_f1max)} | ${pct(m.pixel_pro)} |`,
    );
  }
  return lines.join('\n') + '\n';
}
