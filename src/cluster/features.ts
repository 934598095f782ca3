/**
 * Extraction shards: images -> backbone features in the shared store. THE one adapter between the
 * cluster and today's feature extraction: features are written in the feature cache's format and
 * layout (pipeline/feature-cache.ts: key = hash of the image bytes and the backbone identity)
 * under <store>/features, which the coordinator's run reads as its feature cache. Switching to
 * another feature store changes this file only.
 *
 * A shard holds whole backbone batches of the one-process run (the same images in the same
 * batch; a batch is recomputed whole when a killed job stored only part of it), and each image's features are rounded to the run's storage exactly as run-category.ts
 * does, so the cached features are the bytes a one-process run would compute.
 */
import { existsSync } from 'node:fs';
import sharp from 'sharp';
import { decodeRgbBytes, readImageBytes } from '../image/decode.js';
import { toFloat16 } from '../io/float16.js';
import { FeatureCache, cacheIdentity } from '../pipeline/feature-cache.js';
import { loadBackbone } from '../backbones/registry.js';
import type { Backbone } from '../backbones/types.js';
import type { ExtractJobData } from './jobs.js';
import { featureDir, type DirStore } from './store.js';

/** The feature identity of a loaded backbone (as run-dataset.ts builds it for its cache). */
export function featureIdentity(backbone: Backbone, name: string): string {
  return cacheIdentity({ backbone: backbone.info?.name ?? name, weightsSha256: backbone.weightsSha256, imageSize: backbone.imageSize, stages: backbone.stages, vips: sharp.versions.vips });
}

/** The store's feature area as a feature cache. */
export function featureCache(store: DirStore, identity: string, storage: ExtractJobData['storage']): FeatureCache {
  return new FeatureCache(featureDir(store), identity, storage);
}

/** Whether an image's features are in the cache already. */
export async function hasFeatures(cache: FeatureCache, file: string): Promise<boolean> {
  return existsSync(cache.pathOf(cache.key(await readImageBytes(file))));
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

/** (worker) Extracts a shard; returns the files that could not be decoded (the coordinator skips them too). */
export async function runExtractJob(store: DirStore, d: ExtractJobData): Promise<{ computed: number; unreadable: string[] }> {
  const backbone = await backboneFor(d);
  const identity = featureIdentity(backbone, d.backbone);
  if (identity !== d.identity) throw new Error(`this worker's backbone features differ from the run's (${identity} vs ${d.identity}): same weights and libvips needed`);
  const cache = featureCache(store, identity, d.storage);
  const S = backbone.imageSize;
  let computed = 0;
  const unreadable: string[] = [];
  for (const files of d.batches) {
    // a batch is recomputed whole unless all of it is stored (a retried job gives the same batches)
    if ((await Promise.all(files.map((f) => hasFeatures(cache, f).catch(() => false)))).every(Boolean)) continue;
    const inputs: { key: string; x: Float32Array; width: number; height: number }[] = [];
    for (const file of files) {
      let key: string;
      let img;
      try {
        const bytes = await readImageBytes(file);
        key = cache.key(bytes);
        img = await decodeRgbBytes(file, bytes, d.maxPixels !== undefined ? { maxPixels: d.maxPixels } : {});
      } catch {
        unreadable.push(file);
        continue;
      }
      inputs.push({ key, x: await backbone.preprocess(img), width: img.width, height: img.height });
    }
    if (inputs.length === 0) continue;
    const per = 3 * S * S;
    const batch = new Float32Array(inputs.length * per); // [B, 3, S, S]
    inputs.forEach((v, i) => batch.set(v.x, i * per));
    const f = await backbone.extract(batch, inputs.length);
    const dims = f.stages.map((s) => ({ h: s.h, w: s.w, c: s.c }));
    for (const [i, v] of inputs.entries()) {
      const stages = f.stages.map((s) => {
        const one = s.data.subarray(i * s.h * s.w * s.c, (i + 1) * s.h * s.w * s.c);
        return d.storage === 'float16' ? toFloat16(one) : one.slice();
      });
      const token = f.imageTokens.data.slice(i * f.imageTokens.d, (i + 1) * f.imageTokens.d);
      await cache.put(v.key, { stages, token, dims, width: v.width, height: v.height });
      computed++;
    }
  }
  await store.put(d.done, Buffer.from(JSON.stringify({ computed, unreadable })));
  return { computed, unreadable };
}
