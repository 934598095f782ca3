import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readdirSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { loadVit, type VitInfo, type VitLoadOptions } from '../src/backbones/vit.js';
import { loadVitWeights, detectNaming, WeightFormatError } from '../src/backbones/vit-weights.js';
import type { Backbone } from '../src/backbones/types.js';
import { GOLDEN } from './helpers/paths.js';
import { refForward, type RefVit } from './helpers/vit-reference.js';

const cacheDir = mkdtempSync(join(tmpdir(), 'musc-vit-test-'));
after(async () => {
  await shutdownCompute();
  rmSync(cacheDir, { recursive: true, force: true });
});

function readAll(file: string, names: string[]): Record<string, { data: Float32Array; shape: number[] }> {
  const f = SafetensorsFile.open(resolve(GOLDEN, file));
  try {
    return Object.fromEntries(names.map((n) => [n, f.float32(n)]));
  } finally {
    f.close();
  }
}

const inputs = readAll('bottle10.inputs.safetensors', ['clip_input', 'dino_input']);

const tinyInfo = (family: 'clip' | 'dinov2' | 'dino'): VitInfo => ({
  name: `${family}-tiny`,
  family,
  description: 'golden tiny model',
  imageSize: 84,
  stages: [0, 1, 2, 3],
  patchSize: 14,
  weights: { repo: 'local', file: 'x' },
});

/** Compares stage outputs [10,6,6,C] with golden patch_tokens [4,10,37,C] tokens 1..36, and the image token. */
async function checkGolden(bb: Backbone, input: Float32Array, outFile: string, label: string): Promise<void> {
  const ref = readAll(outFile, ['patch_tokens', 'class_tokens']);
  const [L, N, T, C] = ref.patch_tokens.shape;
  assert.deepEqual([L, N, T], [4, 10, 37]);
  const feats = await bb.extract(input, 10);
  assert.equal(feats.stages.length, 4);
  let maxStage = 0;
  for (let l = 0; l < 4; l++) {
    const s = feats.stages[l];
    assert.deepEqual([s.n, s.h, s.w, s.c], [10, 6, 6, C]);
    for (let n = 0; n < N; n++) {
      for (let p = 0; p < 36; p++) {
        for (let c = 0; c < C; c++) {
          const a = s.data[(n * 36 + p) * C + c];
          const b = ref.patch_tokens.data[((l * N + n) * T + 1 + p) * C + c];
          maxStage = Math.max(maxStage, Math.abs(a - b));
        }
      }
    }
  }
  const D = ref.class_tokens.shape[1];
  assert.equal(feats.imageTokens.n, 10);
  assert.equal(feats.imageTokens.d, D);
  let maxTok = 0;
  for (let i = 0; i < 10 * D; i++) maxTok = Math.max(maxTok, Math.abs(feats.imageTokens.data[i] - ref.class_tokens.data[i]));
  console.log(`${label}: stage tokens max abs err ${maxStage.toExponential(3)}, image token ${maxTok.toExponential(3)}`);
  assert.ok(maxStage <= 1e-4, `${label}: stage max abs err ${maxStage}`);
  assert.ok(maxTok <= 1e-4, `${label}: image token max abs err ${maxTok}`);
}

const cases: Array<[string, 'clip' | 'dinov2', string, VitLoadOptions]> = [
  ['clip_tiny.openclip.safetensors', 'clip', 'clip_tiny.outputs.safetensors', { heads: 4 }],
  ['clip_tiny.hf.safetensors', 'clip', 'clip_tiny.outputs.safetensors', { config: resolve(GOLDEN, 'clip_tiny.hf_config.json') }],
  ['dinov2_tiny.dinov2.safetensors', 'dinov2', 'dinov2_tiny.outputs.safetensors', { heads: 4 }],
  ['dinov2_tiny.hf.safetensors', 'dinov2', 'dinov2_tiny.outputs.safetensors', { config: resolve(GOLDEN, 'dinov2_tiny.hf_config.json') }],
];

for (const [file, family, outFile, extra] of cases) {
  test(`golden parity at 84 px, stages [0,1,2,3]: ${file}`, async () => {
    const bb = await loadVit(tinyInfo(family), { ...extra, weightsPath: resolve(GOLDEN, file), cacheDir, threads: 2 });
    try {
      assert.equal(bb.imageSize, 84);
      await checkGolden(bb, family === 'clip' ? inputs.clip_input.data : inputs.dino_input.data, outFile, file);
    } finally {
      await bb.dispose();
    }
  });
}

