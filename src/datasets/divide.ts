/**
 * The reference's subset division (datasets/mvtec.py, visa.py, btad.py: `sub_datasets`), used when
 * divide_num > 1 so that mutual scoring runs within smaller subsets:
 *
 *   random.seed(seed)                       # reset for every subset, so the subsets partition the set
 *   group indices by anomaly type = image_path.split('/')[-2], types in first-appearance order
 *   per type: random.shuffle(ids); chunk into runs of divide_num; subset j takes the j-th of each run
 *
 * so subset j gets shuffled positions j, j+D, j+2D, ... of every type. models/musc.py runs
 * MuSc on subset 0, 1, ..., D-1 in turn, with seed 42 (examples/musc_main.py).
 */
import { basename, dirname } from 'node:path';
import { PyRandom } from './py-random.js';

/** The reference's seed (examples/musc_main.py: `seed = 42`). */
export const DIVIDE_SEED = 42;

/** Anomaly type as the reference sees it: the image's parent folder name. */
export function divideTypeOf(path: string): string {
  return basename(dirname(path.replace(/\\/g, '/')));
}

/** Subset `divideIter` of `paths` (indices into `paths`, in the reference's order). */
export function divideSubsetsAt(paths: readonly string[], divideNum: number, divideIter: number, seed = DIVIDE_SEED): number[] {
  if (divideNum <= 1) return paths.map((_, i) => i);
  const rng = new PyRandom(seed);
  const byType = new Map<string, number[]>();
  paths.forEach((p, i) => {
    const t = divideTypeOf(p);
    let l = byType.get(t);
    if (!l) {
      l = [];
      byType.set(t, l);
    }
    l.push(i);
  });
  const out: number[] = [];
  for (const ids of byType.values()) {
    rng.shuffle(ids);
    for (let i = divideIter; i < ids.length; i += divideNum) out.push(ids[i]!);
  }
  return out;
}

/** All `divideNum` subsets (empty ones dropped); together they hold every index exactly once. */
export function divideSubsets(paths: readonly string[], divideNum: number, seed = DIVIDE_SEED): number[][] {
  if (!Number.isInteger(divideNum) || divideNum < 1) throw new RangeError(`divide_num must be an integer >= 1, got ${divideNum}`);
  const out: number[][] = [];
  for (let j = 0; j < divideNum; j++) {
    const s = divideSubsetsAt(paths, divideNum, j, seed);
    if (s.length) out.push(s);
  }
  return out;
}
