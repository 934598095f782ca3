/**
 * ViT weight files -> one canonical, naming-independent set of tensors.
 *
 * Supported namings (detected from the tensor names):
 * - 'openclip'  : open_clip `CLIP.state_dict()` (`visual.conv1.weight`, `visual.transformer.resblocks.{i}.*`)
 * - 'hf-clip'   : HF CLIPVisionModelWithProjection / CLIPModel (`vision_model.*`, `visual_projection.weight`)
 * - 'dinov2'    : official dinov2 / DINO (`patch_embed.proj.*`, `blocks.{i}.*`; LayerScale `ls1.gamma` => DINOv2)
 * - 'hf-dinov2' : HF Dinov2Model (`embeddings.*`, `encoder.layer.{i}.*`, `layer_scale1.lambda1`)
 * - 'hf-vit'    : HF ViTModel, e.g. facebook/dino-vitb16 (`encoder.layer.{i}.layernorm_before`, ...)
 *
 * Linear weights stay in PyTorch layout [out, in] (y = x Wᵀ + b); fused qkv / in_proj matrices
 * [3C, C] are split into q, k, v rows [0:C], [C:2C], [2C:3C]. Only the needed tensors are read,
 * by offset; F16/BF16 are widened to F32 by the reader.
 */
import { SafetensorsFile } from '../io/safetensors.js';

export type VitFamily = 'clip' | 'dino' | 'dinov2';
export type VitNaming = 'openclip' | 'hf-clip' | 'dinov2' | 'hf-dinov2' | 'hf-vit';

export interface LinearW {
  /** [out, in] */
  w: Float32Array;
  /** [out] */
  b: Float32Array;
}
export interface NormW {
  w: Float32Array;
  b: Float32Array;
}

export interface VitBlockWeights {
  norm1: NormW;
  q: LinearW;
  k: LinearW;
  v: LinearW;
  /** attention output projection [C, C] */
  o: LinearW;
  norm2: NormW;
  /** [M, C] */
  fc1: LinearW;
  /** [C, M] */
  fc2: LinearW;
  /** DINOv2 LayerScale γ [C] */
  ls1?: Float32Array;
  ls2?: Float32Array;
}

export interface VitWeights {
  family: VitFamily;
  naming: VitNaming;
  /** width C */
  dim: number;
  depth: number;
  heads: number;
  patch: number;
  mlpDim: number;
  /** native grid side g0 (positional embedding has 1 + g0² rows) */
  nativeGrid: number;
  eps: number;
  /** [C, 3, p, p] */
  patchW: Float32Array;
  /** [C] (DINO); CLIP's conv1 has no bias */
  patchB?: Float32Array;
  /** [C] */
  cls: Float32Array;
  /** [1 + g0², C], row 0 = class token */
  pos: Float32Array;
  /** CLIP ln_pre */
  preNorm?: NormW;
  blocks: VitBlockWeights[];
  /** CLIP ln_post / DINO final norm */
  norm: NormW;
  /** CLIP projection [C, D] (pooled @ proj) */
  proj?: Float32Array;
  projDim?: number;
}

/** Optional architecture hints: an HF config.json object and/or explicit values. */
export interface VitHints {
  heads?: number;
  eps?: number;
  /** HF config.json (num_attention_heads, layer_norm_eps are used) */
  config?: Record<string, unknown>;
  /** expected family, for clear errors ("is not a CLIP ViT") */
  family?: VitFamily;
}

export class WeightFormatError extends Error {
  constructor(readonly file: string, message: string) {
    super(message);
    this.name = 'WeightFormatError';
  }
}

const FAMILY_TEXT: Record<VitFamily, string> = { clip: 'CLIP ViT', dino: 'DINO ViT', dinov2: 'DINOv2 ViT' };

