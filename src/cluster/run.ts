/**
 * `musc run --redis URL --store DIR`: the one-process pipeline (pipeline/run-dataset.ts and
 * run-category.ts, unchanged) with two pieces moved to the workers:
 *   - before each category, its images' features are extracted by extraction jobs into the store,
 *     which the run then uses as its feature cache (every image a cache hit);
 *   - scoring (LNAMD + MSM) runs as block jobs (scorer.ts).
 * Maps, RsCIN, metrics and every output are the pipeline's own, so the outputs are those of a
 * one-process run with the same settings.
 */
import { createHash } from 'node:crypto';
import type { Settings } from '../config.js';
import { divideSubsets } from '../datasets/divide.js';
import type { Category } from '../datasets/types.js';
import type { FeatureCache } from '../features/cache.js';
import { readImageBytes } from '../image/decode.js';
import { backboneLoadOptions } from '../pipeline/run-dataset.js';
import type { Scorer } from '../pipeline/types.js';
import { ClusterError } from './connection.js';
import { Coordinator } from './coordinator.js';
import type { ClusterJob, ExtractJobData } from './jobs.js';
import { type BlockSplit, clusterScorer } from './scorer.js';
import { contentKey, DirStore, featureDir } from './store.js';

export interface ClusterRunOptions extends BlockSplit {
  redis: string;
  store: string;
  data: string;
  out: string;
  settings: Settings;
  redisTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface ClusterRun {
  run: string;
  /** the feature cache folder the run must use (inside the store) */
  cacheDir: string;
  scorer: Scorer;
  /** extracts the category's features on the workers (run-dataset's beforeCategory hook) */
  beforeCategory(c: Category, cache: FeatureCache | undefined): Promise<void>;
  finish(state: 'done' | 'failed' | 'cancelled'): Promise<void>;
  close(): Promise<void>;
}

/** The run's id: the same command (data, out, settings) gives the same id, so it resumes. */
export function runId(data: string, out: string, settings: Settings): string {
  return createHash('sha256').update(JSON.stringify({ data, out, settings })).digest('hex').slice(0, 12);
}

export async function openClusterRun(o: ClusterRunOptions): Promise<ClusterRun> {
  const store = new DirStore(o.store);
  const s = o.settings;
  const run = runId(o.data, o.out, s);
  const coordinator = await Coordinator.open({
    redis: o.redis,
    store,
    run,
    label: `${o.data} -> ${o.out}`,
    ...(o.redisTimeoutMs !== undefined ? { redisTimeoutMs: o.redisTimeoutMs } : {}),
    ...(o.log ? { log: o.log } : {}),
  });
  o.log?.(`cluster run ${run} (musc status --redis ${o.redis}; musc cancel ${run} --redis ${o.redis})`);
  return {
    run,
    cacheDir: featureDir(store),
    scorer: clusterScorer(coordinator, store, o),
    async beforeCategory(c, cache) {
      if (!cache) throw new ClusterError('a cluster run needs the feature cache (do not give --no-cache)');
      await coordinator.runJobs(await extractJobs(c, cache, s, run), `${c.name}: extracting features`);
    },
    finish: (state) => coordinator.finish(state),
    close: () => coordinator.close(),
  };
}

/**
 * One extraction job per backbone batch of the one-process run (its subsets in batches of
 * batch_size); the job's key covers its images' feature keys, so changed images run again.
 */
async function extractJobs(c: Category, cache: FeatureCache, s: Settings, run: string): Promise<ClusterJob[]> {
  const subsets = divideSubsets(
    c.items.map((it) => it.path),
    s.divide_num,
    s.seed,
  );
  const jobs: ClusterJob[] = [];
  for (const subset of subsets) {
    for (let b = 0; b < subset.length; b += s.batch_size) {
      const files = subset.slice(b, b + s.batch_size).map((i) => c.items[i]!.path);
      const keys: string[] = [];
      for (const f of files)
        keys.push(
          await readImageBytes(f).then(
            (bytes) => cache.key(bytes),
            () => `unreadable:${f}`,
          ),
        );
      const data: ExtractJobData = {
        run,
        identity: cache.identity,
        backbone: s.backbone,
        load: backboneLoadOptions(s),
        storage: cache.storage,
        ...(s.max_pixels !== undefined ? { maxPixels: s.max_pixels } : {}),
        batches: [files],
        done: contentKey('shard', { v: 1, identity: cache.identity, storage: cache.storage, files, keys, maxPixels: s.max_pixels ?? null }),
      };
      jobs.push({ name: 'extract', data });
    }
  }
  return jobs;
}
