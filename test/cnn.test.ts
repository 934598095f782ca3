/**
 * The CNN graph builder against naive plain-TypeScript forwards (test/helpers/resnet-tiny.ts) on
 * tiny random bottleneck ResNets, in the Keras v1 (tfjs) and torchvision (safetensors) layouts,
 * plus a WideResNet-structured one. Tolerance: max |onnx - naive| / (1 + |naive|) <= 1e-4.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildResNetGraph,
  describeResNet,
  foldBatchNorm,
  resnetFromKeras,
  resnetFromTorch,
  resnetStageShapes,
  safetensorsSource,
  RESNET50,
  WIDE_RESNET50_2,
  type ResNetNet,
} from '../src/backbones/cnn.js';
import { readTfjsModel } from '../src/backbones/tfjs.js';
import { encodeSafetensors, SafetensorsFile } from '../src/io/safetensors.js';
import { createSession, ort } from '../src/compute/session.js';
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

const TOL = 1e-4;
const dir = mkdtempSync(join(tmpdir(), 'musc-cnn-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function torchNet(tiny: TinyNet, name: string, prefix = ''): ResNetNet {
  const path = join(dir, `${name}.safetensors`);
  writeFileSync(path, encodeSafetensors(torchTensors(tiny, prefix)));
  const f = SafetensorsFile.open(path);
  try {
    return resnetFromTorch(safetensorsSource(f));
  } finally {
    f.close();
  }
}

function randomBatch(b: number, h: number, w: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return r.array(b * 3 * h * w, () => r.normal());
}

/** Runs the built graph for `batch` [B, 3, S, W] (W = S unless given) and compares every output with the naive forward. */
async function checkAgainstNaive(
  net: ResNetNet,
  tiny: TinyNet,
  forward: (n: TinyNet, img: Float32Array, S: number, W?: number) => NaiveOut,
  S: number,
  B = 2,
  W = S,
): Promise<number> {
  const g = buildResNetGraph(net, { imageSize: S, ...(W !== S ? { imageWidth: W } : {}), stages: [1, 2, 3, 4], head: true });
  const session = await createSession(g.bytes, { threads: 1 });
  const batch = randomBatch(B, S, W, 1000 + S + (W === S ? 0 : W));
  const out = await session.run({ pixels: new ort.Tensor('float32', batch, [B, 3, S, W]) });
  await session.release();
  let worst = 0;
  for (let b = 0; b < B; b++) {
    const ref = forward(tiny, batch.subarray(b * 3 * S * W, (b + 1) * 3 * S * W), S, W);
    for (const [k, s] of g.stageShapes.entries()) {
      const r = ref.layers[k];
      assert.deepEqual([s.h, s.w, s.c], [r.h, r.w, r.c], `layer${k + 1} shape`);
      const t = out[s.name];
      assert.deepEqual(t.dims, [B, s.h, s.w, s.c]);
      const n = s.h * s.w * s.c;
      worst = Math.max(worst, maxRelErr((t.data as Float32Array).subarray(b * n, (b + 1) * n), r.hwc));
    }
    const C = g.tokenDim;
    worst = Math.max(worst, maxRelErr((out.tokens.data as Float32Array).subarray(b * C, (b + 1) * C), ref.token));
    const K = g.classes;
    worst = Math.max(worst, maxRelErr((out.logits.data as Float32Array).subarray(b * K, (b + 1) * K), ref.logits));
    worst = Math.max(worst, maxRelErr((out.probs.data as Float32Array).subarray(b * K, (b + 1) * K), softmax(ref.logits)));
  }
  assert.ok(worst <= TOL, `max error ${worst} > ${TOL}`);
  return worst;
}

test('torchvision layout: graph matches the naive NCHW forward (S = 64, odd sizes at S = 40, non-square 48 x 80)', async () => {
  const tiny = randomTinyNet(TINY, 11, false);
  const net = torchNet(tiny, 'tv');
  const arch = describeResNet(net);
  assert.deepEqual(arch.blocks, TINY.blocks);
  assert.deepEqual(arch.planes, TINY.planes);
  assert.equal(arch.widthFactor, 1);
  assert.equal(arch.strideOn, 'conv2');
  const e64 = await checkAgainstNaive(net, tiny, torchForward, 64);
  const e40 = await checkAgainstNaive(net, tiny, torchForward, 40, 1);
  const eRect = await checkAgainstNaive(net, tiny, torchForward, 48, 1, 80);
  console.log(
    `torchvision tiny: max rel error ${e64.toExponential(2)} (64 px), ${e40.toExponential(2)} (40 px), ${eRect.toExponential(2)} (48 x 80)`,
  );
});

test('Keras v1 layout (tfjs model, 2 shards): graph matches the naive NHWC forward (square and 80 x 48)', async () => {
  const tiny = randomTinyNet(TINY, 12, true);
  const path = writeKerasTiny(tiny, join(dir, 'keras'), 64);
  const net = resnetFromKeras(await readTfjsModel(path));
  assert.equal(net.convention, 'keras');
  const arch = describeResNet(net);
  assert.deepEqual(arch.blocks, TINY.blocks);
  assert.equal(arch.strideOn, 'conv1');
  assert.equal(net.layers[1][0].conv1.stride, 2);
  assert.equal(net.layers[1][0].conv2.stride, 1);
  assert.deepEqual(net.stem.padding, [3, 3, 3, 3]);
  assert.deepEqual(net.pool.pads, [1, 1, 1, 1]);
  const e64 = await checkAgainstNaive(net, tiny, kerasForward, 64);
  const e40 = await checkAgainstNaive(net, tiny, kerasForward, 40, 1);
  const eRect = await checkAgainstNaive(net, tiny, kerasForward, 80, 1, 48);
  console.log(
    `keras tiny: max rel error ${e64.toExponential(2)} (64 px), ${e40.toExponential(2)} (40 px), ${eRect.toExponential(2)} (80 x 48)`,
  );
});

