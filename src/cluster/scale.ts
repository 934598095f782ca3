/**
 * `--msm-precision int8` on a cluster: the int8 kernel quantises a (stage, r) bank Z with one
 * scale, max |Z| over every image of the bank (core/kernel.ts quantizeBank). A first pass of
 * scale jobs computes max |Z| of some images (LNAMD is per image, so these are the values of the
 * whole bank's Z), per r; the coordinator takes the max over the jobs (exact, in any order) and
 * gives it to the block jobs, which quantise their own images with it: the same int8 values, so
 * the same distances as one process.
 */
import type { Device } from '../compute/session.js';
import { maxAbs } from '../core/kernel.js';
import { aggregateStage, layerNormImages } from '../core/lnamd.js';
import type { AggregateOptions } from '../core/lnamd.js';
import { readBankRows } from './bank.js';
import { projectorOf } from './basis.js';
import { blockKernel } from './job-kernel.js';
import type { BankRef, ProjectRef, ScaleJobData } from './jobs.js';
import { contentKey, type SharedStore } from './store.js';

/**
 * Scale jobs [stage][chunk]: images of each bank in chunks of `chunk`, at the stage's r list
 * (rLists[l]: the plan's rList, or the stage's own list; scorer.ts stageRLists).
 */
export function scaleJobs(
  banks: BankRef[],
  target: AggregateOptions,
  rLists: number[][],
  chunk: number,
  run: string,
  bases?: ProjectRef[][],
  device: Device = 'cpu',
): ScaleJobData[][] {
  if (rLists.length !== banks.length) throw new Error(`scale jobs: ${rLists.length} r lists for ${banks.length} stages`);
  return banks.map((bank, l) => {
    const rList = rLists[l]!;
    const b = bases?.[l];
    const jobs: ScaleJobData[] = [];
    for (let i0 = 0; i0 < bank.n; i0 += chunk) {
      const i1 = Math.min(bank.n, i0 + chunk);
      const done = contentKey('scale', { v: 1, bank: bank.key, target, rList, i0, i1, bases: b });
      jobs.push({ run, bank, target, rList, ...(b ? { bases: b } : {}), device, i0, i1, done });
    }
    return jobs;
  });
}

/** (worker) max |Z| of images [i0, i1) per r (of Z projected on its basis with --project), written as float64 [R]. */
export async function runScaleJob(store: SharedStore, d: ScaleJobData): Promise<number[]> {
  const stage = await readBankRows(store, d.bank, d.i0, d.i1);
  const normed = layerNormImages(stage);
  const mm = (await blockKernel(d.device ?? 'cpu', 'int8')).matMul; // the block jobs' kernel: the same projection
  const out = new Float64Array(d.rList.length);
  for (const [k, r] of d.rList.entries()) {
    const project = await projectorOf(store, d.target, d.bases?.[k], mm);
    out[k] = maxAbs(await project(aggregateStage(stage, normed, r, d.target)));
  }
  await store.put(d.done, new Uint8Array(out.buffer));
  return [...out];
}

/** (coordinator) The bank's max |Z| per [stage][k] (the stage's k-th r): the max over its scale jobs' results. */
export async function readMaxAbs(store: SharedStore, jobs: ScaleJobData[][]): Promise<number[][]> {
  const out: number[][] = [];
  for (const stageJobs of jobs) {
    const m = stageJobs[0]!.rList.map(() => 0);
    for (const j of stageJobs) {
      const bytes = await store.get(j.done);
      if (!bytes || bytes.byteLength !== 8 * m.length)
        throw new Error(`scale result ${j.done} is ${bytes ? `${bytes.byteLength} bytes` : 'missing'} in the store ${store.location}`);
      const v = new Float64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      v.forEach((x, ri) => (m[ri] = Math.max(m[ri]!, x)));
    }
    out.push(m);
  }
  return out;
}
