/**
 * The feature store (src/features/): one extraction loop for scoring runs, references and
 * `musc tokens`; cache entries verified by their sha256 checksum. A cache file whose bytes were
 * changed after writing (flipped bytes in the tensor data, an edited header, a truncated file)
 * is recomputed with a warning, and the scores equal an uncached run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, writeFile, readdir, mkdir } from 'node:fs/promises';
import { readFileSync, writeFileSync } from 'node:fs';
import { generateSynthetic } from '../src/demo/synthetic.js';
import { runDataset } from '../src/pipeline/run-dataset.js';
import { mergeSettings } from '../src/config.js';
import { FeatureStore, ImageSkipError, FeatureCache, stackStages, stackTokens, type ImageFeatures } from '../src/features/index.js';
import { extractReferences } from '../src/features/references.js';
import { SafetensorsFile, encodeSafetensors } from '../src/io/safetensors.js';
import { sha256Hex } from '../src/io/sha256.js';
import { cacheIdentity } from '../src/features/cache.js';
import { toFloat16 } from '../src/io/float16.js';
import { DatasetError } from '../src/datasets/types.js';
import { computeImageTokens } from '../src/rscin-plugin.js';
import { tempDir, writePng } from './helpers/cli-env.js';
import { fakeBackbone, fakeScorer, fakeMetrics, fakeLoader } from './helpers/cli-fakes.js';

const cacheFilesIn = async (dir: string): Promise<string[]> => {
  const out: string[] = [];
  for (const sub of await readdir(dir)) {
    for (const f of await readdir(join(dir, sub))) if (f.endsWith('.safetensors')) out.push(join(dir, sub, f));
  }
  return out.sort();
};

test('cache identity: border padding and fused sizes are part of it only when used (older entries stay valid)', () => {
  const base = { backbone: 'resnet50', weightsSha256: 'ab', imageSize: 224, stages: [2, 3], vips: '8' };
  const plain = cacheIdentity(base);
  assert.equal(cacheIdentity({ ...base, borderPad: 0, fuseSizes: [] }), plain);
  assert.notEqual(cacheIdentity({ ...base, fuseSizes: [320] }), plain);
  assert.notEqual(cacheIdentity({ ...base, fuseSizes: [320] }), cacheIdentity({ ...base, fuseSizes: [288] }));
  assert.notEqual(cacheIdentity({ ...base, borderPad: 16 }), plain);
});

test('sha256Hex hashes its parts as one stream', () => {
  assert.equal(sha256Hex(''), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(sha256Hex('ab', Buffer.from('c')), sha256Hex('abc'));
  assert.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

test('cache: a damaged cache file is recomputed with a warning; scores equal the uncached run', async () => {
  const { dir, cleanup } = await tempDir('features-cache');
  try {
    const set = await generateSynthetic(join(dir, 'data'), { size: 48, good: 8, defective: 4 });
    const run = async (out: string, extra: Record<string, unknown> = {}) => {
      const warnings: string[] = [];
      const logs: string[] = [];
      const settings = mergeSettings({}, { heatmaps: 'none', batch_size: 3, ...extra });
      const bb = fakeBackbone(32, 4);
      const res = await runDataset({
        data: set.root,
        out,
        settings,
        loadBackbone: fakeLoader(bb),
        scorer: fakeScorer(),
        metrics: fakeMetrics(),
        warn: (w) => warnings.push(w),
        log: (l) => logs.push(l),
      });
      // the 48 px synthetic masks resized to 32 px may lose a thin defect (a mask warning, not the cache's)
      const other = warnings.filter((w) => !w.includes('ground-truth mask'));
      return { res, warnings: other, logs, bb };
    };
    const plain = await run(join(dir, 'plain'), { cache: false });
    const out = join(dir, 'cached');
    const first = await run(out);
    assert.deepEqual(first.warnings, []);
    const cacheDir = join(out, '.cache', 'features');
    const files = await cacheFilesIn(cacheDir);
    assert.equal(files.length, 12);
    for (const f of files) assert.match(SafetensorsFile.open(f).metadata.sha256 ?? '', /^[0-9a-f]{64}$/);

    // 1: one byte flipped in the middle of the stage features; 2: the header's image width edited
    // (same length); 3: truncated in the middle of the tensor data
    const [flipped, edited, truncated] = [files[1]!, files[5]!, files[9]!];
    const st = SafetensorsFile.open(flipped);
    const info = st.info('stage0');
    st.close();
    const bytes = readFileSync(flipped);
    const mid = Math.floor((info.begin + info.end) / 2);
    bytes[mid] = bytes[mid]! ^ 0x10;
    writeFileSync(flipped, bytes);
    const e = readFileSync(edited, 'latin1');
    const w = /"width":"(\d+)"/.exec(e)!;
    const width = w[1]!.slice(0, -1) + (w[1]!.endsWith('1') ? '2' : '1');
    writeFileSync(edited, e.replace(w[0], `"width":"${width}"`), 'latin1');
    assert.equal(readFileSync(edited).length, e.length);
    const tb = readFileSync(truncated);
    writeFileSync(truncated, tb.subarray(0, tb.length - Math.floor(tb.length / 3)));

    const again = await run(out);
    const cacheWarnings = again.warnings.filter((x) => x.startsWith('feature cache file'));
    assert.equal(cacheWarnings.length, 3, again.warnings.join('\n'));
    const about = (file: string, re: RegExp) => cacheWarnings.some((x) => x.includes(file) && re.test(x) && /recomputed/.test(x));
    assert.ok(about(flipped, /checksum mismatch/), cacheWarnings.join('\n'));
    assert.ok(about(edited, /checksum mismatch/), cacheWarnings.join('\n'));
    assert.ok(about(truncated, /truncated|not a safetensors/), cacheWarnings.join('\n'));
    // in the category's warnings list (run.json) too
    assert.equal(again.res.results[0]!.warnings.filter((x) => x.startsWith('feature cache file')).length, 3);
    const runJson = JSON.parse(await readFile(join(out, 'surface', 'run.json'), 'utf8')) as { warnings: string[] };
    assert.equal(runJson.warnings.filter((x) => x.startsWith('feature cache file')).length, 3);
    assert.ok(
      again.logs.some((l) => /surface: features of 9 images from the cache, 3 computed/.test(l)),
      again.logs.join('\n'),
    );
    assert.deepEqual(
      again.bb.calls.reduce((a, b) => a + b, 0),
      3,
    );
    for (const f of ['scores.csv', 'maps.safetensors']) {
      const [got, want] = [await readFile(join(out, 'surface', f)), await readFile(join(dir, 'plain', 'surface', f))];
      assert.deepEqual(got, want, `${f} differs from the uncached run`);
    }
    assert.deepEqual(Array.from(again.res.results[0]!.rscinScores), Array.from(plain.res.results[0]!.rscinScores));

    // the damaged files were rewritten: a third run takes everything from the cache, silently
    const third = await run(out);
    assert.deepEqual(third.warnings, []);
    assert.ok(
      third.logs.some((l) => /features of 12 images from the cache, 0 computed/.test(l)),
      third.logs.join('\n'),
    );
    assert.equal(third.bb.calls.length, 0);
  } finally {
    await cleanup();
  }
});

test('cache entries: verified on read; damaged, truncated and unchecksummed files are corrupt, absent ones a miss', async () => {
  const { dir, cleanup } = await tempDir('features-entry');
  try {
    const cache = new FeatureCache(dir, 'id', 'float16');
    const dims = [{ h: 2, w: 3, c: 4 }];
    const stage = toFloat16(Float32Array.from({ length: 24 }, (_, k) => k / 7)); // [2, 3, 4]
    const feat: ImageFeatures = { stages: [stage], token: Float32Array.of(0.5, -2), dims, width: 30, height: 20 };
    const key = cache.key(Buffer.from('img'));
    assert.deepEqual(cache.read(key), { kind: 'miss' });
    await cache.put(key, feat);
    const hit = cache.read(key, { dims, tokenDim: 2 });
    assert.equal(hit.kind, 'hit');
    assert.deepEqual(hit.kind === 'hit' && hit.features, feat);
    // another image's shapes: not usable
    assert.equal(cache.read(key, { dims: [{ h: 2, w: 3, c: 5 }], tokenDim: 2 }).kind, 'corrupt');
    const good = readFileSync(cache.pathOf(key));
    // a flipped bit in the token
    const f = SafetensorsFile.open(cache.pathOf(key));
    const tokAt = f.info('token').begin;
    f.close();
    const bad = Buffer.from(good);
    bad[tokAt + 1] = bad[tokAt + 1]! ^ 1;
    writeFileSync(cache.pathOf(key), bad);
    const r1 = cache.read(key);
    assert.equal(r1.kind, 'corrupt');
    assert.match(r1.kind === 'corrupt' ? r1.reason : '', /checksum mismatch/);
    // truncated by one byte
    writeFileSync(cache.pathOf(key), good.subarray(0, good.length - 1));
    assert.equal(cache.read(key).kind, 'corrupt');
    // a valid safetensors file without a checksum
    const tensors = {
      stage0: { dtype: 'F16' as const, shape: [2, 3, 4], data: stage },
      token: { dtype: 'F32' as const, shape: [2], data: feat.token },
    };
    writeFileSync(cache.pathOf(key), encodeSafetensors(tensors, { width: '30', height: '20' }));
    const r2 = cache.read(key);
    assert.match(r2.kind === 'corrupt' ? r2.reason : '', /no checksum/);
    assert.equal(cache.corrupt, 4);
    assert.equal(cache.hits, 1);
  } finally {
    await cleanup();
  }
});

test('feature store: batches, bad-file policies, tokens only, cache hits skip the backbone', async () => {
  const { dir, cleanup } = await tempDir('features-store');
  try {
    const files: string[] = [];
    for (let i = 0; i < 7; i++) {
      files.push(join(dir, `${i}.png`));
      await writePng(files[i]!, 20 + i, 16, 30 * i);
    }
    const broken = join(dir, 'broken.png');
    await writeFile(broken, 'not a png');
    const list = [...files.slice(0, 3), broken, ...files.slice(3)].map((path) => ({ path, rel: path.slice(dir.length + 1) }));
    const bb = fakeBackbone(16, 4);
    const store = new FeatureStore({ backbone: bb, batchSize: 3, storage: 'float32' });
    const done: number[] = [];
    const r = await store.extract(list, (n) => done.push(n));
    assert.deepEqual(done, [3, 3, 2]);
    assert.deepEqual(bb.calls, [3, 2, 2]); // the broken file leaves its batch one short
    assert.deepEqual(
      r.images.map((im) => im.index),
      [0, 1, 2, 4, 5, 6, 7],
    );
    assert.deepEqual(
      r.skipped.map((s) => s.path),
      ['broken.png'],
    );
    assert.match(r.skipped[0]!.reason, /not an image/);
    assert.deepEqual(store.dims, [{ h: 4, w: 4, c: 3 }]);
    assert.equal(r.images[3]!.features.width, 23);
    await assert.rejects(
      new FeatureStore({ backbone: bb, badFiles: 'strict' }).extract(list),
      (e: Error) => e instanceof ImageSkipError && e.message.includes(`${broken}: `) && e.message.endsWith('(--strict)'),
    );
    await assert.rejects(
      new FeatureStore({ backbone: bb, badFiles: 'error', what: 'reference image' }).extract(list),
      (e: Error) => e instanceof DatasetError && e.message.startsWith(`reference image ${broken}: `),
    );

    // tokens only: the same tokens, no stage features; computeImageTokens is that, stacked
    const tok = await new FeatureStore({ backbone: bb, badFiles: 'error', tokensOnly: true }).extract(files.map((path) => ({ path })));
    assert.ok(tok.images.every((im) => im.features.stages.length === 0));
    const full = r.images.map((im) => im.features);
    assert.deepEqual(
      tok.images.map((im) => Array.from(im.features.token)),
      full.map((f) => Array.from(f.token)),
    );
    assert.deepEqual(await computeImageTokens(files, bb, { batchSize: 2 }), stackTokens(full, 3));

    // with a cache: the second store finds every image and never calls the backbone
    const cache = new FeatureCache(join(dir, 'cache'), 'id', 'float16');
    await mkdir(cache.dir, { recursive: true });
    const a = await new FeatureStore({ backbone: bb, cache, storage: 'float16' }).extract(list);
    const bb2 = fakeBackbone(16, 4);
    const b = await new FeatureStore({ backbone: bb2, cache, storage: 'float16' }).extract(list);
    assert.equal(bb2.calls.length, 0);
    assert.deepEqual(b.images, a.images);
    assert.deepEqual(
      b.images.map((im) => im.features.stages[0]),
      full.map((f) => toFloat16(f.stages[0] as Float32Array)),
    );
    assert.throws(() => new FeatureStore({ backbone: bb, cache, storage: 'float32' }), /feature cache keeps float16, the run float32/);

    // reference images go through the same store (and cache): stacked [R, h, w, C], unreadable ones are errors
    const refs = await extractReferences(files.slice(0, 4), bb2, { batchSize: 3, cache });
    assert.equal(bb2.calls.length, 0);
    const half = full.slice(0, 4).map((f) => ({ ...f, stages: [toFloat16(f.stages[0] as Float32Array)] }));
    assert.deepEqual(refs.stages, stackStages(half, [{ h: 4, w: 4, c: 3 }], 'float16'));
    assert.deepEqual(refs.tokens, stackTokens(full.slice(0, 4), 3));
    await assert.rejects(
      extractReferences([files[0]!, broken], bb),
      (e: Error) => e instanceof DatasetError && e.message.startsWith(`reference image ${broken}: `),
    );
  } finally {
    await cleanup();
  }
});
