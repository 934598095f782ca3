/**
 * Reader for TensorFlow.js "layers-model" files (what `tensorflowjs_converter` writes for a Keras
 * model): a `model.json` with the Keras functional topology and a `weightsManifest`, plus binary
 * weight shards.
 *
 *   model.json = {
 *     format: 'layers-model',
 *     modelTopology: { model_config: { class_name: 'Model'|'Functional', config: {
 *       layers: [{ name, class_name, config, inbound_nodes: [[[src, nodeIdx, tensorIdx, kwargs], ...]] }],
 *       input_layers, output_layers } } },
 *     weightsManifest: [{ paths: ['group1-shard1of25.bin', ...], weights: [{ name, shape, dtype, quantization? }] }]
 *   }
 *
 * Within one manifest group the shards are concatenated in `paths` order and the weights are laid
 * out back to back in `weights` order (row-major, little-endian). Keras conventions are kept as is:
 * Conv2D kernels are HWIO [kh, kw, in, out], Dense kernels [in, out], BatchNormalization weights
 * `gamma`, `beta`, `moving_mean`, `moving_variance`. No TensorFlow code is used.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { halfBitsToFloat } from '../io/float16.js';

/** One Keras layer of the functional topology. */
export interface TfjsLayer {
  name: string;
  className: string;
  config: Record<string, unknown>;
  /** names of the layers feeding this one (first inbound node) */
  inbound: string[];
}

/** A float tensor of the model with its (Keras) shape. */
export interface TfjsTensor {
  data: Float32Array;
  shape: number[];
}

export interface TfjsModel {
  /** path of model.json */
  path: string;
  /** every file of the model, model.json first, then the shards in manifest order */
  files: string[];
  /** e.g. 'keras v2.2.4-tf' */
  generatedBy?: string;
  layers: TfjsLayer[];
  /** layer name -> layer */
  layerByName: Map<string, TfjsLayer>;
  inputLayers: string[];
  outputLayers: string[];
  /** weight name ('res2a_branch2a/kernel', 'bn_conv1/gamma', ...) -> tensor */
  weights: Map<string, TfjsTensor>;
  /** sha256 (hex) of the bytes of model.json followed by every shard in manifest order */
  sha256: string;
}

export class TfjsModelError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = 'TfjsModelError';
  }
}

interface ManifestEntry {
  name: string;
  shape: number[];
  dtype: string;
  quantization?: { dtype: string; scale?: number; min?: number; original_dtype?: string };
}

interface ManifestGroup {
  paths: string[];
  weights: ManifestEntry[];
}

const QUANT_BYTES: Record<string, number> = { uint8: 1, uint16: 2, float16: 2 };

/** Reads model.json and its shards; every weight is returned as float32. */
export async function readTfjsModel(modelJsonPath: string): Promise<TfjsModel> {
  const path = resolve(modelJsonPath);
  let json: Record<string, unknown>;
  const hash = createHash('sha256');
  try {
    const bytes = await readFile(path);
    hash.update(bytes);
    json = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new TfjsModelError(path, `cannot read model.json: ${(e as Error).message}`);
  }
  if (json.format !== undefined && json.format !== 'layers-model') {
    throw new TfjsModelError(path, `format '${String(json.format)}' is not a tfjs layers-model (graph models are not supported)`);
  }
  const { layers, inputLayers, outputLayers } = parseTopology(path, json.modelTopology);
  const manifest = json.weightsManifest;
  if (!Array.isArray(manifest)) throw new TfjsModelError(path, 'missing weightsManifest');

  const dir = dirname(path);
  const files = [path];
  const weights = new Map<string, TfjsTensor>();
  for (const [gi, g] of (manifest as ManifestGroup[]).entries()) {
    if (!Array.isArray(g.paths) || !Array.isArray(g.weights)) throw new TfjsModelError(path, `weightsManifest[${gi}] needs 'paths' and 'weights'`);
    const parts: Buffer[] = [];
    for (const p of g.paths) {
      const f = resolve(dir, p);
      files.push(f);
      try {
        const shard = await readFile(f);
        hash.update(shard);
        parts.push(shard);
      } catch (e) {
        throw new TfjsModelError(path, `weight shard ${p}: ${(e as Error).message}`);
      }
    }
    const buf = Buffer.concat(parts);
    let off = 0;
    for (const w of g.weights) {
      const count = w.shape.reduce((a, b) => a * b, 1);
      const q = w.quantization;
      const bytesPer = q ? QUANT_BYTES[q.dtype] : w.dtype === 'float32' || w.dtype === 'int32' ? 4 : 0;
      if (!bytesPer) throw new TfjsModelError(path, `weight ${w.name}: unsupported dtype ${q ? `quantized ${q.dtype}` : w.dtype}`);
      const nbytes = count * bytesPer;
      if (off + nbytes > buf.length) {
        throw new TfjsModelError(path, `weight ${w.name} [${w.shape}] runs past the end of group ${gi} (${buf.length} bytes in ${g.paths.length} shards)`);
      }
      const data = decodeWeight(buf, off, count, w);
      if (weights.has(w.name)) throw new TfjsModelError(path, `duplicate weight name ${w.name}`);
      weights.set(w.name, { data, shape: [...w.shape] });
      off += nbytes;
    }
    if (off !== buf.length) throw new TfjsModelError(path, `group ${gi}: ${buf.length - off} bytes left after the last weight (manifest and shards disagree)`);
  }
  return {
    path,
    files,
    generatedBy: typeof json.generatedBy === 'string' ? json.generatedBy : undefined,
    layers,
    layerByName: new Map(layers.map((l) => [l.name, l])),
    inputLayers,
    outputLayers,
    weights,
    sha256: hash.digest('hex'),
  };
}

