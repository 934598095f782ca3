/**
 * The ablation engine's MSM step (runs in the compute worker): one nearest-distance table per
 * (stage, r) over ALL images of the category, reduced into every variant the studies need.
 *
 * A variant scores a set of images, each against its own pool of other images (its subset, its
 * subset plus reference images, or the references alone), with one reduction of the pool's sorted
 * distances a(i, p, j), j in pool(i) \ {i}, M = |pool(i) \ {i}| values (eq. 5, 6):
 *   interval [lo, hi]   mean of ranks [k_lo, k_hi) (msm.ts intervalBounds: fractions of M, or counts)
 *   min / max / mean    rank 0 / rank M-1 / all ranks
 * MuSc+ is `min` over the pool of references. Since a(i, p, j) depends only on i, p, j, every
 * variant's scores equal those of a separate scoreStages run with that pool (same table values,
 * same ascending summation), but the products (the expensive part) are computed once.
 *
 * Per (stage l, r) the table row (i, p) over j is sorted once (keys = float32 bits * 2^b + j), and
 * each variant walks it, counting only pool members. Output per variant: [L, R, S_v, P] float64
 * MSM scores, so any r subset can be averaged later exactly as scoreStages does.
 */
import type { StageFeatures } from '../core/types.js';
import { layerNormImages, aggregateStage, lnamdTarget } from '../core/lnamd.js';
import { nearestDistanceTable, intervalBounds } from '../core/msm.js';
import { PairKernel, type MsmPrecision } from '../core/msm-kernel.js';
import type { WorkerContext } from '../compute/worker.js';
import type { Device } from '../compute/session.js';

export type Reduction = { kind: 'interval'; interval: [number, number] } | { kind: 'min' } | { kind: 'max' } | { kind: 'mean' };

/** One way of scoring: which images are scored, against which pools, with which reduction. */
export interface PoolVariant {
  /** [S] images scored (indices into the feature batch) */
  scored: number[];
  /** pools: lists of image indices */
  pools: number[][];
  /** [S] pool index of each scored image */
  poolOf: number[];
  reduce: Reduction;
}

export interface PassSettings {
  rList: number[];
  targetChannels?: number;
  device?: Device;
  precision?: MsmPrecision;
  maxRows?: number;
}

export interface PassResult {
  /** grid of the patch scores */
  h: number;
  w: number;
  L: number;
  R: number;
  /** per variant [L, R, S_v, P] */
  scores: Float64Array[];
}

/** The rank range [kLo, kHi) of a reduction over M values. */
export function reductionBounds(m: number, r: Reduction): [number, number] {
  if (m < 1) throw new Error('an image needs at least one other image in its pool');
  switch (r.kind) {
    case 'min':
      return [0, 1];
    case 'max':
      return [m - 1, m];
    case 'mean':
      return [0, m];
    case 'interval':
      return intervalBounds(m, r.interval);
  }
}

const kernels = new Map<string, PairKernel>();

/** (worker) Tables over all images, reduced per variant (see the module comment). */
export async function ablatePasses(stages: StageFeatures[], variants: PoolVariant[], settings: PassSettings, ctx?: WorkerContext): Promise<PassResult> {
  const n = stages[0]!.n;
  const target = lnamdTarget(stages, settings.targetChannels);
  const P = target.gridH * target.gridW, L = stages.length, R = settings.rList.length;
  const key = `${settings.device ?? 'cpu'}/${settings.precision ?? 'exact'}`;
  let kernel = kernels.get(key);
  if (!kernel) {
    kernel = await PairKernel.create(true, settings.device ?? 'cpu', undefined, settings.precision ?? 'exact');
    kernels.set(key, kernel);
  }
  // rows needed: every image some variant scores; table rows are images [0, scoredMax)
  const needed = new Uint8Array(n);
  for (const v of variants) {
    if (v.scored.length !== v.poolOf.length) throw new Error('variant: scored and poolOf differ in length');
    for (const i of v.scored) needed[i] = 1;
  }
  const scoredMax = needed.lastIndexOf(1) + 1;
  // pool membership masks [N] per variant pool
  const member = variants.map((v) => v.pools.map((pool) => {
    const m = new Uint8Array(n);
    for (const j of pool) m[j] = 1;
    return m;
  }));
  const out = variants.map((v) => new Float64Array(L * R * v.scored.length * P));
  // variants scoring image i: [variant, position in scored]
  const users: [number, number][][] = Array.from({ length: n }, () => []);
  variants.forEach((v, vi) => v.scored.forEach((i, s) => users[i]!.push([vi, s])));

  let bits = 1;
  while (2 ** bits < n) bits++;
  const mult = 2 ** bits;
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const keys = new Float64Array(n - 1);
  const total = L * R;
  let done = 0;
  for (let l = 0; l < L; l++) {
    const normed = layerNormImages(stages[l]!);
    for (let ri = 0; ri < R; ri++) {
      const z = aggregateStage(stages[l]!, normed, settings.rList[ri]!, target);
      const table = await nearestDistanceTable(z, n, P, target.channels, kernel, {
        scored: scoredMax, maxRows: settings.maxRows,
        onBlock: (d, t) => ctx?.progress(done + d / t, total, 'scoring'),
      });
      for (let i = 0; i < scoredMax; i++) {
        if (users[i]!.length === 0) continue;
        // per user: output offset, pool mask, rank range (pool size excludes i itself)
        const us = users[i]!.map(([vi, s]) => {
          const v = variants[vi]!;
          const pool = v.pools[v.poolOf[s]!]!;
          const [kLo, kHi] = reductionBounds(pool.filter((j) => j !== i).length, v.reduce);
          return { o: ((l * R + ri) * v.scored.length + s) * P, dst: out[vi]!, mem: member[vi]![v.poolOf[s]!]!, kLo, kHi };
        });
        for (let p = 0; p < P; p++) {
          const row = (i * P + p) * n;
          let m = 0;
          for (let j = 0; j < n; j++) {
            if (j === i) continue;
            f32[0] = table[row + j]!;
            keys[m++] = u32[0]! * mult + j;
          }
          keys.sort();
          for (const u of us) {
            let rank = 0, sum = 0;
            for (let t = 0; t < n - 1 && rank < u.kHi; t++) {
              const k = keys[t]!;
              const j = k - Math.floor(k / mult) * mult;
              if (!u.mem[j]) continue;
              if (rank >= u.kLo) sum += table[row + j]!;
              rank++;
            }
            u.dst[u.o + p] = sum / (u.kHi - u.kLo);
          }
        }
      }
      ctx?.progress(++done, total, 'scoring');
    }
  }
  return { h: target.gridH, w: target.gridW, L, R, scores: out };
}

/**
 * Patch scores [S_v, P] of a variant for an r subset, composed as scoreStages does: stage-major,
 * patch += s(l, r) / (L * |subset|).
 */
export function composeR(res: PassResult, v: number, nScored: number, rIdx: number[]): Float64Array {
  const P = res.h * res.w;
  const patch = new Float64Array(nScored * P);
  const wgt = 1 / (res.L * rIdx.length);
  const s = res.scores[v]!;
  for (let l = 0; l < res.L; l++) {
    for (const ri of rIdx) {
      const o = (l * res.R + ri) * nScored * P;
      for (let k = 0; k < nScored * P; k++) patch[k] += s[o + k]! * wgt;
    }
  }
  return patch;
}
