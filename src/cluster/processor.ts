/**
 * (worker child process) The BullMQ sandboxed processor: one child process per concurrency slot,
 * so ONNX Runtime's blocking session.run never stalls the parent, which keeps renewing the job
 * locks with Redis. Backbones and kernels stay loaded between jobs.
 */
import type { Job } from 'bullmq';
import { runBasisJob } from './basis.js';
import { runBlockJob } from './block.js';
import { runExtractJob } from './features.js';
import {
  type BasisJobData,
  type BlockJobData,
  type ExtractJobData,
  JOB_DELAY_ENV,
  type LinksJobData,
  type ReduceJobData,
  type ScaleJobData,
  STORE_ENV,
} from './jobs.js';
import { runDensityJob, runLinksJob, runReduceJob } from './reduce.js';
import { runScaleJob } from './scale.js';
import { DirStore } from './store.js';

// a child whose worker was killed (SIGKILL: no clean shutdown) exits instead of lingering
process.on('disconnect', () => process.exit(1));

export default async function process_(job: Job): Promise<unknown> {
  const delay = Number(process.env[JOB_DELAY_ENV] ?? 0);
  if (delay > 0) await new Promise((r) => setTimeout(r, delay));
  const dir = process.env[STORE_ENV];
  if (!dir) throw new Error(`${STORE_ENV} is not set`);
  const store = new DirStore(dir);
  if (await store.has(job.data.done)) return { skipped: true }; // done already (duplicate delivery)
  switch (job.name) {
    case 'block':
      return runBlockJob(store, job.data as BlockJobData);
    case 'extract':
      return runExtractJob(store, job.data as ExtractJobData);
    case 'basis':
      return runBasisJob(store, job.data as BasisJobData);
    case 'scale':
      return runScaleJob(store, job.data as ScaleJobData);
    case 'reduce':
      return runReduceJob(store, job.data as ReduceJobData);
    case 'links':
      return runLinksJob(store, job.data as LinksJobData);
    case 'density':
      return runDensityJob(store, job.data as ReduceJobData);
    default:
      throw new Error(`unknown job '${job.name}'`);
  }
}
