/**
 * IEEE 754 half precision (binary16) storage for float32 values. Node 20 has no Float16Array,
 * so half values are kept as their bit patterns in a Uint16Array (the layout ONNX Runtime and
 * safetensors use for float16 too).
 *
 * Encoding rounds to nearest, ties to even, with subnormals, overflow to +-Infinity and NaN kept
 * (bit-identical to ONNX Runtime's Cast to float16; see test/float16.test.ts). Decoding is exact
 * (every half value is a float32 value) and goes through a 65536-entry table.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** One float32 value to its nearest half-precision bit pattern. */
export function float32ToHalfBits(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Infinity, NaN
  const e = exp - 112; // exponent rebiased from 127 to 15
  if (e >= 0x1f) return sign | 0x7c00; // too large: Infinity
  if (e <= 0) {
    // half subnormal (or zero): the value in units of 2^-24 is (1.mant) * 2^(exp - 126)
    if (e < -10) return sign; // below half of the smallest subnormal
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++; // may carry into the smallest normal: right
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // may carry into the exponent (up to Infinity): right
  return sign | h;
}

/** One half-precision bit pattern to its value. */
export function halfBitsToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

let table: Float32Array | null = null;

/** float32 [n] -> half bit patterns [n] (into `out` when given). */
export function toFloat16(src: Float32Array, out: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (out.length !== src.length) throw new Error(`toFloat16: output holds ${out.length} values, input ${src.length}`);
  for (let i = 0; i < src.length; i++) out[i] = float32ToHalfBits(src[i]!);
  return out;
}

/** half bit patterns [n] -> float32 [n] (into `out` when given). */
export function fromFloat16(src: Uint16Array, out: Float32Array = new Float32Array(src.length)): Float32Array {
  if (out.length !== src.length) throw new Error(`fromFloat16: output holds ${out.length} values, input ${src.length}`);
  if (!table) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = halfBitsToFloat(h);
  }
  const t = table;
  for (let i = 0; i < src.length; i++) out[i] = t[src[i]!]!;
  return out;
}
