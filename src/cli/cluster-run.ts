/** `musc run --redis URL --store DIR`: the run's cluster flags and the run on the cluster (src/cluster/run.ts). */
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { CancelledRunError } from '../cluster/connection.js';
import { openClusterRun } from '../cluster/run.js';
import { ConfigError } from '../config.js';
import { type DatasetRunOptions, type DatasetRunResult, runDataset } from '../pipeline/run-dataset.js';
import { positiveInt, STORE_DEFAULT_ENV, storeDir } from './worker.js';

export interface ClusterFlags {
  redis?: string;
  store?: string;
  blockImages?: number;
  colImages?: number;
  redisTimeout?: number;
}

export function addClusterRunOptions(cmd: Command): Command {
  return cmd
    .option('--redis <url>', 'run on the cluster of `musc worker`s behind this Redis (e.g. redis://host:6379)')
    .option('--store <dir>', `with --redis: the shared store folder the workers mount (default: $${STORE_DEFAULT_ENV})`)
    .option('--block-images <n>', 'with --redis: query images per MSM block job (default: about 4096 patch rows)', positiveInt)
    .option('--col-images <n>', 'with --redis: reference images per MSM block job (default: about 4096 patch rows)', positiveInt)
    .option('--redis-timeout <s>', 'with --redis: seconds without Redis before the run fails (default: 15)', positiveInt);
}

/** runDataset with features extracted and MSM blocks scored by the workers; the outputs are the same. */
export async function runOnCluster(f: ClusterFlags, o: DatasetRunOptions): Promise<DatasetRunResult> {
  const store = resolve(storeDir(f.store));
  if (o.settings.cache === false) throw new ConfigError('--redis keeps features in the store: --no-cache cannot be used with it');
  const settings = { ...o.settings, cache_dir: join(store, 'features') };
  const c = await openClusterRun({
    redis: f.redis!,
    store,
    data: o.data,
    out: o.out,
    settings,
    ...(f.blockImages !== undefined ? { blockImages: f.blockImages } : {}),
    ...(f.colImages !== undefined ? { colImages: f.colImages } : {}),
    ...(f.redisTimeout !== undefined ? { redisTimeoutMs: f.redisTimeout * 1000 } : {}),
    ...(o.log ? { log: o.log } : {}),
  });
  try {
    const res = await runDataset({ ...o, settings, scorer: c.scorer, beforeCategory: (cat, cache) => c.beforeCategory(cat, cache) });
    await c.finish('done');
    return res;
  } catch (e) {
    await c.finish(e instanceof CancelledRunError ? 'cancelled' : 'failed');
    throw e;
  } finally {
    await c.close();
  }
}
