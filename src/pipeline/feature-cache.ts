/**
 * The feature cache: backbone features of one image, stored so that a re-run (after an
 * interruption, or with other scoring settings) skips decoding and the backbone.
 *
 * Key = sha256 of JSON {v: FEATURE_CACHE_VERSION, identity, content}, where
 *   content  = sha256 of the image file's bytes (not its name or time: a changed file is a miss)
 *   identity = everything else the features depend on: backbone name, weights sha256, image
 *              size, stages, libvips version (decoding and resizing) — see `cacheIdentity`.
 * File = <dir>/<key[0..2]>/<key>.safetensors, written atomically, with tensors
 *   stage<k>  F16 or F32 [H_k, W_k, C_k]   channels-last patch features of stage k
 *   token     F32 [D]                      the image token
 * and __metadata__ {width, height} (the decoded image's size, for mask checks).
 * A file that cannot be read back (truncated, wrong shapes) is a miss and is overwritten.
 * Stage features are stored in the run's feature storage (float16 by default: half the disk).
 * A float32 file serves a float16 run (rounded exactly as fresh features are); a float16 file
 * is a miss for a float32 run (and is overwritten). So results from the cache are bit-identical
 * to a fresh run with the same storage.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { SafetensorsFile, encodeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { StageDims } from './memory.js';
import { toFloat16 } from '../io/float16.js';
import type { FeatureData, FeatureStorage } from '../core/types.js';
import { DEFAULT_FEATURE_STORAGE } from './types.js';

export const FEATURE_CACHE_VERSION = 1;

/** One image's backbone output. */
export interface ImageFeatures {
  /** per stage [H, W, C] channels-last, in the run's feature storage */
  stages: FeatureData[];
  /** [D] */
  token: Float32Array;
  dims: StageDims[];
  /** decoded image size */
  width: number;
  height: number;
}

/** What the features depend on besides the image bytes. */
export function cacheIdentity(p: { backbone: string; weightsSha256: string; imageSize: number; stages: number[]; vips?: string }): string {
  return JSON.stringify({ backbone: p.backbone, weights: p.weightsSha256, size: p.imageSize, stages: p.stages, vips: p.vips ?? '' });
}

export function contentHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class FeatureCache {
  hits = 0;
  misses = 0;
  writes = 0;
  /** files that existed but could not be read back (rewritten) */
  corrupt = 0;

  /** float16 files are written and read as such; float32 runs miss on them */
  constructor(readonly dir: string, readonly identity: string, readonly storage: FeatureStorage = DEFAULT_FEATURE_STORAGE) {}

  key(bytes: Uint8Array): string {
    return createHash('sha256').update(JSON.stringify({ v: FEATURE_CACHE_VERSION, identity: this.identity, content: contentHash(bytes) })).digest('hex');
  }

  pathOf(key: string): string {
    return join(this.dir, key.slice(0, 2), `${key}.safetensors`);
  }

  /** The cached features, or null (absent, unreadable, or not matching `expect` when given). */
  get(key: string, expect?: { dims: StageDims[]; tokenDim: number } | null): ImageFeatures | null {
    let f: SafetensorsFile;
    try {
      f = SafetensorsFile.open(this.pathOf(key));
    } catch (e) {
      if ((e as Error).message.includes('ENOENT')) this.misses++;
      else {
        this.corrupt++;
        this.misses++;
      }
      return null;
    }
    try {
      const stages: FeatureData[] = [];
      const dims: StageDims[] = [];
      for (let k = 0; f.names().includes(`stage${k}`); k++) {
        const name = `stage${k}`;
        const half = f.info(name).dtype === 'F16';
        if (half && this.storage === 'float32') {
          // stored at lower precision than this run keeps: a miss, not corruption
          this.misses++;
          return null;
        }
        const t = half ? f.float16(name) : f.float32(name);
        if (t.shape.length !== 3) throw new Error('bad stage shape');
        stages.push(this.storage === 'float16' && !half ? toFloat16(t.data as Float32Array) : t.data);
        dims.push({ h: t.shape[0]!, w: t.shape[1]!, c: t.shape[2]! });
      }
      const token = f.float32('token').data;
      if (stages.length === 0) throw new Error('no stages');
      if (expect) {
        if (expect.tokenDim !== token.length || expect.dims.length !== dims.length) throw new Error('shape mismatch');
        expect.dims.forEach((d, k) => {
          if (d.h !== dims[k]!.h || d.w !== dims[k]!.w || d.c !== dims[k]!.c) throw new Error('shape mismatch');
        });
      }
      const width = Number(f.metadata.width);
      const height = Number(f.metadata.height);
      this.hits++;
      return { stages, token, dims, width, height };
    } catch {
      this.corrupt++;
      this.misses++;
      return null;
    } finally {
      f.close();
    }
  }

  async put(key: string, feat: ImageFeatures): Promise<void> {
    const tensors: Record<string, TensorToWrite> = {};
    feat.stages.forEach((data, k) => {
      const d = feat.dims[k]!;
      tensors[`stage${k}`] = { dtype: data instanceof Uint16Array ? 'F16' : 'F32', shape: [d.h, d.w, d.c], data };
    });
    tensors.token = { dtype: 'F32', shape: [feat.token.length], data: feat.token };
    await writeFileAtomic(this.pathOf(key), encodeSafetensors(tensors, { width: String(feat.width), height: String(feat.height) }));
    this.writes++;
  }
}
