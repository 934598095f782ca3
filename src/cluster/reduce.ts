/**
 * The merge of a cluster run: block results -> patch scores, in row blocks.
 *
 * A (stage, r) table [M, P, N] is never built. Its rows reduce independently (core/score.ts
 * reduceRows), so it is cut into row blocks of one query block of images [a0, a1): a merge job
 * (worker) reads the parts of the block results that touch those rows (byte ranges), merges them
 * into [a1 - a0, P, N] (core/msm.ts mergeBlockRows), reduces them and writes the row block's
 * scores [k, P] float64 (k = the variants' scored images in [a0, a1)). The coordinator reads
 * those small results and sums them in scorePlan's order and weights (stage-major, then r:
 * patch += s w, core/plan.ts planPasses): the bits of a one-process run. `mergeScores` does the same in one process
 * (tests, bench).
 */
import { indexRows, mergeBlockRows, mergeIndexBlockRows, type TableBlock, tableBlocks, tableRows } from '../core/msm.js';
import { densityWeights, normaliseRows } from '../core/density.js';
import { neededPairs, type ScoringPlan, stagePasses } from '../core/plan.js';
import { reduceRows } from '../core/score.js';
import { addBurnoutLinks } from '../core/repeats.js';
import { passKeys, readPairIndices, readPairResult } from './block.js';
import type { BlockJobData, DensityRef, LinksJobData, ReduceJobData } from './jobs.js';
import { bytesKey, contentKey, type SharedStore } from './store.js';

/** What a row block's merge held and read (the memory bound, checked by the tests). */
export interface MergeStats {
  /** table rows (of N distances each) held at once: at most rowImages * P */
  peakTableRows: number;
  /** rows a whole table [M, P, N] would have held: M * P */
  fullTableRows: number;
  /** block-result bytes read from the store */
  bytesRead: number;
}

export const newStats = (fullTableRows: number): MergeStats => ({ peakTableRows: 0, fullTableRows, bytesRead: 0 });

/** Row blocks [a0, a1) of `rowImages` images over the table's rows [0, m). */
export function rowBlocks(m: number, rowImages: number): [number, number][] {
  if (!(Number.isInteger(rowImages) && rowImages >= 1)) throw new Error(`merge row block: expected a positive integer, got ${rowImages}`);
  const out: [number, number][] = [];
  for (let a0 = 0; a0 < m; a0 += rowImages) out.push([a0, Math.min(m, a0 + rowImages)]);
  return out;
}

/** Per variant, the positions (in its scored list) of its images in [a0, a1): the layout of a row block's scores. */
function positions(plan: ScoringPlan, a0: number, a1: number): number[][] {
  return plan.variants.map((v) => v.scored.flatMap((i, pos) => (i >= a0 && i < a1 ? [pos] : [])));
}

/**
 * One row block of one (stage, r): rows [a1 - a0, P, N] <- the block results (`keys[k]` of
 * `blocks[k]`) that touch them, reduceRows; returns the scores of its images, variant by
 * variant in scored order, [k, P] float64.
 */
export async function reduceRowBlock(
  store: SharedStore,
  plan: ScoringPlan,
  P: number,
  need: Uint8Array,
  blocks: TableBlock[],
  keys: string[],
  rb: [number, number],
  stats: MergeStats,
  density?: DensityRef,
): Promise<Float64Array> {
  const [a0, a1] = rb,
    n = plan.n;
  const { rows, index } = await mergeRowBlock(store, n, P, need, blocks, keys, rb, stats, !!density);
  const full = plan.variants.map((v) => new Float64Array(v.scored.length * P));
  const k = density?.rawVariants ?? 0; // --density-scope image: these variants on MSM's own rows
  if (k) reduceRows(rows, a0, n, P, plan.variants.slice(0, k), full.slice(0, k));
  if (density) normaliseRows(rows, index!, a0, n, P, densityWeights(await readRho(store, density.rho, n * P), density.exponent));
  reduceRows(rows, a0, n, P, plan.variants.slice(k), full.slice(k));
  const pos = positions(plan, a0, a1);
  const out = new Float64Array(pos.reduce((s, p) => s + p.length, 0) * P);
  let o = 0;
  pos.forEach((ps, vi) => {
    for (const q of ps) {
      out.set(full[vi]!.subarray(q * P, (q + 1) * P), o * P);
      o++;
    }
  });
  return out;
}

