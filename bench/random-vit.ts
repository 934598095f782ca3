/**
 * Random-weight CLIP ViTs in Hugging Face naming, for benchmarking graph speed and memory
 * (the real weights cannot be downloaded here). Written as a safetensors file.
 */
import { encodeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { writeFileAtomic } from '../src/io/atomic.js';

export interface VitShape {
  width: number;
  layers: number;
  patch: number;
  /** native input size the positional embedding is made for */
  native: number;
  projection: number;
}

export const VIT_B_16: VitShape = { width: 768, layers: 12, patch: 16, native: 224, projection: 512 };
export const VIT_L_14: VitShape = { width: 1024, layers: 24, patch: 14, native: 336, projection: 768 };

export async function writeRandomClip(path: string, s: VitShape, seed = 1): Promise<void> {
  let st = seed >>> 0;
  const rnd = (n: number, scale: number, offset = 0): Float32Array => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      st = (st * 1664525 + 1013904223) >>> 0;
      a[i] = offset + scale * (st / 2 ** 32 - 0.5) * 3.46; // unit variance uniform
    }
    return a;
  };
  const C = s.width,
    g = s.native / s.patch;
  const t: Record<string, TensorToWrite> = {};
  const put = (name: string, shape: number[], scale: number, offset = 0) => {
    t[name] = {
      dtype: 'F32',
      shape,
      data: rnd(
        shape.reduce((a, b) => a * b, 1),
        scale,
        offset,
      ),
    };
  };
  const p = 'vision_model.';
  put(`${p}embeddings.class_embedding`, [C], 0.5);
  put(`${p}embeddings.patch_embedding.weight`, [C, 3, s.patch, s.patch], (3 * s.patch * s.patch) ** -0.5);
  put(`${p}embeddings.position_embedding.weight`, [g * g + 1, C], 0.5);
  put(`${p}pre_layrnorm.weight`, [C], 0.1, 1);
  put(`${p}pre_layrnorm.bias`, [C], 0.1);
  for (let i = 0; i < s.layers; i++) {
    const b = `${p}encoder.layers.${i}.`;
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) {
      put(`${b}self_attn.${n}.weight`, [C, C], C ** -0.5);
      put(`${b}self_attn.${n}.bias`, [C], 0.05);
    }
    for (const n of ['layer_norm1', 'layer_norm2']) {
      put(`${b}${n}.weight`, [C], 0.1, 1);
      put(`${b}${n}.bias`, [C], 0.1);
    }
    put(`${b}mlp.fc1.weight`, [4 * C, C], C ** -0.5);
    put(`${b}mlp.fc1.bias`, [4 * C], 0.05);
    put(`${b}mlp.fc2.weight`, [C, 4 * C], (4 * C) ** -0.5);
    put(`${b}mlp.fc2.bias`, [C], 0.05);
  }
  put(`${p}post_layernorm.weight`, [C], 0.1, 1);
  put(`${p}post_layernorm.bias`, [C], 0.1);
  put('visual_projection.weight', [s.projection, C], C ** -0.5);
  await writeFileAtomic(path, encodeSafetensors(t));
}