test('naming detection and canonical weights agree between open_clip and HF CLIP namings', () => {
  const a = loadVitWeights(resolve(GOLDEN, 'clip_tiny.openclip.safetensors'), { heads: 4 });
  const b = loadVitWeights(resolve(GOLDEN, 'clip_tiny.hf.safetensors'), { heads: 4 });
  assert.equal(a.naming, 'openclip');
  assert.equal(b.naming, 'hf-clip');
  assert.deepEqual([a.dim, a.depth, a.patch, a.nativeGrid, a.mlpDim, a.projDim], [64, 4, 14, 4, 256, 32]);
  assert.deepEqual(a.blocks[3].v.w, b.blocks[3].v.w);
  assert.deepEqual(a.proj, b.proj);
  const d = loadVitWeights(resolve(GOLDEN, 'dinov2_tiny.hf.safetensors'));
  assert.equal(d.family, 'dinov2');
  assert.equal(d.eps, 1e-6);
  assert.ok(d.blocks[0].ls1);
  assert.equal(detectNaming(['foo.weight']), null);
});

test('clear errors: wrong family, missing tensor, stage out of range', async () => {
  assert.throws(() => loadVitWeights(resolve(GOLDEN, 'dinov2_tiny.dinov2.safetensors'), { family: 'clip' }), /is not a CLIP ViT/);
  // drop one tensor from the open_clip file
  const f = SafetensorsFile.open(resolve(GOLDEN, 'clip_tiny.openclip.safetensors'));
  const t: Record<string, TensorToWrite> = {};
  for (const n of f.names())
    if (n !== 'visual.transformer.resblocks.2.mlp.c_fc.bias') t[n] = { dtype: 'F32', shape: f.info(n).shape, data: f.float32(n).data };
  f.close();
  const broken = join(cacheDir, 'broken.safetensors');
  await writeSafetensors(broken, t);
  assert.throws(
    () => loadVitWeights(broken, { heads: 4 }),
    (e: Error) =>
      e instanceof WeightFormatError &&
      /missing tensor visual\.transformer\.resblocks\.2\.mlp\.c_fc\.bias/.test(e.message) &&
      e.message.includes(broken),
  );
  await assert.rejects(
    loadVit({ ...tinyInfo('clip'), stages: [4] }, { weightsPath: resolve(GOLDEN, 'clip_tiny.openclip.safetensors'), cacheDir }),
    /stage 4 is out of range/,
  );
  await assert.rejects(
    loadVit({ ...tinyInfo('dinov2'), imageSize: 80 }, { weightsPath: resolve(GOLDEN, 'dinov2_tiny.dinov2.safetensors'), cacheDir }),
    /not a multiple of the patch size 14/,
  );
});

test('graph cache: reused when intact, rebuilt when corrupt', async () => {
  const dir = mkdtempSync(join(cacheDir, 'gc-'));
  const opts = { heads: 4, weightsPath: resolve(GOLDEN, 'dinov2_tiny.dinov2.safetensors'), cacheDir: dir, stages: [1, 3] };
  const a = await loadVit(tinyInfo('dinov2'), opts);
  const x = inputs.dino_input.data.subarray(0, 2 * 3 * 84 * 84);
  const fa = await a.extract(x, 2);
  assert.deepEqual(a.stageChannels, [fa.stages[0]!.c, fa.stages[1]!.c]); // the width, known before extraction
  await a.dispose();
  const onnx = readdirSync(join(dir, 'graphs')).filter((n) => n.endsWith('.onnx'));
  assert.equal(onnx.length, 1);
  const p = join(dir, 'graphs', onnx[0]);
  const good = readFileSync(p);
  // intact: reused, not rewritten
  const before = statSync(p).mtimeMs;
  await new Promise((r) => setTimeout(r, 20));
  await (await loadVit(tinyInfo('dinov2'), opts)).dispose();
  assert.equal(statSync(p).mtimeMs, before, 'intact graph reused');
  const bad = Buffer.from(good);
  bad[bad.length >> 1] ^= 0xff;
  writeFileSync(p, bad);
  const b = await loadVit(tinyInfo('dinov2'), opts);
  const fb = await b.extract(x, 2);
  await b.dispose();
  assert.deepEqual(readFileSync(p), good, 'corrupt graph was rebuilt');
  assert.deepEqual(fb.stages[1].data, fa.stages[1].data);
  assert.deepEqual(fb.imageTokens.data, fa.imageTokens.data);
});

