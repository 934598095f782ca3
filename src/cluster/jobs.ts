/**
 * The jobs of a cluster run (what travels through Redis: small JSON, never feature data).
 *
 *   extract  a shard of images -> backbone features in the store (one file per image, keyed by the
 *            image's content hash and the backbone settings: the feature cache's layout)
 *   scale    (--msm-precision int8 only) max |Z| of some images of a stage bank, per r: the
 *            coordinator takes the max over them, the bank's int8 quantisation scale
 *   basis    (--project only) the projection basis [K, C] of one (stage, r) bank of the whole
 *            batch (basis.ts): block and scale jobs project their images on it
 *   block    one MSM block (stage bank, r, query images [i0, i1), reference images [j0, j1)) ->
 *            its squared distances (PairResult) in the store
 *   reduce   the merge of one row block (images [a0, a1)) of one (stage, r) table: the block
 *            results touching it -> its images' scores (reduce.ts)
 *   links    the repeated-anomaly filter: one row block of the link table merged the same way ->
 *            its images' burnout links (reduce.ts, core/repeats.ts)
 *   density  (--density-exponent only) one row block of a (stage, r) table merged the same way ->
 *            its images' zero-shot scores, the patch densities rho (core/density.ts) that the
 *            coordinator gathers for the table's merge jobs
 *
 * Every job names the store key it completes (`done`): the key is a hash of the job's inputs, so a
 * job that ran twice (a retry after a killed worker, a duplicated delivery) writes the same bytes
 * to the same key, and a resumed run skips every job whose key exists.
 */

import type { LoadOptions } from '../backbones/types.js';
import type { Device } from '../compute/session.js';
import type { MsmPrecision } from '../core/kernel.js';
import type { AggregateOptions } from '../core/lnamd.js';
import type { TableBlock } from '../core/msm.js';
import type { FeatureStorage } from '../core/types.js';

export const QUEUE_NAME = 'musc';

/** The worker passes its store folder to its job processes in this variable. */
export const STORE_ENV = 'MUSC_CLUSTER_STORE';

/** Fault-injection tests: a worker's jobs wait this many ms first, so that a kill lands mid-job. */
export const JOB_DELAY_ENV = 'MUSC_CLUSTER_JOB_DELAY_MS';

/** One stage's features of a scoring batch in the store: [n, h, w, c] row-major, float16 bits or float32. */
export interface BankRef {
  key: string;
  n: number;
  h: number;
  w: number;
  c: number;
  dtype: FeatureStorage;
}

/** A (stage, r) pass's projection (`--project K`): the store key of its basis [K, C] float32 (basis jobs). */
export interface ProjectRef {
  key: string;
  K: number;
}

export interface BasisJobData {
  run: string;
  bank: BankRef;
  target: AggregateOptions;
  r: number;
  K: number;
  /** images read and aggregated at a time */
  chunk: number;
  device: Device;
  /** store key of the result: the basis [K, C] float32 */
  done: string;
}

export interface BlockJobData {
  run: string;
  /** the stage's features (every image of the batch) */
  bank: BankRef;
  target: AggregateOptions;
  r: number;
  block: TableBlock;
  precision: MsmPrecision;
  device: Device;
  /** int8 only: max |Z| over the whole bank for this r (scale jobs), the quantisation scale */
  maxAbs?: number;
  /** --project: Z projected on this basis before the products */
  basis?: ProjectRef;
  /** --density-exponent: the nearest patches' indices too (core/msm.ts computeIndexedBlock) */
  indexed?: boolean;
  /** store key of the result: rowd2 [A, P, B] then cold2 [A, B, P], float32 (indexed: then rowarg [A, P, B], colarg [A, B, P], int32) */
  done: string;
}

/** A (stage, r) table's reference densities (core/density.ts): the exponent and the store key of rho [N, P] float64. */
export interface DensityRef {
  exponent: number;
  rho: string;
  /** --density-scope image: the plan's first variants (the maps) reduce the rows before they are normalised (core/score.ts Density.rawVariants) */
  rawVariants?: number;
}

export interface ReduceJobData {
  run: string;
  /** store key of the scoring plan (JSON) */
  plan: string;
  /** the (stage, r) of the table, as its block jobs have them */
  bank: BankRef;
  target: AggregateOptions;
  r: number;
  precision: MsmPrecision;
  maxAbs?: number;
  basis?: ProjectRef;
  /** the block results hold the nearest indices (BlockJobData.indexed) */
  indexed?: boolean;
  /** --density-exponent: the table's rows normalised with these densities before the reduction */
  density?: DensityRef;
  /** the block split (the job derives the blocks and their result keys from it) */
  tiling: { blockImages: number; colImages: number };
  /** table rows (images) [a0, a1) */
  a0: number;
  a1: number;
  /** store key of the result: the scores of the variants' images in [a0, a1), [k, P] float64 */
  done: string;
}

/** The repeated-anomaly filter's burnout links of one row block of the link table (stage 0; core/repeats.ts). */
export interface LinksJobData extends ReduceJobData {
  /** the MSM interval's count (the burnout test's ranks) and the test's false-positive rate */
  K: number;
  fpr: number;
}

export interface ScaleJobData {
  run: string;
  bank: BankRef;
  target: AggregateOptions;
  rList: number[];
  /** --project: each r's basis (Z projected on it before max |Z|) */
  bases?: ProjectRef[];
  /** the run's device: with bases, the projection runs on the block jobs' kernel (absent in jobs of older versions: cpu) */
  device?: Device;
  /** images [i0, i1) of the bank */
  i0: number;
  i1: number;
  /** store key of the result: max |Z| of these images per r, float64 [R] */
  done: string;
}

export interface ExtractJobData {
  run: string;
  /** the coordinator's feature identity (backbone, weights, size, stages, libvips): a worker whose own differs refuses */
  identity: string;
  backbone: string;
  load: LoadOptions;
  storage: FeatureStorage;
  maxPixels?: number;
  /** backbone batches of image files (the one-process run's batches) */
  batches: string[][];
  done: string;
}

export type JobName = 'extract' | 'basis' | 'scale' | 'block' | 'reduce' | 'links' | 'density';

/** A job to run: its name, id (deterministic), data. */
export interface ClusterJob {
  name: JobName;
  data: BlockJobData | ExtractJobData | BasisJobData | ScaleJobData | ReduceJobData | LinksJobData;
}

/** The BullMQ job id of a job: its done key without the slash (ids are unique per content). */
export function jobId(job: ClusterJob): string {
  return `${job.name}-${job.data.done.replace('/', '-')}`;
}
