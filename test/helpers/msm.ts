/** Test shorthands over the scoring engine: one bank, one variant. */
import { scoreBank, reduceTable } from '../../src/core/score.js';
import { referenceVariant, zeroShotVariant } from '../../src/core/plan.js';
import type { PairKernel } from '../../src/core/kernel.js';
import type { TableOptions } from '../../src/core/msm.js';
import type { Interval, StageFeatures } from '../../src/core/types.js';

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** MSM scores [S, P] of one bank: zero-shot, or the first `scored` images against references. */
export async function msmScores(
  z: Float32Array,
  n: number,
  p: number,
  c: number,
  interval: Interval,
  kernel: PairKernel,
  opts: TableOptions & { scored?: number; referencesOnly?: boolean } = {},
): Promise<Float64Array> {
  const scored = opts.scored ?? n;
  const v =
    scored < n
      ? referenceVariant(range(0, scored), range(scored, n), opts.referencesOnly ? 'musc-plus' : 'musc', interval)
      : zeroShotVariant(n, interval);
  return (await scoreBank(z, n, p, c, [v], kernel, opts))[0]!;
}

/** Zero-shot interval means of a full table [N, P, N]. */
export function intervalMeans(table: Float32Array, n: number, p: number, interval: Interval): Float64Array {
  return reduceTable(table, n, p, [zeroShotVariant(n, interval)])[0]!;
}

/** The images `idx` of one stage, in that order (same storage as the stage). */
export function pickImages<S extends StageFeatures>(s: S, idx: number[]): S {
  const per = s.h * s.w * s.c;
  const data = s.data instanceof Uint16Array ? new Uint16Array(idx.length * per) : new Float32Array(idx.length * per);
  idx.forEach((i, k) => data.set(s.data.subarray(i * per, (i + 1) * per), k * per));
  return { ...s, n: idx.length, data };
}
