/**
 * Few-shot reference images (paper appendix A.6): known-good images whose patches join the
 * scoring pool (MuSc with references) or score the test patches alone (MuSc+). They are never
 * scored themselves and never appear in the outputs or the metrics.
 *
 * `--reference-dir DIR`: per category, `DIR/<category>/train/good` when it exists (an MVTec AD
 * tree), else `DIR/<category>` when it exists, else DIR itself; every image below that folder,
 * recursively (symbolic links followed), sorted by relative path.
 *
 * Their features are appended after each subset's test images, so that the last R images of every
 * stage are the references (the contract of scorePatches({ references: R })).
 */
import { readdir, realpath } from 'node:fs/promises';
import { FeatureStore } from './store.js';
import { stackStages, stackTokens } from './stack.js';
import type { FeatureCache } from './cache.js';
import { sharedFeatures } from '../compute/worker.js';
import { join } from 'node:path';
import type { RgbImage } from '../image/decode.js';
import type { StageFeatures, ImageTokens, FeatureStorage } from '../core/types.js';
import type { Backbone } from '../backbones/types.js';
import { byName, isDir, isFile, isImageName } from '../datasets/fs-utils.js';
import { relPosix } from '../datasets/paths.js';
import { DatasetError, type DatasetItem } from '../datasets/types.js';

/** Backbone features of R reference images. */
export interface ReferenceFeatures {
  /** absolute image paths [R] */
  files: string[];
  /** per stage [R, h, w, C] */
  stages: StageFeatures[];
  /** [R, D] */
  tokens: ImageTokens;
}

async function walk(dir: string, out: string[]): Promise<void> {
  const ents = await readdir(dir, { withFileTypes: true });
  for (const e of ents) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory() || (e.isSymbolicLink() && (await isDir(p)))) await walk(p, out);
    else if (isImageName(e.name) && (e.isFile() || (e.isSymbolicLink() && (await isFile(p))))) out.push(p);
  }
}

/** The folder used for one category (see the module comment). */
export async function referenceFolder(dir: string, category?: string): Promise<string> {
  if (!(await isDir(dir))) throw new DatasetError(`reference folder not found: ${dir}`);
  if (category !== undefined) {
    const train = join(dir, category, 'train', 'good');
    if (await isDir(train)) return train;
    if (await isDir(join(dir, category))) return join(dir, category);
  }
  return dir;
}

/** Every image below `folder` (recursive, sorted by relative path); a data error when there is none. */
export async function listReferenceImages(folder: string): Promise<string[]> {
  const files: string[] = [];
  await walk(folder, files);
  if (files.length === 0) throw new DatasetError(`reference folder ${folder}: no images found (png, jpg, bmp, tif, webp, gif)`);
  return files.sort((a, b) => byName(relPosix(folder, a), relPosix(folder, b)));
}

/**
 * Drops reference files that are also test images (same file after resolving links): a test image
 * in its own pool would score itself 0. Returns the kept files and one warning per dropped file.
 */
export async function excludeTestImages(files: string[], items: DatasetItem[]): Promise<{ files: string[]; dropped: string[] }> {
  const real = async (p: string): Promise<string> => realpath(p).catch(() => p);
  const test = new Set(await Promise.all(items.map((it) => real(it.path))));
  const kept: string[] = [];
  const dropped: string[] = [];
  for (const f of files) (test.has(await real(f)) ? dropped : kept).push(f);
  return { files: kept, dropped };
}

/**
 * Decodes, preprocesses and runs the backbone on the reference images (in batches, through the
 * feature store). An unreadable reference is an error naming the file (references are few and
 * chosen by hand).
 */
export async function extractReferences(
  files: string[],
  backbone: Pick<Backbone, 'imageSize' | 'borderPad' | 'fuseSizes' | 'preprocess' | 'extract'>,
  opts: { batchSize?: number; decode?: (file: string) => Promise<RgbImage>; storage?: FeatureStorage; cache?: FeatureCache } = {},
): Promise<ReferenceFeatures> {
  if (files.length === 0) throw new DatasetError('no reference images');
  const store = new FeatureStore({ backbone, ...opts, badFiles: 'error', what: 'reference image' });
  const { images } = await store.extract(files.map((path) => ({ path })));
  const feats = images.map((im) => im.features);
  return { files, stages: stackStages(feats, store.dims!, store.storage), tokens: stackTokens(feats, store.tokenDim) };
}

/** Test stages [n, h, w, C] followed by the references [R, h, w, C] -> [n + R, h, w, C] per stage. */
export function appendReferences(test: StageFeatures[], refs: ReferenceFeatures): StageFeatures[] {
  if (test.length !== refs.stages.length)
    throw new Error(`reference features have ${refs.stages.length} stages, test features ${test.length}`);
  return test.map((s, l) => {
    const r = refs.stages[l]!;
    if (r.h !== s.h || r.w !== s.w || r.c !== s.c)
      throw new Error(`stage ${l}: reference features ${r.h}x${r.w}x${r.c} differ from test features ${s.h}x${s.w}x${s.c}`);
    const half = s.data instanceof Uint16Array;
    if (r.data instanceof Uint16Array !== half)
      throw new Error(
        `stage ${l}: reference features are stored as ${r.data instanceof Uint16Array ? 'float16' : 'float32'}, ` +
          `test features as ${half ? 'float16' : 'float32'}`,
      );
    const data = sharedFeatures(half ? 'float16' : 'float32', (s.n + r.n) * s.h * s.w * s.c); // shared with the compute worker
    // same storage on both sides (checked above)
    (data as Float32Array).set(s.data.subarray(0, s.n * s.h * s.w * s.c) as Float32Array, 0);
    (data as Float32Array).set(r.data as Float32Array, s.n * s.h * s.w * s.c);
    return { n: s.n + r.n, h: s.h, w: s.w, c: s.c, data };
  });
}