test('the two layouts differ only where the stride sits: same weights give different layer2+ outputs', async () => {
  // guards against a builder that ignores the stride position
  const tiny = randomTinyNet(TINY, 13, false);
  const S = 64;
  const img = randomBatch(1, S, S, 5);
  const a = torchForward(tiny, img, S);
  const net = torchNet(tiny, 'tv-stride');
  const moved: ResNetNet = {
    ...net,
    layers: net.layers.map((l) =>
      l.map((b) => (b.conv2.stride === 2 ? { ...b, conv1: { ...b.conv1, stride: 2 }, conv2: { ...b.conv2, stride: 1 } } : b)),
    ),
  };
  const g = buildResNetGraph(moved, { imageSize: S, stages: [1, 2], head: false });
  const s = await createSession(g.bytes, { threads: 1 });
  const out = await s.run({ pixels: new ort.Tensor('float32', img, [1, 3, S, S]) });
  await s.release();
  assert.ok(maxRelErr(out.layer1.data as Float32Array, a.layers[0].hwc) <= TOL, 'layer1 is unaffected');
  assert.ok(maxRelErr(out.layer2.data as Float32Array, a.layers[1].hwc) > 1e-2, 'moving the stride must change layer2');
});

test('WideResNet structure (inner width x2) through the same builder, both layouts', async () => {
  const tv = randomTinyNet(TINY_WIDE, 21, false);
  const net = torchNet(tv, 'wide', 'model.');
  const arch = describeResNet(net);
  assert.equal(arch.widthFactor, 2);
  assert.equal(net.layers[0][0].conv1.shape[0], 2 * TINY.planes[0]);
  assert.equal(net.layers[3][0].conv3.shape[0], 4 * TINY.planes[3]);
  const e = await checkAgainstNaive(net, tv, torchForward, 64);
  const ks = randomTinyNet(TINY_WIDE, 22, true);
  const kn = resnetFromKeras(await readTfjsModel(writeKerasTiny(ks, join(dir, 'keras-wide'), 64)));
  assert.equal(describeResNet(kn).widthFactor, 2);
  const e2 = await checkAgainstNaive(kn, ks, kerasForward, 64, 1);
  console.log(`wide tiny: max rel error ${e.toExponential(2)} (torchvision), ${e2.toExponential(2)} (keras)`);
});

test('torchvision loader checks the file against a requested architecture and rejects other layouts', () => {
  const tiny = randomTinyNet(TINY, 31, false);
  const path = join(dir, 'arch.safetensors');
  const tensors = torchTensors(tiny);
  writeFileSync(path, encodeSafetensors(tensors));
  const f = SafetensorsFile.open(path);
  assert.throws(
    () => resnetFromTorch(safetensorsSource(f), RESNET50),
    /arch\.safetensors: holds blocks \[2,1,1,1\].*resnet50 needs blocks \[3,4,6,3\]/,
  );
  assert.throws(() => resnetFromTorch(safetensorsSource(f), WIDE_RESNET50_2), /width factor 2/);
  f.close();

  const missing = { ...tensors };
  delete missing['layer3.0.bn2.running_var'];
  writeFileSync(path, encodeSafetensors(missing));
  const g = SafetensorsFile.open(path);
  assert.throws(() => resnetFromTorch(safetensorsSource(g)), /layer3\.0\.bn2\.running_var is missing/);
  g.close();

  const basic: typeof tensors = {};
  for (const [k, v] of Object.entries(tensors)) if (!/conv3|bn3/.test(k)) basic[k] = v;
  writeFileSync(path, encodeSafetensors(basic));
  const h = SafetensorsFile.open(path);
  assert.throws(() => resnetFromTorch(safetensorsSource(h)), /basic-block ResNets/);
  h.close();
});

test('batch-norm folding: W * gamma / sqrt(var + eps), (b - mean) * s + beta', () => {
  const w = Float32Array.from([1, 2, 3, 4]);
  const f = foldBatchNorm({
    name: 'c',
    weight: w,
    shape: [2, 2, 1, 1],
    bias: Float32Array.from([0.5, -1]),
    bn: {
      gamma: Float32Array.from([2, 3]),
      beta: Float32Array.from([0.1, 0.2]),
      mean: Float32Array.from([1, -1]),
      variance: Float32Array.from([3, 8]),
      eps: 1,
    },
    stride: 1,
    padding: [0, 0, 0, 0],
  });
  // s = [2 / 2, 3 / 3] = [1, 1]
  assert.deepEqual([...f.weight], [1, 2, 3, 4]);
  assert.ok(Math.abs(f.bias[0] - (-0.5 + 0.1)) < 1e-6 && Math.abs(f.bias[1] - 0.2) < 1e-6);
});

test('stage shapes follow the ResNet50 strides: 224 -> 56, 28, 14, 7', () => {
  const net = torchNet(randomTinyNet(TINY, 41, false), 'shapes');
  assert.deepEqual(
    resnetStageShapes(net, 224).map(([h, w]) => [h, w]),
    [
      [56, 56],
      [28, 28],
      [14, 14],
      [7, 7],
    ],
  );
  assert.deepEqual(
    resnetStageShapes(net, 320).map(([h]) => h),
    [80, 40, 20, 10],
  );
  // non-square input (height 192, width 320)
  assert.deepEqual(
    resnetStageShapes(net, 192, 320).map(([h, w]) => [h, w]),
    [
      [48, 80],
      [24, 40],
      [12, 20],
      [6, 10],
    ],
  );
});
