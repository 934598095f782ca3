/**
 * Argsort of large score arrays without a JS comparator.
 *
 * Each element i becomes one 64-bit word `(key32 << 32) | i` where key32 is an order-preserving
 * unsigned image of float32 bits (sign flipped for positives, all bits inverted for negatives).
 * The words are written through a Uint32Array view and sorted by the engine's native
 * BigUint64Array sort (no BigInt is created). For Float32 scores key32 is the whole float, so the
 * order is exact. For Float64 scores key32 is that of Math.fround(score); rounding to float32 is
 * monotonic, so only runs sharing one float32 image can be out of order, and those (short, except
 * for exact ties, which are left alone) are then sorted by the full double.
 *
 * Memory: 8 bytes per element while sorting; the returned index array is a view on that buffer.
 */

/** Throws if any score is NaN or infinite (sklearn's `check_array` rejects them too). */
export function assertFinite(scores: ArrayLike<number>, what: string): void {
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i];
    if (!Number.isFinite(v)) throw new RangeError(`${what}[${i}] is ${v}; scores must be finite`);
  }
}

/** Order-preserving map of the upper/only 32 float bits to an unsigned key. */
function key32(bits: number): number {
  return (bits & 0x80000000) !== 0 ? ~bits >>> 0 : (bits | 0x80000000) >>> 0;
}

/**
 * Indices [n] that sort `scores` ascending (the order among equal scores is unspecified;
 * -0 sorts just before +0).
 */
export function argsortAscending(scores: Float32Array | Float64Array): Uint32Array {
  const n = scores.length;
  if (n >= 2 ** 32) throw new RangeError(`cannot sort ${n} elements (max 2^32-1)`);
  const buf = new ArrayBuffer(8 * n);
  const words = new Uint32Array(buf); // little-endian: words[2j] = low (index), words[2j+1] = high (key)
  const big = new BigUint64Array(buf);
  if (scores instanceof Float32Array) {
    const bits = new Uint32Array(scores.buffer, scores.byteOffset, n);
    for (let i = 0; i < n; i++) {
      words[2 * i] = i;
      words[2 * i + 1] = key32(bits[i]);
    }
    big.sort();
  } else {
    const f32 = new Float32Array(1);
    const u32 = new Uint32Array(f32.buffer);
    for (let i = 0; i < n; i++) {
      f32[0] = scores[i];
      words[2 * i] = i;
      words[2 * i + 1] = key32(u32[0]);
    }
    big.sort();
    fixRuns(words, scores, n);
  }
  // compact the indices into the first n words (reads at 2j happen before any write reaches 2j)
  for (let j = 0; j < n; j++) words[j] = words[2 * j];
  return new Uint32Array(buf, 0, n);
}

/** Within each run of equal float32 keys, sorts the indices by the full double value. */
function fixRuns(words: Uint32Array, scores: Float64Array, n: number): void {
  let a = 0;
  while (a < n) {
    const key = words[2 * a + 1];
    let b = a + 1;
    while (b < n && words[2 * b + 1] === key) b++;
    const len = b - a;
    if (len === 2) {
      const i0 = words[2 * a];
      const i1 = words[2 * a + 2];
      if (scores[i0] > scores[i1]) {
        words[2 * a] = i1;
        words[2 * a + 2] = i0;
      }
    } else if (len > 2 && len <= 32) {
      for (let j = a + 1; j < b; j++) {
        const idx = words[2 * j];
        const v = scores[idx];
        let m = j - 1;
        while (m >= a && scores[words[2 * m]] > v) {
          words[2 * (m + 1)] = words[2 * m];
          m--;
        }
        words[2 * (m + 1)] = idx;
      }
    } else if (len > 32) {
      // long runs are almost always exact ties: check before sorting
      let sorted = true;
      for (let j = a + 1; j < b && sorted; j++) sorted = scores[words[2 * (j - 1)]] <= scores[words[2 * j]];
      if (!sorted) {
        const idx = new Uint32Array(len);
        for (let j = 0; j < len; j++) idx[j] = words[2 * (a + j)];
        idx.sort((p, q) => scores[p] - scores[q]);
        for (let j = 0; j < len; j++) words[2 * (a + j)] = idx[j];
      }
    }
    a = b;
  }
}