/** Finds the naming (and any key prefix, e.g. 'vit.' or 'model.') from the tensor names. */
export function detectNaming(names: string[]): { naming: VitNaming; prefix: string; family: VitFamily } | null {
  const find = (suffix: string): string | null => {
    for (const n of names) if (n === suffix || n.endsWith('.' + suffix)) return n.slice(0, n.length - suffix.length);
    return null;
  };
  const openclip = find('visual.conv1.weight');
  if (openclip !== null) return { naming: 'openclip', prefix: openclip + 'visual.', family: 'clip' };
  const hfClip = find('vision_model.embeddings.patch_embedding.weight');
  if (hfClip !== null) return { naming: 'hf-clip', prefix: hfClip, family: 'clip' };
  const visual = find('conv1.weight');
  if (visual !== null && names.some((n) => n.includes('transformer.resblocks.'))) return { naming: 'openclip', prefix: visual, family: 'clip' };
  const hf = find('embeddings.patch_embeddings.projection.weight');
  if (hf !== null) {
    if (names.some((n) => n.startsWith(hf + 'encoder.layer.0.layer_scale1.'))) return { naming: 'hf-dinov2', prefix: hf, family: 'dinov2' };
    if (names.some((n) => n.startsWith(hf + 'encoder.layer.0.norm1.'))) return { naming: 'hf-dinov2', prefix: hf, family: 'dinov2' };
    return { naming: 'hf-vit', prefix: hf, family: 'dino' };
  }
  const timm = find('patch_embed.proj.weight');
  if (timm !== null && names.some((n) => n.startsWith(timm + 'blocks.0.'))) {
    const ls = names.some((n) => n.startsWith(timm + 'blocks.0.ls1.'));
    return { naming: 'dinov2', prefix: timm, family: ls ? 'dinov2' : 'dino' };
  }
  return null;
}

/** Reads and maps a ViT weight file. Throws WeightFormatError naming the file and the problem. */
export function loadVitWeights(path: string, hints: VitHints = {}): VitWeights {
  const f = SafetensorsFile.open(path);
  try {
    return mapWeights(f, hints);
  } finally {
    f.close();
  }
}

