/**
 * ViT backbones (CLIP, DINO v1, DINOv2) as ONNX graphs, exactly as the reference feeds MuSc
 * (golden README §4). One graph per (weights, image size, stages, activation), cached on disk.
 *
 * Input `pixel_values` [B, 3, S, S]; G = floor(S / p); T = 1 + G².
 *
 *   x = concat(cls, conv_p(pixel) -> [B, G², C]) + pos'          pos' = resized pos-embed (posembed.ts)
 *   CLIP:   x = ln_pre(x)
 *   block:  x = x + ls1 * attn(norm1(x));  x = x + ls2 * mlp(norm2(x))    (ls = 1 except DINOv2)
 *   attn:   softmax((q * Dh^-0.5) kᵀ) v per head, then the output projection
 *   mlp:    fc2(act(fc1(x))),  act = erf GELU (default) or x * sigmoid(1.702 x) (CLIP 'quick_gelu')
 *
 * Outputs:
 *   stage_i  [B, G, G, C]  patch tokens after block stages[i] (CLIP: the raw residual stream;
 *                          DINO/DINOv2: the final `norm` applied, as get_intermediate_layers(norm=True))
 *   image_token [B, D]     CLIP: normalize(ln_post(x_last[:, 0]) @ proj); DINO: norm(x_last)[:, 0]
 */
