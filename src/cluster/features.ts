/**
 * Extraction shards: images -> backbone features in the shared store. THE one adapter between the
 * cluster and the feature store (src/features/): a shard runs the FeatureStore's extraction loop
 * over whole backbone batches of the one-process run (the same images in the same batch) and
 * writes each image to the feature cache (features/cache.ts: key = hash of the image bytes and
 * the backbone identity) under <store>/features, which the coordinator's run reads as its
 * feature cache. A batch that is only partly stored (a killed job) is recomputed whole, so the
 * batches, and so the features, are those of a one-process run.
 */
import { existsSync } from 'node:fs';
import { loadBackbone } from '../backbones/registry.js';
import type { Backbone } from '../backbones/types.js';
import { featureIdentity, FeatureCache } from '../features/cache.js';
import { FeatureStore } from '../features/store.js';
import { readImageBytes } from '../image/decode.js';
import type { ExtractJobData } from './jobs.js';
import { type DirStore, featureDir } from './store.js';

/** The feature identity of a loaded backbone (as run-dataset.ts builds it for its cache). */
export { featureIdentity };

/** The store's feature area as a feature cache. */
export function featureCache(store: DirStore, identity: string, storage: ExtractJobData['storage']): FeatureCache {
  return new FeatureCache(featureDir(store), identity, storage);
}

/** Backbones loaded in this process, by their settings (a worker keeps them between jobs). */
const loaded = new Map<string, Promise<Backbone>>();

function backboneFor(d: ExtractJobData): Promise<Backbone> {
  const id = JSON.stringify([d.backbone, d.load]);
  let b = loaded.get(id);
  if (!b) {
    b = loadBackbone(d.backbone, d.load);
    b.catch(() => loaded.delete(id));
    loaded.set(id, b);
  }
  return b;
}

/** Cache keys of a batch's files (null: unreadable). */
async function keysOf(cache: FeatureCache, files: string[]): Promise<(string | null)[]> {
  return Promise.all(
    files.map((f) =>
      readImageBytes(f).then(
        (b) => cache.key(b),
        () => null,
      ),
    ),
  );
}

/** (worker) Extracts a shard; returns the files that could not be read (the coordinator skips them too). */
export async function runExtractJob(store: DirStore, d: ExtractJobData): Promise<{ computed: number; unreadable: string[] }> {
  const backbone = await backboneFor(d);
  const identity = featureIdentity(backbone, d.backbone);
  if (identity !== d.identity)
    throw new Error(
      `this worker's backbone features differ from the run's (${identity} vs ${d.identity}): same weights and libvips needed`,
    );
  const cache = featureCache(store, identity, d.storage);
  let computed = 0;
  const unreadable: string[] = [];
  for (const files of d.batches) {
    const keys = await keysOf(cache, files);
    if (keys.every((k) => k !== null && existsSync(cache.pathOf(k)))) continue;
    // the whole batch through the backbone (no cache lookups: the one-process run's batch)
    const fs = new FeatureStore({
      backbone,
      storage: d.storage,
      batchSize: files.length,
      badFiles: 'skip',
      ...(d.maxPixels !== undefined ? { maxPixels: d.maxPixels } : {}),
    });
    const res = await fs.extract(files.map((path) => ({ path })));
    for (const s of res.skipped) unreadable.push(s.path);
    for (const im of res.images) {
      const key = keys[im.index];
      if (!key) continue;
      await cache.put(key, im.features);
      computed++;
    }
  }
  await store.put(d.done, Buffer.from(JSON.stringify({ computed, unreadable })));
  return { computed, unreadable };
}