function mapWeights(f: SafetensorsFile, hints: VitHints): VitWeights {
  const names = f.names();
  const det = detectNaming(names);
  const what = hints.family ? FAMILY_TEXT[hints.family] : 'ViT (CLIP, DINO or DINOv2)';
  if (!det) {
    throw new WeightFormatError(f.path, `weight file ${f.path} is not a ${what}: no known patch-embedding tensor (looked for open_clip 'visual.conv1.weight', HF 'vision_model.embeddings.patch_embedding.weight', 'embeddings.patch_embeddings.projection.weight' or dinov2 'patch_embed.proj.weight')`);
  }
  if (hints.family && hints.family !== det.family) {
    throw new WeightFormatError(f.path, `weight file ${f.path} is not a ${FAMILY_TEXT[hints.family]}: its tensors are ${det.naming} naming of a ${FAMILY_TEXT[det.family]}`);
  }
  const fam = FAMILY_TEXT[det.family];
  const P = det.prefix;
  const get = (name: string, shape?: number[]): Float32Array => {
    const full = P + name;
    if (!f.has(full)) throw new WeightFormatError(f.path, `weight file ${f.path} is not a ${fam} (${det.naming} naming): missing tensor ${full}`);
    const info = f.info(full);
    if (shape) {
      const n = shape.reduce((a, b) => a * b, 1);
      const got = info.shape.reduce((a, b) => a * b, 1);
      if (got !== n) throw new WeightFormatError(f.path, `weight file ${f.path}: tensor ${full} has shape [${info.shape}], expected [${shape}] (wrong architecture?)`);
    }
    return f.float32(full).data;
  };
  const shapeOf = (name: string): number[] => {
    const full = P + name;
    if (!f.has(full)) throw new WeightFormatError(f.path, `weight file ${f.path} is not a ${fam} (${det.naming} naming): missing tensor ${full}`);
    return f.info(full).shape;
  };
  const countBlocks = (re: RegExp): number => {
    let n = 0;
    for (const name of names) {
      if (!name.startsWith(P)) continue;
      const m = re.exec(name.slice(P.length));
      if (m) n = Math.max(n, Number(m[1]) + 1);
    }
    return n;
  };
  const cfg = hints.config ?? {};
  const cfgNum = (k: string): number | undefined => (typeof cfg[k] === 'number' ? (cfg[k] as number) : undefined);
  const norm = (base: string, c: number): NormW => ({ w: get(`${base}.weight`, [c]), b: get(`${base}.bias`, [c]) });
  const lin = (base: string, out: number, inp: number, bias = true): LinearW => ({
    w: get(`${base}.weight`, [out, inp]),
    b: bias ? get(`${base}.bias`, [out]) : new Float32Array(out),
  });
  const splitLin = (wName: string, bName: string, c: number): [LinearW, LinearW, LinearW] => {
    const w = get(wName, [3 * c, c]);
    const b = get(bName, [3 * c]);
    return [0, 1, 2].map((i) => ({ w: w.slice(i * c * c, (i + 1) * c * c), b: b.slice(i * c, (i + 1) * c) })) as [LinearW, LinearW, LinearW];
  };

  let patchName: string;
  let clsName: string;
  let posName: string;
  switch (det.naming) {
    case 'openclip': patchName = 'conv1.weight'; clsName = 'class_embedding'; posName = 'positional_embedding'; break;
    case 'hf-clip': patchName = 'vision_model.embeddings.patch_embedding.weight'; clsName = 'vision_model.embeddings.class_embedding'; posName = 'vision_model.embeddings.position_embedding.weight'; break;
    case 'dinov2': patchName = 'patch_embed.proj.weight'; clsName = 'cls_token'; posName = 'pos_embed'; break;
    default: patchName = 'embeddings.patch_embeddings.projection.weight'; clsName = 'embeddings.cls_token'; posName = 'embeddings.position_embeddings';
  }
  const ps = shapeOf(patchName);
  if (ps.length !== 4 || ps[1] !== 3 || ps[2] !== ps[3]) {
    throw new WeightFormatError(f.path, `weight file ${f.path}: patch embedding ${P + patchName} has shape [${ps}], expected [C, 3, p, p]`);
  }
  const dim = ps[0];
  const patch = ps[2];
  const posShape = shapeOf(posName);
  const posRows = posShape.reduce((a, b) => a * b, 1) / dim;
  const g0 = Math.round(Math.sqrt(posRows - 1));
  if (!Number.isInteger(posRows) || g0 * g0 !== posRows - 1) {
    throw new WeightFormatError(f.path, `weight file ${f.path}: positional embedding ${P + posName} has shape [${posShape}], expected [1 + g², ${dim}]`);
  }

  const blocks: VitBlockWeights[] = [];
  let depth: number;
  let mlpDim: number;
  const family = det.family;
  if (det.naming === 'openclip') {
    depth = countBlocks(/^transformer\.resblocks\.(\d+)\./);
    mlpDim = depth > 0 ? shapeOf('transformer.resblocks.0.mlp.c_fc.weight')[0] : 0;
    for (let i = 0; i < depth; i++) {
      const b = `transformer.resblocks.${i}`;
      const [q, k, v] = splitLin(`${b}.attn.in_proj_weight`, `${b}.attn.in_proj_bias`, dim);
      blocks.push({
        norm1: norm(`${b}.ln_1`, dim), q, k, v, o: lin(`${b}.attn.out_proj`, dim, dim),
        norm2: norm(`${b}.ln_2`, dim), fc1: lin(`${b}.mlp.c_fc`, mlpDim, dim), fc2: lin(`${b}.mlp.c_proj`, dim, mlpDim),
      });
    }
  } else if (det.naming === 'hf-clip') {
    depth = countBlocks(/^vision_model\.encoder\.layers\.(\d+)\./);
    mlpDim = depth > 0 ? shapeOf('vision_model.encoder.layers.0.mlp.fc1.weight')[0] : 0;
    for (let i = 0; i < depth; i++) {
      const b = `vision_model.encoder.layers.${i}`;
      blocks.push({
        norm1: norm(`${b}.layer_norm1`, dim),
        q: lin(`${b}.self_attn.q_proj`, dim, dim), k: lin(`${b}.self_attn.k_proj`, dim, dim), v: lin(`${b}.self_attn.v_proj`, dim, dim),
        o: lin(`${b}.self_attn.out_proj`, dim, dim),
        norm2: norm(`${b}.layer_norm2`, dim), fc1: lin(`${b}.mlp.fc1`, mlpDim, dim), fc2: lin(`${b}.mlp.fc2`, dim, mlpDim),
      });
    }
  } else if (det.naming === 'dinov2') {
    depth = countBlocks(/^blocks\.(\d+)\./);
    mlpDim = depth > 0 ? shapeOf('blocks.0.mlp.fc1.weight')[0] : 0;
    for (let i = 0; i < depth; i++) {
      const b = `blocks.${i}`;
      const [q, k, v] = splitLin(`${b}.attn.qkv.weight`, `${b}.attn.qkv.bias`, dim);
      blocks.push({
        norm1: norm(`${b}.norm1`, dim), q, k, v, o: lin(`${b}.attn.proj`, dim, dim),
        norm2: norm(`${b}.norm2`, dim), fc1: lin(`${b}.mlp.fc1`, mlpDim, dim), fc2: lin(`${b}.mlp.fc2`, dim, mlpDim),
        ...(family === 'dinov2' ? { ls1: get(`${b}.ls1.gamma`, [dim]), ls2: get(`${b}.ls2.gamma`, [dim]) } : {}),
      });
    }
  } else if (det.naming === 'hf-dinov2') {
    depth = countBlocks(/^encoder\.layer\.(\d+)\./);
    mlpDim = depth > 0 ? shapeOf('encoder.layer.0.mlp.fc1.weight')[0] : 0;
    for (let i = 0; i < depth; i++) {
      const b = `encoder.layer.${i}`;
      blocks.push({
        norm1: norm(`${b}.norm1`, dim),
        q: lin(`${b}.attention.attention.query`, dim, dim), k: lin(`${b}.attention.attention.key`, dim, dim), v: lin(`${b}.attention.attention.value`, dim, dim),
        o: lin(`${b}.attention.output.dense`, dim, dim),
        norm2: norm(`${b}.norm2`, dim), fc1: lin(`${b}.mlp.fc1`, mlpDim, dim), fc2: lin(`${b}.mlp.fc2`, dim, mlpDim),
        ls1: get(`${b}.layer_scale1.lambda1`, [dim]), ls2: get(`${b}.layer_scale2.lambda1`, [dim]),
      });
    }
  } else {
    depth = countBlocks(/^encoder\.layer\.(\d+)\./);
    mlpDim = depth > 0 ? shapeOf('encoder.layer.0.intermediate.dense.weight')[0] : 0;
    for (let i = 0; i < depth; i++) {
      const b = `encoder.layer.${i}`;
      blocks.push({
        norm1: norm(`${b}.layernorm_before`, dim),
        q: lin(`${b}.attention.attention.query`, dim, dim), k: lin(`${b}.attention.attention.key`, dim, dim), v: lin(`${b}.attention.attention.value`, dim, dim),
        o: lin(`${b}.attention.output.dense`, dim, dim),
        norm2: norm(`${b}.layernorm_after`, dim), fc1: lin(`${b}.intermediate.dense`, mlpDim, dim), fc2: lin(`${b}.output.dense`, dim, mlpDim),
      });
    }
  }
  if (depth === 0) throw new WeightFormatError(f.path, `weight file ${f.path} is not a ${fam} (${det.naming} naming): no transformer blocks found`);

  const isClip = family === 'clip';
  const heads = hints.heads ?? cfgNum('num_attention_heads') ?? Math.max(1, Math.round(dim / 64));
  if (dim % heads !== 0) throw new WeightFormatError(f.path, `weight file ${f.path}: width ${dim} is not divisible by ${heads} attention heads`);
  const eps = hints.eps ?? cfgNum('layer_norm_eps') ?? (isClip ? 1e-5 : 1e-6);

  const w: VitWeights = {
    family, naming: det.naming, dim, depth, heads, patch, mlpDim, nativeGrid: g0, eps,
    patchW: get(patchName, [dim, 3, patch, patch]),
    cls: get(clsName, [dim]),
    pos: get(posName, [posRows, dim]),
    blocks,
    norm: { w: new Float32Array(0), b: new Float32Array(0) },
  };
  if (det.naming === 'openclip') {
    w.preNorm = norm('ln_pre', dim);
    w.norm = norm('ln_post', dim);
    const ps2 = shapeOf('proj');
    if (ps2.length !== 2 || ps2[0] !== dim) throw new WeightFormatError(f.path, `weight file ${f.path}: ${P}proj has shape [${ps2}], expected [${dim}, D]`);
    w.proj = get('proj');
    w.projDim = ps2[1];
  } else if (det.naming === 'hf-clip') {
    w.preNorm = norm('vision_model.pre_layrnorm', dim);
    w.norm = norm('vision_model.post_layernorm', dim);
    const ps2 = shapeOf('visual_projection.weight');
    if (ps2.length !== 2 || ps2[1] !== dim) throw new WeightFormatError(f.path, `weight file ${f.path}: ${P}visual_projection.weight has shape [${ps2}], expected [D, ${dim}]`);
    // HF stores projᵀ [D, C]; transpose to [C, D]
    const t = get('visual_projection.weight');
    const D = ps2[0];
    const proj = new Float32Array(dim * D);
    for (let d = 0; d < D; d++) for (let c = 0; c < dim; c++) proj[c * D + d] = t[d * dim + c];
    w.proj = proj;
    w.projDim = D;
  } else {
    w.patchB = get(det.naming === 'dinov2' ? 'patch_embed.proj.bias' : 'embeddings.patch_embeddings.projection.bias', [dim]);
    w.norm = norm(det.naming === 'dinov2' ? 'norm' : 'layernorm', dim);
  }
  return w;
}