import { BackboneConfigError } from './errors.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { existsSync } from 'node:fs';
import { readFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { GraphBuilder } from '../onnx/graph.js';
import { writeFileAtomic } from '../io/atomic.js';
import { RemoteModel } from '../compute/models.js';
import type { BackboneFeatures, StageFeatures } from '../core/types.js';
import type { RgbImage } from '../image/decode.js';
import type { Backbone, BackboneInfo, LoadOptions } from './types.js';
import { resizePosEmbed } from './posembed.js';
import { preprocessFor } from './preprocess.js';
import {
  loadVitWeights,
  inspectVitWeights,
  type LinearW,
  type NormW,
  type VitWeights,
  type VitFamily,
  type VitHints,
} from './vit-weights.js';
import { defaultCacheDir, fileSha256 } from './download.js';
import { sha256Hex, sha256OfFile } from '../io/sha256.js';

/** Bumped whenever the graph built for the same settings changes (invalidates cached graphs). */
export const VIT_GRAPH_VERSION = 1;

export type Activation = 'gelu' | 'quick_gelu';

export interface VitGraphSettings {
  imageSize: number;
  /** 0-based block indices */
  stages: number[];
  activation: Activation;
}

/** Grid side for an image size: conv with stride p floors (CLIP); DINO/DINOv2 need divisibility. */
export function vitGrid(family: VitFamily, imageSize: number, patch: number): number {
  if (family !== 'clip' && imageSize % patch !== 0) {
    throw new BackboneConfigError(
      `image size ${imageSize} is not a multiple of the patch size ${patch} (required by ${family === 'dino' ? 'DINO' : 'DINOv2'})`,
    );
  }
  const g = Math.floor(imageSize / patch);
  if (g < 1) throw new BackboneConfigError(`image size ${imageSize} is smaller than the patch size ${patch}`);
  return g;
}

/** The ONNX graph for the given weights and settings, before serialisation. */
export function vitGraph(w: VitWeights, s: VitGraphSettings): GraphBuilder {
  const { dim: C, heads: H, patch: p } = w;
  const Dh = C / H;
  const G = vitGrid(w.family, s.imageSize, p);
  const T = 1 + G * G;
  for (const st of s.stages) {
    if (!Number.isInteger(st) || st < 0 || st >= w.depth)
      throw new BackboneConfigError(`stage ${st} is out of range: this model has blocks 0..${w.depth - 1}`);
  }
  const g = new GraphBuilder(`vit_${w.family}`);
  const eps = w.eps;
  const x0 = g.input('pixel_values', 'float32', ['B', 3, s.imageSize, s.imageSize]);

  // y = x W^T + b. The weight is stored as given ([out, in]) behind a Transpose node, which ONNX
  // Runtime folds at load: no transposed copy of every matrix is held here (1.2 GB for a ViT-L).
  const linear = (x: string, l: LinearW, out: number, inp: number, stem: string): string => {
    const wT = g.op('Transpose', [g.constF32(l.w, [out, inp], `${stem}_w`)], { perm: [1, 0] }, `${stem}_wt`);
    return g.op('Add', [g.op('MatMul', [x, wT]), g.constF32(l.b, [out], `${stem}_b`)]);
  };
  const layerNorm = (x: string, n: NormW, stem: string): string =>
    g.op(
      'LayerNormalization',
      [x, g.constF32(n.w, [C], `${stem}_g`), g.constF32(n.b, [C], `${stem}_b`)],
      { axis: -1, epsilon: { float: eps } },
      stem,
    );

  // patch embedding: [B,3,S,S] -> [B,C,G,G] -> [B,G²,C]
  const convIn = [x0, g.constF32(w.patchW, [C, 3, p, p], 'patch_w')];
  if (w.patchB) convIn.push(g.constF32(w.patchB, [C], 'patch_b'));
  const conv = g.op('Conv', convIn, { kernel_shape: [p, p], strides: [p, p] }, 'patch');
  const tokens = g.op('Transpose', [g.op('Reshape', [conv, g.constI64([0, C, G * G])])], { perm: [0, 2, 1] });
  // class token expanded to [B,1,C]
  const batch = g.op('Slice', [g.op('Shape', [x0]), g.constI64([0]), g.constI64([1])]);
  const clsShape = g.op('Concat', [batch, g.constI64([1, C])], { axis: 0 });
  const cls = g.op('Expand', [g.constF32(w.cls, [1, 1, C], 'cls'), clsShape]);
  let x = g.op('Concat', [cls, tokens], { axis: 1 });
  const pos = resizePosEmbed(w.pos, C, G, w.family === 'clip' ? 'clip' : 'dino');
  x = g.op('Add', [x, g.constF32(pos, [1, T, C], 'pos')]);
  if (w.preNorm) x = layerNorm(x, w.preNorm, 'ln_pre');

  const scale = g.scalar(1 / Math.sqrt(Dh), 'attn_scale');
  const idx = [0, 1, 2].map((i) => g.constI64([i], [], `qkv${i}`));
  const headsShape = g.constI64([0, T, 3, H, Dh]);
  const mergeShape = g.constI64([0, T, C]);
  const sqrt2 = g.scalar(Math.SQRT2, 'sqrt2');
  const one = g.scalar(1, 'one');
  const half = g.scalar(0.5, 'half');
  const qg = g.scalar(1.702, 'quick_gelu');

  const stageOut = new Map<number, string>();
  for (let i = 0; i < w.depth; i++) {
    const b = w.blocks[i];
    // attention
    const h = layerNorm(x, b.norm1, `b${i}_norm1`);
    const qkvW = new Float32Array(3 * C * C);
    qkvW.set(b.q.w, 0);
    qkvW.set(b.k.w, C * C);
    qkvW.set(b.v.w, 2 * C * C);
    const qkvB = new Float32Array(3 * C);
    qkvB.set(b.q.b, 0);
    qkvB.set(b.k.b, C);
    qkvB.set(b.v.b, 2 * C);
    const qkv = linear(h, { w: qkvW, b: qkvB }, 3 * C, C, `b${i}_qkv`); // [B,T,3C]
    const qkv5 = g.op('Transpose', [g.op('Reshape', [qkv, headsShape])], { perm: [2, 0, 3, 1, 4] }); // [3,B,H,T,Dh]
    const q = g.op('Mul', [g.op('Gather', [qkv5, idx[0]], { axis: 0 }), scale]);
    const k = g.op('Transpose', [g.op('Gather', [qkv5, idx[1]], { axis: 0 })], { perm: [0, 1, 3, 2] }); // [B,H,Dh,T]
    const v = g.op('Gather', [qkv5, idx[2]], { axis: 0 });
    const attn = g.op('Softmax', [g.op('MatMul', [q, k])], { axis: -1 }); // [B,H,T,T]
    const ctx = g.op('Reshape', [g.op('Transpose', [g.op('MatMul', [attn, v])], { perm: [0, 2, 1, 3] }), mergeShape]);
    let a = linear(ctx, b.o, C, C, `b${i}_proj`);
    if (b.ls1) a = g.op('Mul', [a, g.constF32(b.ls1, [C], `b${i}_ls1`)]);
    x = g.op('Add', [x, a]);
    // MLP
    const h2 = layerNorm(x, b.norm2, `b${i}_norm2`);
    const f1 = linear(h2, b.fc1, w.mlpDim, C, `b${i}_fc1`);
    const act =
      s.activation === 'quick_gelu'
        ? g.op('Mul', [f1, g.op('Sigmoid', [g.op('Mul', [f1, qg])])])
        : g.op('Mul', [g.op('Mul', [f1, g.op('Add', [g.op('Erf', [g.op('Div', [f1, sqrt2])]), one])]), half]);
    let m = linear(act, b.fc2, C, w.mlpDim, `b${i}_fc2`);
    if (b.ls2) m = g.op('Mul', [m, g.constF32(b.ls2, [C], `b${i}_ls2`)]);
    x = g.op('Add', [x, m], {}, `block${i}`);
    stageOut.set(i, x);
  }

  // stage outputs: patch tokens [B,G,G,C]
  const patchStart = g.constI64([1]);
  const patchEnd = g.constI64([T]);
  const axis1 = g.constI64([1]);
  const gridShape = g.constI64([0, G, G, C]);
  const finalNorm: NormW | null = w.family === 'clip' ? null : w.norm;
  s.stages.forEach((st, i) => {
    let y = stageOut.get(st)!;
    if (finalNorm) y = layerNorm(y, finalNorm, `stage${i}_norm`);
    const patches = g.op('Slice', [y, patchStart, patchEnd, axis1]);
    g.output(g.op('Reshape', [patches, gridShape]), 'float32', ['B', G, G, C], `stage_${i}`);
  });

  // image token
  const last = stageOut.get(w.depth - 1)!;
  const zero = g.constI64([0], [], 'tok0');
  if (w.family === 'clip') {
    if (!w.proj || !w.projDim) throw new Error('CLIP weights without a projection');
    const pooled = layerNorm(g.op('Gather', [last, zero], { axis: 1 }), w.norm, 'ln_post'); // [B,C]
    const feat = g.op('MatMul', [pooled, g.constF32(w.proj, [C, w.projDim], 'proj')]); // [B,D]
    const nrm = g.op('ReduceL2', [feat], { axes: [1], keepdims: 1 });
    g.output(g.op('Div', [feat, g.op('Max', [nrm, g.scalar(1e-12, 'l2eps')])]), 'float32', ['B', w.projDim], 'image_token');
  } else {
    const tok = layerNorm(g.op('Gather', [last, zero], { axis: 1 }), w.norm, 'cls_norm');
    g.output(tok, 'float32', ['B', C], 'image_token');
  }
  return g;
}

// ---------------------------------------------------------------------------------------------

/** A registry entry for a ViT (BackboneInfo plus architecture hints). */
export interface VitInfo extends BackboneInfo {
  family: VitFamily;
  /** attention heads (default: from the config, else width / 64) */
  heads?: number;
  /** native input size of the weights; OpenAI CLIP runs QuickGELU there (see `activation`) */
  nativeSize?: number;
  /** OpenAI CLIP weights: the reference runs QuickGELU only at the native size, erf GELU elsewhere (§7.2) */
  quickGeluAtNative?: boolean;
}

export interface VitLoadOptions extends LoadOptions {
  /** attention heads, e.g. for open_clip weights with a non-64 head width */
  heads?: number;
  /** HF config.json (object or path): num_attention_heads, layer_norm_eps */
  config?: Record<string, unknown> | string;
  /** intra-op threads of the ONNX session */
  threads?: number;
  /** do not read or write the graph cache */
  noGraphCache?: boolean;
}

let modelCounter = 0;

/** Resolves the settings without reading tensor data (fails fast on bad stages / sizes). */
export function resolveVitSettings(info: VitInfo, opts: VitLoadOptions, weightsPath: string): VitGraphSettings & { grid: number } {
  const h = inspectVitWeights(weightsPath, info.family);
  const imageSize = opts.imageSize ?? info.imageSize;
  const grid = vitGrid(h.family, imageSize, h.patch);
  const stages = opts.stages ?? info.stages;
  if (stages.length === 0) throw new BackboneConfigError('at least one stage is needed');
  for (const st of stages) {
    if (!Number.isInteger(st) || st < 0 || st >= h.depth) {
      throw new BackboneConfigError(`backbone ${info.name}: stage ${st} is out of range; ${weightsPath} has blocks 0..${h.depth - 1}`);
    }
  }
  const native = info.nativeSize ?? h.nativeGrid * h.patch;
  const activation: Activation = opts.activation ?? (info.quickGeluAtNative && imageSize === native ? 'quick_gelu' : 'gelu');
  return { imageSize, stages: [...stages], activation, grid };
}

/** Loads a ViT backbone from a local weight file (opts.weightsPath, required). */
export async function loadVit(info: VitInfo, opts: VitLoadOptions): Promise<Backbone> {
  const weightsPath = opts.weightsPath;
  if (!weightsPath) throw new BackboneConfigError(`backbone ${info.name}: no weight file given`);
  const settings = resolveVitSettings(info, opts, weightsPath);
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const config =
    typeof opts.config === 'string' ? (JSON.parse(await readFile(opts.config, 'utf8')) as Record<string, unknown>) : opts.config;
  const hints: VitHints = { family: info.family, heads: opts.heads ?? info.heads, config };
  const sha = await fileSha256(weightsPath, { cacheDir });
  const keyText = JSON.stringify({
    v: VIT_GRAPH_VERSION,
    sha,
    s: settings.imageSize,
    st: settings.stages,
    a: settings.activation,
    h: hints.heads ?? null,
    cfg: config ?? null,
  });
  const key = sha256Hex(keyText).slice(0, 32);

  let model: Uint8Array | string | null = opts.noGraphCache ? null : await cachedGraph(cacheDir, key);
  let outDim = 0;
  let dim = 0;
  if (model === null) {
    // the stored file is loaded by path rather than sending the bytes to the worker (a copy of
    // the whole model); the weights and the bytes are garbage once buildAndStore returns
    const built = await buildAndStore(weightsPath, hints, settings, opts.noGraphCache ? null : { cacheDir, key });
    ({ dim, outDim } = built);
    model = built.model;
    collectGarbage(); // the weight arrays, before ONNX Runtime loads its own copy
  } else {
    const meta = JSON.parse(await readFile(join(cacheDir, 'graphs', `${key}.json`), 'utf8')) as { dim: number; outDim: number };
    dim = meta.dim;
    outDim = meta.outDim;
  }
  const remote = await RemoteModel.load(`vit:${info.name}:${key}:${++modelCounter}`, model, {
    device: opts.device ?? 'cpu',
    threads: opts.threads,
  });
  return new VitBackbone(
    { ...info, imageSize: settings.imageSize, stages: settings.stages },
    settings,
    settings.grid,
    dim,
    outDim,
    weightsPath,
    sha,
    remote,
  );
}

/**
 * A full garbage collection, so that large unreachable typed arrays (model weights) are freed
 * before native code allocates as much again: V8 does not see ONNX Runtime's allocations and
 * may otherwise keep them around. (The flag is set at run time; `gc` is taken from a new context.)
 */
function collectGarbage(): void {
  try {
    setFlagsFromString('--expose-gc');
    (runInNewContext('gc') as () => void)();
  } catch {
    // not essential
  }
}

/** Builds the graph from the weight file and stores it in the graph cache (bytes kept only when not stored). */
async function buildAndStore(
  weightsPath: string,
  hints: VitHints,
  settings: VitGraphSettings,
  store: { cacheDir: string; key: string } | null,
): Promise<{ dim: number; outDim: number; model: Uint8Array | string }> {
  const w = loadVitWeights(weightsPath, hints);
  const dims = { dim: w.dim, outDim: w.family === 'clip' ? w.projDim! : w.dim };
  const g = vitGraph(w, settings);
  if (store && (await storeGraph(store.cacheDir, store.key, g, dims)))
    return { ...dims, model: join(store.cacheDir, 'graphs', `${store.key}.onnx`) };
  return { ...dims, model: g.toBytes() };
}

interface GraphMeta {
  /** sha256 of the .onnx file and of its external data file (.onnx.data) */
  sha256: string;
  dataSha256: string;
  dataBytes: number;
  dim: number;
  outDim: number;
}

/** A cached graph's path, or null when absent or corrupt (checksum mismatch: it is rebuilt). */
async function cachedGraph(cacheDir: string, key: string): Promise<string | null> {
  const onnx = join(cacheDir, 'graphs', `${key}.onnx`);
  const metaPath = join(cacheDir, 'graphs', `${key}.json`);
  if (!existsSync(onnx) || !existsSync(metaPath)) return null;
  try {
    const meta = JSON.parse(await readFile(metaPath, 'utf8')) as GraphMeta;
    if ((await sha256OfFile(onnx)) !== meta.sha256) return null;
    if (!meta.dataSha256 || (await sha256OfFile(`${onnx}.data`)) !== meta.dataSha256) return null;
    return onnx;
  } catch {
    return null;
  }
}

/** Stores a built graph; false when the cache cannot be written (the graph is then rebuilt next time). */
async function storeGraph(cacheDir: string, key: string, g: GraphBuilder, dims: { dim: number; outDim: number }): Promise<boolean> {
  try {
    await mkdir(join(cacheDir, 'graphs'), { recursive: true });
    // weights go to an external data file, written straight from the weight arrays: the model is
    // never serialised into one buffer (a ViT-L would need 1.2 GB more at its peak)
    const w = g.writeExternal(join(cacheDir, 'graphs', `${key}.onnx`));
    const meta: GraphMeta = { sha256: w.onnxSha256, dataSha256: w.dataSha256, dataBytes: w.dataBytes, ...dims };
    await writeFileAtomic(join(cacheDir, 'graphs', `${key}.json`), JSON.stringify(meta));
    return true;
  } catch {
    return false;
  }
}

class VitBackbone implements Backbone {
  constructor(
    readonly info: VitInfo,
    private readonly settings: VitGraphSettings,
    private readonly grid: number,
    private readonly dim: number,
    private readonly outDim: number,
    readonly weightsPath: string,
    readonly weightsSha256: string,
    private readonly model: RemoteModel,
  ) {}

  get imageSize(): number {
    return this.settings.imageSize;
  }
  get stages(): number[] {
    return [...this.settings.stages];
  }
  /** every block's output has the model's width */
  get stageChannels(): number[] {
    return this.settings.stages.map(() => this.dim);
  }

  async preprocess(img: RgbImage): Promise<Float32Array> {
    return preprocessFor(this.info.family, img, this.settings.imageSize);
  }

  async extract(batch: Float32Array, b: number): Promise<BackboneFeatures> {
    const S = this.settings.imageSize;
    if (batch.length !== b * 3 * S * S) throw new Error(`extract: batch has ${batch.length} values, expected ${b}x3x${S}x${S}`);
    const out = await this.model.run({ pixel_values: { type: 'float32', dims: [b, 3, S, S], data: batch } });
    const G = this.grid;
    const stages: StageFeatures<Float32Array>[] = this.settings.stages.map((_, i) => ({
      n: b,
      h: G,
      w: G,
      c: this.dim,
      data: out[`stage_${i}`].data as Float32Array,
    }));
    const tok = out.image_token;
    return { stages, imageTokens: { n: b, d: this.outDim, data: tok.data as Float32Array } };
  }

  dispose(): Promise<void> {
    return this.model.dispose();
  }
}