// ---------- DINO v1: tiny random model vs an independent TS forward ----------

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function tinyDino(seed: number): RefVit {
  const r = rng(seed);
  const gauss = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  const mk = (n: number, sc: number, base = 0) => Float32Array.from({ length: n }, () => base + sc * gauss());
  const C = 32,
    H = 4,
    M = 64,
    p = 7,
    g0 = 4;
  const blocks = Array.from({ length: 3 }, () => ({
    n1w: mk(C, 0.1, 1),
    n1b: mk(C, 0.1),
    qkvW: mk(3 * C * C, C ** -0.5),
    qkvB: mk(3 * C, 0.05),
    projW: mk(C * C, C ** -0.5),
    projB: mk(C, 0.05),
    n2w: mk(C, 0.1, 1),
    n2b: mk(C, 0.1),
    fc1W: mk(M * C, C ** -0.5),
    fc1B: mk(M, 0.05),
    fc2W: mk(C * M, M ** -0.5),
    fc2B: mk(C, 0.05),
  }));
  return {
    C,
    H,
    M,
    p,
    eps: 1e-6,
    patchW: mk(C * 3 * p * p, (3 * p * p) ** -0.5),
    patchB: mk(C, 0.05),
    cls: mk(C, 0.5),
    pos: mk((1 + g0 * g0) * C, 0.5),
    blocks,
    normW: mk(C, 0.1, 1),
    normB: mk(C, 0.1),
  };
}

/** Writes the model with HF ViTModel naming (facebook/dino-vitb16 layout). */
async function writeHfVit(m: RefVit, path: string): Promise<void> {
  const C = m.C;
  const t: Record<string, TensorToWrite> = {};
  const put = (n: string, shape: number[], data: Float32Array) => (t[n] = { dtype: 'F32', shape, data });
  put('embeddings.cls_token', [1, 1, C], m.cls);
  put('embeddings.position_embeddings', [1, m.pos.length / C, C], m.pos);
  put('embeddings.patch_embeddings.projection.weight', [C, 3, m.p, m.p], m.patchW);
  put('embeddings.patch_embeddings.projection.bias', [C], m.patchB);
  m.blocks.forEach((b, i) => {
    const p = `encoder.layer.${i}.`;
    put(p + 'layernorm_before.weight', [C], b.n1w);
    put(p + 'layernorm_before.bias', [C], b.n1b);
    ['query', 'key', 'value'].forEach((q, j) => {
      put(p + `attention.attention.${q}.weight`, [C, C], b.qkvW.slice(j * C * C, (j + 1) * C * C));
      put(p + `attention.attention.${q}.bias`, [C], b.qkvB.slice(j * C, (j + 1) * C));
    });
    put(p + 'attention.output.dense.weight', [C, C], b.projW);
    put(p + 'attention.output.dense.bias', [C], b.projB);
    put(p + 'layernorm_after.weight', [C], b.n2w);
    put(p + 'layernorm_after.bias', [C], b.n2b);
    put(p + 'intermediate.dense.weight', [m.M, C], b.fc1W);
    put(p + 'intermediate.dense.bias', [m.M], b.fc1B);
    put(p + 'output.dense.weight', [C, m.M], b.fc2W);
    put(p + 'output.dense.bias', [C], b.fc2B);
  });
  put('layernorm.weight', [C], m.normW);
  put('layernorm.bias', [C], m.normB);
  put('pooler.dense.weight', [C, C], new Float32Array(C * C));
  await writeSafetensors(path, t);
}

for (const S of [28, 42]) {
  test(`DINO v1 (HF ViTModel naming) tiny model at ${S} px vs an independent TS forward (1e-4)`, async () => {
    const m = tinyDino(7);
    const path = join(cacheDir, 'dino_tiny.hf.safetensors');
    await writeHfVit(m, path);
    const info: VitInfo = { ...tinyInfo('dino'), imageSize: S, stages: [0, 2] };
    const bb = await loadVit(info, { weightsPath: path, cacheDir, heads: 4 });
    const r = rng(99);
    const B = 2;
    const x = Float32Array.from({ length: B * 3 * S * S }, () => 2 * r() - 1);
    const feats = await bb.extract(x, B);
    await bb.dispose();
    const G = S / 7;
    let err = 0;
    for (let n = 0; n < B; n++) {
      const ref = refForward(m, x.subarray(n * 3 * S * S, (n + 1) * 3 * S * S), S, [0, 2]);
      for (let si = 0; si < 2; si++) {
        const s = feats.stages[si];
        assert.deepEqual([s.n, s.h, s.w, s.c], [B, G, G, 32]);
        const per = G * G * 32;
        for (let i = 0; i < per; i++) err = Math.max(err, Math.abs(s.data[n * per + i] - ref.stages[si][i]));
      }
      for (let c = 0; c < 32; c++) err = Math.max(err, Math.abs(feats.imageTokens.data[n * 32 + c] - ref.cls[c]));
    }
    console.log(`dino v1 tiny @${S}: max abs err ${err.toExponential(3)}`);
    assert.ok(err <= 1e-4, `max abs err ${err}`);
  });
}
