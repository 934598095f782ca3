/**
 * The feature cache: backbone features of one image, stored so that a re-run (after an
 * interruption, or with other scoring settings) skips decoding and the backbone.
 *
 * Key = sha256 of JSON {v: FEATURE_CACHE_VERSION, identity, content}, where
 *   content  = sha256 of the image file's bytes (not its name or time: a changed file is a miss)
 *   identity = everything else the features depend on: backbone name, weights sha256, image
 *              size, stages, libvips version (decoding and resizing) — see `cacheIdentity`.
 * File = <dir>/<key[0..2]>/<key>.safetensors, written atomically (io/atomic.ts), with tensors
 *   stage<k>  F16 or F32 [H_k, W_k, C_k]   channels-last patch features of stage k
 *   token     F32 [D]                      the image token
 * and __metadata__ {width, height, sha256}: the decoded image's size (for mask checks) and the
 * checksum of the entry, `entryChecksum`: sha256 of the tensor names, dtypes, shapes, width and
 * height followed by every tensor's bytes (names sorted). It is verified on every read: a file
 * whose bytes changed after it was written (checksum mismatch), a truncated or unparsable file,
 * or one without a checksum is `corrupt`: the caller recomputes it (and warns), the file is
 * overwritten.
 * Stage features are stored in the run's feature storage (float16 by default: half the disk).
 * A float32 file serves a float16 run (rounded exactly as fresh features are); a float16 file
 * is a miss for a float32 run (and is overwritten). So results from the cache are bit-identical
 * to a fresh run with the same storage.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import type { Backbone } from '../backbones/types.js';
import { SafetensorsFile, encodeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { sha256Hex } from '../io/sha256.js';
import { toFloat16 } from '../io/float16.js';
import type { FeatureData, FeatureStorage } from '../core/types.js';
import { DEFAULT_FEATURE_STORAGE, type ImageFeatures, type StageDims } from './types.js';

/** 2: entries carry a sha256 checksum (version 1 files have other keys and are not read). */
export const FEATURE_CACHE_VERSION = 2;

/** What a lookup found. */
export type CacheRead =
  | { kind: 'hit'; features: ImageFeatures }
  /** absent, or stored at lower precision than the run keeps */
  | { kind: 'miss' }
  /** present but not usable: the reason in words (recompute and warn) */
  | { kind: 'corrupt'; reason: string };

/** What the features depend on besides the image bytes (border padding and fused sizes only when used, so older entries stay valid). */
export function cacheIdentity(p: {
  backbone: string;
  weightsSha256: string;
  imageSize: number;
  stages: number[];
  borderPad?: number;
  fuseSizes?: readonly number[];
  vips?: string;
}): string {
  const pad = p.borderPad ? { pad: p.borderPad } : {};
  const fuse = p.fuseSizes?.length ? { fuse: [...p.fuseSizes] } : {};
  return JSON.stringify({
    backbone: p.backbone,
    weights: p.weightsSha256,
    size: p.imageSize,
    stages: p.stages,
    ...pad,
    ...fuse,
    vips: p.vips ?? '',
  });
}

/** The cache identity of a loaded backbone (runs, cluster extraction jobs). */
export function featureIdentity(backbone: Backbone, name: string): string {
  return cacheIdentity({
    backbone: backbone.info?.name ?? name,
    weightsSha256: backbone.weightsSha256,
    imageSize: backbone.imageSize,
    stages: backbone.stages,
    borderPad: backbone.borderPad ?? 0,
    fuseSizes: backbone.fuseSizes ?? [],
    vips: sharp.versions.vips,
  });
}

export function contentHash(bytes: Uint8Array): string {
  return sha256Hex(bytes);
}

/** One tensor of an entry, as stored. */
interface StoredTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** The checksum of an entry (see the module comment); tensors in name order. */
export function entryChecksum(tensors: StoredTensor[], width: string, height: string): string {
  const sorted = [...tensors].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const head = JSON.stringify({ v: FEATURE_CACHE_VERSION, tensors: sorted.map((t) => [t.name, t.dtype, t.shape]), width, height });
  return sha256Hex(head, ...sorted.map((t) => t.bytes));
}

const bytesOf = (d: FeatureData): Uint8Array => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** Copies little-endian bytes into a new typed array (the read buffer may be unaligned). */
function copyInto<T extends Float32Array | Uint16Array>(out: T, raw: Uint8Array): T {
  new Uint8Array(out.buffer, out.byteOffset, out.byteLength).set(raw);
  return out;
}

export class FeatureCache {
  hits = 0;
  misses = 0;
  writes = 0;
  /** files that existed but could not be used (failed verification, unreadable, wrong shapes): rewritten */
  corrupt = 0;

  /** float16 files are written and read as such; float32 runs miss on them */
  constructor(
    readonly dir: string,
    readonly identity: string,
    readonly storage: FeatureStorage = DEFAULT_FEATURE_STORAGE,
  ) {}

  key(bytes: Uint8Array): string {
    return sha256Hex(JSON.stringify({ v: FEATURE_CACHE_VERSION, identity: this.identity, content: contentHash(bytes) }));
  }

  pathOf(key: string): string {
    return join(this.dir, key.slice(0, 2), `${key}.safetensors`);
  }