/**
 * Rows [a1 - a0, P, N] of a table from the block results (`keys[k]` of `blocks[k]`) that touch them;
 * `indexed`: their nearest indices [a1 - a0, P, N] too, from indexed block results (readPairIndices).
 */
async function mergeRowBlock(
  store: SharedStore,
  n: number,
  P: number,
  need: Uint8Array,
  blocks: TableBlock[],
  keys: string[],
  [a0, a1]: [number, number],
  stats: MergeStats,
  indexed = false,
): Promise<{ rows: Float32Array; index?: Uint16Array | Int32Array }> {
  const rows = new Float32Array((a1 - a0) * P * n);
  const index = indexed ? indexRows(a1 - a0, P, n) : undefined;
  stats.peakTableRows = Math.max(stats.peakTableRows, (a1 - a0) * P);
  for (const [k, b] of blocks.entries()) {
    const parts = { rows: b.i0 < a1 && b.i1 > a0, cols: b.j0 < a1 && b.j1 > a0 };
    if (!parts.rows && !parts.cols) continue;
    const res = await readPairResult(store, keys[k]!, b, P, parts);
    stats.bytesRead += res.rowd2.byteLength + res.cold2!.byteLength;
    mergeBlockRows(rows, a0, a1, n, P, need, b, res);
    if (index) mergeIndexBlockRows(index, a0, a1, n, P, need, b, await readPairIndices(store, keys[k]!, b, P, parts));
  }
  return index ? { rows, index } : { rows };
}

/** A table's densities rho [N, P] float64 from the store (density jobs, collectRho), checked for their size. */
async function readRho(store: SharedStore, key: string, len: number): Promise<Float64Array> {
  const b = await store.get(key);
  if (!b || b.byteLength !== len * 8) throw new Error(`densities ${key} are missing or damaged in the store ${store.location}`);
  return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Puts a row block's scores (reduceRowBlock's layout) into the (stage, r) scores s[v] [S_v, P]. */
function scatter(plan: ScoringPlan, rb: [number, number], P: number, scores: Float64Array, s: Float64Array[], what: string): void {
  const pos = positions(plan, rb[0], rb[1]);
  const k = pos.reduce((t, p) => t + p.length, 0);
  if (scores.length !== k * P) throw new Error(`${what}: ${scores.length} scores, expected ${k} x ${P}`);
  let o = 0;
  pos.forEach((ps, vi) => {
    for (const q of ps) {
      s[vi]!.set(scores.subarray(o * P, (o + 1) * P), q * P);
      o++;
    }
  });
}

/** patch[v] += s[v] * wgt, element by element (scorePlan's sum). */
function accumulate(patch: Float64Array[], s: Float64Array[], wgt: number): void {
  s.forEach((sv, vi) => {
    const v = patch[vi]!;
    for (let k = 0; k < sv.length; k++) v[k] += sv[k]! * wgt;
  });
}

/**
 * Each variant's patch scores [S_v, P] from row-block scores: `rowScores(l, k, rb)` gives those of
 * stage l's k-th pass (core/plan.ts stagePasses), row block rb. Summed in scorePlan's order with its
 * weights (planPasses: 1 / (L R), or 1 / (L |r_l|) with per-stage lists). Holds the scores of one
 * (stage, r) and the sum.
 */
export async function sumRowBlocks(
  plan: ScoringPlan,
  P: number,
  L: number,
  rbs: [number, number][],
  rowScores: (l: number, k: number, rb: number) => Promise<Float64Array>,
): Promise<Float64Array[]> {
  const patch = plan.variants.map((v) => new Float64Array(v.scored.length * P));
  for (const [l, passes] of stagePasses(plan, L).entries()) {
    for (const [k, { w }] of passes.entries()) {
      const s = plan.variants.map((v) => new Float64Array(v.scored.length * P));
      for (const [b, rb] of rbs.entries()) scatter(plan, rb, P, await rowScores(l, k, b), s, `row block [${rb}]`);
      accumulate(patch, s, w);
    }
  }
  return patch;
}