/** Architecture facts read from the header only (no tensor data): for validating options before any work. */
export interface VitHeaderInfo {
  family: VitFamily;
  naming: VitNaming;
  dim: number;
  depth: number;
  patch: number;
  nativeGrid: number;
}

export function inspectVitWeights(path: string, family?: VitFamily): VitHeaderInfo {
  const f = SafetensorsFile.open(path);
  try {
    const names = f.names();
    const det = detectNaming(names);
    const what = family ? FAMILY_TEXT[family] : 'ViT (CLIP, DINO or DINOv2)';
    if (!det) throw new WeightFormatError(path, `weight file ${path} is not a ${what}: no known patch-embedding tensor`);
    if (family && family !== det.family) {
      throw new WeightFormatError(path, `weight file ${path} is not a ${FAMILY_TEXT[family]}: its tensors are ${det.naming} naming of a ${FAMILY_TEXT[det.family]}`);
    }
    const P = det.prefix;
    const patchName = { openclip: 'conv1.weight', 'hf-clip': 'vision_model.embeddings.patch_embedding.weight', dinov2: 'patch_embed.proj.weight', 'hf-dinov2': 'embeddings.patch_embeddings.projection.weight', 'hf-vit': 'embeddings.patch_embeddings.projection.weight' }[det.naming];
    const posName = { openclip: 'positional_embedding', 'hf-clip': 'vision_model.embeddings.position_embedding.weight', dinov2: 'pos_embed', 'hf-dinov2': 'embeddings.position_embeddings', 'hf-vit': 'embeddings.position_embeddings' }[det.naming];
    const blockRe = { openclip: /^transformer\.resblocks\.(\d+)\./, 'hf-clip': /^vision_model\.encoder\.layers\.(\d+)\./, dinov2: /^blocks\.(\d+)\./, 'hf-dinov2': /^encoder\.layer\.(\d+)\./, 'hf-vit': /^encoder\.layer\.(\d+)\./ }[det.naming];
    const ps = f.info(P + patchName).shape;
    if (!f.has(P + posName)) throw new WeightFormatError(path, `weight file ${path} is not a ${FAMILY_TEXT[det.family]} (${det.naming} naming): missing tensor ${P + posName}`);
    const rows = f.info(P + posName).shape.reduce((a, b) => a * b, 1) / ps[0];
    let depth = 0;
    for (const n of names) {
      if (!n.startsWith(P)) continue;
      const m = blockRe.exec(n.slice(P.length));
      if (m) depth = Math.max(depth, Number(m[1]) + 1);
    }
    return { family: det.family, naming: det.naming, dim: ps[0], depth, patch: ps[2], nativeGrid: Math.round(Math.sqrt(rows - 1)) };
  } finally {
    f.close();
  }
}