  /** The cached features, or null (absent, corrupt, or not matching `expect` when given). */
  get(key: string, expect?: { dims: StageDims[]; tokenDim: number } | null): ImageFeatures | null {
    const r = this.read(key, expect);
    return r.kind === 'hit' ? r.features : null;
  }

  /** Looks an entry up and verifies it (checksum, shapes); counts hits, misses and corrupt files. */
  read(key: string, expect?: { dims: StageDims[]; tokenDim: number } | null): CacheRead {
    let f: SafetensorsFile;
    const f0 = this.pathOf(key);
    try {
      f = SafetensorsFile.open(f0);
    } catch (e) {
      this.misses++;
      if ((e as Error).message.includes('ENOENT')) return { kind: 'miss' };
      this.corrupt++;
      return { kind: 'corrupt', reason: (e as Error).message.replace(`${f0}: `, '') };
    }
    try {
      const names = f.names();
      // stored at lower precision than this run keeps: a miss, not corruption
      if (this.storage === 'float32' && names.some((n) => n.startsWith('stage') && f.info(n).dtype === 'F16')) {
        this.misses++;
        return { kind: 'miss' };
      }
      const features = this.decodeEntry(f, names, expect ?? null);
      this.hits++;
      return { kind: 'hit', features };
    } catch (e) {
      this.corrupt++;
      this.misses++;
      return { kind: 'corrupt', reason: (e as Error).message.replace(`${f0}: `, '') };
    } finally {
      f.close();
    }
  }

  /** Reads, verifies and converts one open entry; throws with the reason when it is not usable. */
  private decodeEntry(f: SafetensorsFile, names: string[], expect: { dims: StageDims[]; tokenDim: number } | null): ImageFeatures {
    const stored: StoredTensor[] = names.map((name) => {
      const i = f.info(name);
      return { name, dtype: i.dtype, shape: i.shape, bytes: f.raw(name) };
    });
    const { width, height, sha256 } = f.metadata;
    if (sha256 === undefined || width === undefined || height === undefined) throw new Error('no checksum or image size in the entry');
    if (entryChecksum(stored, width, height) !== sha256) throw new Error('checksum mismatch (the file changed after it was written)');
    const byName = new Map(stored.map((t) => [t.name, t]));
    const stages: FeatureData[] = [];
    const dims: StageDims[] = [];
    for (let k = 0; byName.has(`stage${k}`); k++) {
      const t = byName.get(`stage${k}`)!;
      if (t.shape.length !== 3 || (t.dtype !== 'F16' && t.dtype !== 'F32')) {
        throw new Error(`stage${k} is ${t.dtype}[${t.shape.join(',')}], expected F16 or F32 [H, W, C]`);
      }
      const n = t.shape[0]! * t.shape[1]! * t.shape[2]!;
      if (t.dtype === 'F16') stages.push(copyInto(new Uint16Array(n), t.bytes));
      else {
        const x = copyInto(new Float32Array(n), t.bytes);
        stages.push(this.storage === 'float16' ? toFloat16(x) : x);
      }
      dims.push({ h: t.shape[0]!, w: t.shape[1]!, c: t.shape[2]! });
    }
    const tok = byName.get('token');
    if (stages.length === 0 || !tok || tok.dtype !== 'F32' || tok.shape.length !== 1) throw new Error('no stage features or no F32 token');
    const token = copyInto(new Float32Array(tok.shape[0]!), tok.bytes);
    if (expect && !sameDims(expect, dims, token.length)) {
      const theirs = `${JSON.stringify(expect.dims)} / ${expect.tokenDim}`;
      throw new Error(`shapes ${JSON.stringify(dims)} / token ${token.length} differ from the other images' ${theirs}`);
    }
    return { stages, token, dims, width: Number(width), height: Number(height) };
  }

  /** Writes one entry atomically, with its checksum. */
  async put(key: string, feat: ImageFeatures): Promise<void> {
    const tensors: Record<string, TensorToWrite> = {};
    const stored: StoredTensor[] = [];
    const add = (name: string, t: TensorToWrite & { data: FeatureData }): void => {
      tensors[name] = t;
      stored.push({ name, dtype: t.dtype, shape: t.shape, bytes: bytesOf(t.data) });
    };
    feat.stages.forEach((data, k) => {
      const d = feat.dims[k]!;
      add(`stage${k}`, { dtype: data instanceof Uint16Array ? 'F16' : 'F32', shape: [d.h, d.w, d.c], data });
    });
    add('token', { dtype: 'F32', shape: [feat.token.length], data: feat.token });
    const width = String(feat.width),
      height = String(feat.height);
    const sha256 = entryChecksum(stored, width, height);
    await writeFileAtomic(this.pathOf(key), encodeSafetensors(tensors, { width, height, sha256 }));
    this.writes++;
  }
}

/** Whether stage dims and the token length agree with `expect`. */
export function sameDims(expect: { dims: StageDims[]; tokenDim: number }, dims: StageDims[], tokenDim: number): boolean {
  return (
    expect.tokenDim === tokenDim &&
    expect.dims.length === dims.length &&
    expect.dims.every((d, k) => d.h === dims[k]!.h && d.w === dims[k]!.w && d.c === dims[k]!.c)
  );
}