function decodeWeight(buf: Buffer, off: number, count: number, w: ManifestEntry): Float32Array {
  const q = w.quantization;
  if (!q && w.dtype === 'float32') {
    // little-endian float32 on a little-endian host (x86, arm): copy the bytes into a fresh, aligned buffer
    const bytes = new Uint8Array(count * 4);
    bytes.set(buf.subarray(off, off + count * 4));
    return new Float32Array(bytes.buffer);
  }
  const out = new Float32Array(count);
  const dv = new DataView(buf.buffer, buf.byteOffset + off, buf.length - off);
  if (!q) {
    for (let i = 0; i < count; i++) out[i] = dv.getInt32(4 * i, true);
    return out;
  }
  if (q.dtype === 'float16') {
    for (let i = 0; i < count; i++) out[i] = halfBitsToFloat(dv.getUint16(2 * i, true));
    return out;
  }
  // affine quantization: value = q * scale + min
  const scale = q.scale ?? 1;
  const min = q.min ?? 0;
  if (q.dtype === 'uint8') for (let i = 0; i < count; i++) out[i] = dv.getUint8(i) * scale + min;
  else for (let i = 0; i < count; i++) out[i] = dv.getUint16(2 * i, true) * scale + min;
  return out;
}

function parseTopology(path: string, topo: unknown): { layers: TfjsLayer[]; inputLayers: string[]; outputLayers: string[] } {
  const t = topo as { model_config?: { class_name?: string; config?: Record<string, unknown> } } | undefined;
  const mc = t?.model_config;
  if (!mc?.config) throw new TfjsModelError(path, 'missing modelTopology.model_config');
  if (mc.class_name !== 'Model' && mc.class_name !== 'Functional') {
    throw new TfjsModelError(path, `model class ${String(mc.class_name)} is not a Keras functional model`);
  }
  const raw = mc.config.layers;
  if (!Array.isArray(raw)) throw new TfjsModelError(path, 'model_config.config.layers is missing');
  const layers: TfjsLayer[] = raw.map((l: Record<string, unknown>, i: number) => {
    const name = (l.name ?? (l.config as Record<string, unknown> | undefined)?.name) as string | undefined;
    if (typeof name !== 'string' || typeof l.class_name !== 'string') throw new TfjsModelError(path, `layer #${i} has no name or class_name`);
    const nodes = (l.inbound_nodes ?? []) as unknown[];
    const inbound: string[] = [];
    if (nodes.length > 1) throw new TfjsModelError(path, `layer ${name} is shared (${nodes.length} inbound nodes); not supported`);
    if (nodes.length === 1) {
      const node = nodes[0];
      // Keras 2: [[src, nodeIdx, tensorIdx, kwargs], ...]; Keras 3: {args: [{config: {keras_history: [src, ..]}}]}
      if (Array.isArray(node)) for (const e of node as unknown[][]) inbound.push(String(e[0]));
      else throw new TfjsModelError(path, `layer ${name}: unsupported inbound_nodes format`);
    }
    return { name, className: l.class_name, config: (l.config ?? {}) as Record<string, unknown>, inbound };
  });
  const names = (v: unknown): string[] => (Array.isArray(v) ? v.map((e) => String((e as unknown[])[0])) : []);
  return { layers, inputLayers: names(mc.config.input_layers), outputLayers: names(mc.config.output_layers) };
}