/** In one process (tests, bench): the merge of block results already in the store. */
export async function mergeScores(
  store: SharedStore,
  plan: ScoringPlan,
  P: number,
  need: Uint8Array,
  blocks: TableBlock[],
  jobs: BlockJobData[][][],
  rowImages: number,
): Promise<{ patch: Float64Array[]; stats: MergeStats }> {
  const stats = newStats(tableRows(plan.n, need) * P);
  const rbs = rowBlocks(tableRows(plan.n, need), rowImages);
  const patch = await sumRowBlocks(plan, P, jobs.length, rbs, (l, k, b) =>
    reduceRowBlock(
      store,
      plan,
      P,
      need,
      blocks,
      jobs[l]![k]!.map((j) => j.done),
      rbs[b]!,
      stats,
    ),
  );
  return { patch, stats };
}

/** The plan in the store (merge jobs read it; JSON, content-addressed). */
export async function putPlan(store: SharedStore, plan: ScoringPlan): Promise<string> {
  const bytes = new TextEncoder().encode(JSON.stringify(plan));
  const key = bytesKey('plan', bytes);
  if (!(await store.has(key))) await store.put(key, bytes);
  return key;
}

/**
 * The merge jobs [stage][k][row block] of a plan's block jobs [stage][k] (one per row block of each
 * (stage, r) pass); `density` [stage][k]: each table's densities (--density-exponent, densityOnWorkers).
 */
export function reduceJobs(
  planKey: string,
  tiling: { blockImages: number; colImages: number },
  jobs: BlockJobData[][][],
  rbs: [number, number][],
  density?: (DensityRef | undefined)[][],
): ReduceJobData[][][] {
  return jobs.map((stage, l) =>
    stage.map((pass, k) => {
      const { run, bank, target, r, precision, maxAbs, basis, indexed } = pass[0]!;
      const dens = density?.[l]?.[k];
      return rbs.map(([a0, a1]) => {
        const what = { v: 1, plan: planKey, bank: bank.key, target, r, precision, maxAbs, basis, tiling, a0, a1, indexed, density: dens };
        return {
          run,
          plan: planKey,
          bank,
          target,
          r,
          precision,
          maxAbs,
          ...(basis ? { basis } : {}),
          ...(indexed ? { indexed } : {}),
          ...(dens ? { density: dens } : {}),
          tiling,
          a0,
          a1,
          done: contentKey('reduce', what),
        };
      });
    }),
  );
}

/** A merge or links job's plan, blocks and their result keys (from the store and the job). */
async function jobTable(store: SharedStore, d: ReduceJobData) {
  const bytes = await store.get(d.plan);
  if (!bytes) throw new Error(`plan ${d.plan} is missing from the store ${store.location}`);
  const plan = JSON.parse(new TextDecoder().decode(bytes)) as ScoringPlan;
  const need = neededPairs(plan);
  const P = d.target.gridH * d.target.gridW;
  const blocks = tableBlocks(plan.n, P, need, d.tiling);
  const keys = passKeys(d.bank, d.target, d.r, blocks, d.precision, d.maxAbs, d.basis, d.indexed);
  const stats = newStats(tableRows(plan.n, need) * P);
  return { plan, need, P, blocks, keys, stats };
}

/** (worker) One merge job: its row block's scores, float64, to the store. */
export async function runReduceJob(store: SharedStore, d: ReduceJobData): Promise<{ peakTableRows: number; bytesRead: number }> {
  const { plan, need, P, blocks, keys, stats } = await jobTable(store, d);
  const out = await reduceRowBlock(store, plan, P, need, blocks, keys, [d.a0, d.a1], stats, d.density);
  await store.put(d.done, new Uint8Array(out.buffer));
  return { peakTableRows: stats.peakTableRows, bytesRead: stats.bytesRead };
}

/** The density jobs of one (stage, r) pass: its merge jobs (without densities), renamed. */
export function densityJobs(pass: ReduceJobData[]): ReduceJobData[] {
  return pass.map(({ density: _, ...d }) => ({ ...d, done: contentKey('density', { v: 1, of: d.done }) }));
}

