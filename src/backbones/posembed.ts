/**
 * Positional-embedding resizing, exactly as the reference does it (golden README §7.3, §7.4).
 *
 * Both resize the [g0, g0, C] grid of patch embeddings with PyTorch's bicubic upsampling
 * (align_corners = False, A = -0.75, source indices clamped to the border, no antialias):
 *
 *   src(dst) = (dst + 0.5) * scale - 0.5,  i0 = floor(src),  t = src - i0
 *   out[dst] = Σ_{j=-1..2} w_j(t) * in[clamp(i0 + j, 0, g0 - 1)]
 *
 * - CLIP (open_clip `resize_pos_embed`, size-based): scale = g0 / g.
 * - DINO / DINOv2 (`interpolate_pos_encoding`, scale-factor based): the factor given to
 *   F.interpolate is (g + 0.1) / g0, so scale = g0 / (g + 0.1) while the output size is g.
 *
 * The class-token row (row 0) is kept unchanged. When g == g0 no resize happens at all.
 */

export type PosEmbedMode = 'clip' | 'dino';

/** PyTorch's cubic convolution weights for offset t in [0, 1), A = -0.75. */
function cubicWeights(t: number, A = -0.75): [number, number, number, number] {
  const c1 = (x: number) => ((A + 2) * x - (A + 3)) * x * x + 1; // |x| <= 1
  const c2 = (x: number) => ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; // 1 < |x| < 2
  return [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)];
}

/** One axis: for each output index, 4 clamped source indices and their weights. */
function axisTaps(inSize: number, outSize: number, scale: number): { idx: Int32Array; w: Float64Array } {
  const idx = new Int32Array(outSize * 4);
  const w = new Float64Array(outSize * 4);
  for (let o = 0; o < outSize; o++) {
    const src = (o + 0.5) * scale - 0.5;
    const i0 = Math.floor(src);
    const ws = cubicWeights(src - i0);
    for (let j = 0; j < 4; j++) {
      idx[o * 4 + j] = Math.min(Math.max(i0 - 1 + j, 0), inSize - 1);
      w[o * 4 + j] = ws[j];
    }
  }
  return { idx, w };
}

/**
 * Bicubic resize of a channels-last grid [g0, g0, C] to [g, g, C] with the given source scale.
 */
export function bicubicGrid(grid: Float32Array, g0: number, c: number, g: number, scale: number): Float32Array {
  if (grid.length !== g0 * g0 * c) throw new Error(`bicubicGrid: grid has ${grid.length} values, expected ${g0}x${g0}x${c}`);
  const ax = axisTaps(g0, g, scale);
  const out = new Float32Array(g * g * c);
  const acc = new Float64Array(c);
  for (let oy = 0; oy < g; oy++) {
    for (let ox = 0; ox < g; ox++) {
      acc.fill(0);
      for (let jy = 0; jy < 4; jy++) {
        const iy = ax.idx[oy * 4 + jy];
        const wy = ax.w[oy * 4 + jy];
        for (let jx = 0; jx < 4; jx++) {
          const ix = ax.idx[ox * 4 + jx];
          const wxy = wy * ax.w[ox * 4 + jx];
          const base = (iy * g0 + ix) * c;
          for (let k = 0; k < c; k++) acc[k] += wxy * grid[base + k];
        }
      }
      const ob = (oy * g + ox) * c;
      for (let k = 0; k < c; k++) out[ob + k] = acc[k];
    }
  }
  return out;
}

/**
 * Resizes a positional embedding [1 + g0², C] (row 0 = class token) to [1 + g², C].
 * Throws when the row count is not 1 + a square.
 */
export function resizePosEmbed(pos: Float32Array, c: number, g: number, mode: PosEmbedMode): Float32Array {
  const rows = pos.length / c;
  const g0 = Math.round(Math.sqrt(rows - 1));
  if (!Number.isInteger(rows) || g0 * g0 !== rows - 1) {
    throw new Error(`positional embedding has ${rows} rows of ${c}; expected 1 + a square number (class token + grid)`);
  }
  if (g === g0) return pos.slice();
  const scale = mode === 'clip' ? g0 / g : g0 / (g + 0.1);
  const grid = bicubicGrid(pos.subarray(c), g0, c, g, scale);
  const out = new Float32Array((1 + g * g) * c);
  out.set(pos.subarray(0, c), 0);
  out.set(grid, c);
  return out;
}