/**
 * (worker) One density job: its row block's rows merged, and their zero-shot MSM scores (the plan's
 * variant 0, over the whole batch: core/density.ts rho) [a1 - a0, P] float64, to the store.
 */
export async function runDensityJob(store: SharedStore, d: ReduceJobData): Promise<{ peakTableRows: number; bytesRead: number }> {
  const { plan, need, P, blocks, keys, stats } = await jobTable(store, d);
  const v = plan.variants[0]!;
  if (v.scored.length !== plan.n || v.scored.some((i, k) => i !== k))
    throw new Error('density jobs need variant 0 zero-shot over the whole batch');
  const { rows } = await mergeRowBlock(store, plan.n, P, need, blocks, keys, [d.a0, d.a1], stats);
  const rho = [new Float64Array(plan.n * P)];
  reduceRows(rows, d.a0, plan.n, P, [v], rho);
  await store.put(d.done, new Uint8Array(rho[0]!.slice(d.a0 * P, d.a1 * P).buffer));
  return { peakTableRows: stats.peakTableRows, bytesRead: stats.bytesRead };
}

/** (coordinator) A table's densities rho [N, P] from its density jobs' results (row blocks in order), put in the store: its key. */
export async function collectRho(store: SharedStore, n: number, P: number, jobs: ReduceJobData[]): Promise<string> {
  const rho = new Float64Array(n * P);
  for (const j of jobs) {
    const b = await store.get(j.done);
    if (!b || b.byteLength !== (j.a1 - j.a0) * P * 8)
      throw new Error(`density result ${j.done} is missing or damaged in the store ${store.location}`);
    rho.set(new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), j.a0 * P);
  }
  const bytes = new Uint8Array(rho.buffer);
  const key = bytesKey('rho', bytes);
  if (!(await store.has(key))) await store.put(key, bytes);
  return key;
}

/** The links jobs of the repeated-anomaly filter: one per row block of the link table (merge jobs of that pass, renamed). */
export function linksJobs(pass: ReduceJobData[], K: number, fpr: number): LinksJobData[] {
  return pass.map((d) => ({ ...d, K, fpr, done: contentKey('links', { v: 1, of: d.done, K, fpr }) }));
}

/** (worker) One links job: the burnout links of its row block's images [a1 - a0, N], float64, to the store. */
export async function runLinksJob(store: SharedStore, d: LinksJobData): Promise<{ peakTableRows: number; bytesRead: number }> {
  const { plan, need, P, blocks, keys, stats } = await jobTable(store, d);
  const { rows } = await mergeRowBlock(store, plan.n, P, need, blocks, keys, [d.a0, d.a1], stats);
  const links = new Float64Array(plan.n * plan.n);
  addBurnoutLinks(rows, d.a0, plan.n, P, d.K, d.fpr, links);
  await store.put(d.done, new Uint8Array(links.slice(d.a0 * plan.n, d.a1 * plan.n).buffer));
  return { peakTableRows: stats.peakTableRows, bytesRead: stats.bytesRead };
}

/** (coordinator) The links [N, N] from the links jobs' results (row blocks in order). */
export async function collectLinks(store: SharedStore, n: number, jobs: LinksJobData[]): Promise<Float64Array> {
  const links = new Float64Array(n * n);
  for (const j of jobs) {
    const b = await store.get(j.done);
    if (!b || b.byteLength !== (j.a1 - j.a0) * n * 8)
      throw new Error(`links result ${j.done} is missing or damaged in the store ${store.location}`);
    links.set(new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), j.a0 * n);
  }
  return links;
}

/** (coordinator) The patch scores from the merge jobs' results. */
export function collectScores(store: SharedStore, plan: ScoringPlan, P: number, jobs: ReduceJobData[][][], rbs: [number, number][]) {
  return sumRowBlocks(plan, P, jobs.length, rbs, async (l, k, rb) => {
    const key = jobs[l]![k]![rb]!.done;
    const b = await store.get(key);
    if (!b) throw new Error(`merge result ${key} is missing from the store ${store.location}`);
    return new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
  });
}
