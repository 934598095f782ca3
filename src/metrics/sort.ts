/**
 * Argsort of large score arrays without a JS comparator.
 *
 * Each element i becomes one 64-bit word `(key32 << 32) | i` where key32 is an order-preserving
 * unsigned image of the score's float bits (sign flipped for positives, all bits inverted for
 * negatives). The words are written through a Uint32Array view and sorted by the engine's native
 * BigUint64Array sort (no BigInt is created). For Float32 scores key32 is the whole float, so the
 * order is exact. For Float64 scores key32 is the top half of the double; runs that share it are
 * then re-sorted by the low half, which makes the order exact too.
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
 * Indices [n] that sort `scores` ascending (ties in index order, except inside Float64 runs that
 * share their upper 32 bits, where tie order is unspecified). -0 sorts just before +0.
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
    const bits = new Uint32Array(scores.buffer, scores.byteOffset, 2 * n); // [lo, hi] per double
    for (let i = 0; i < n; i++) {
      words[2 * i] = i;
      words[2 * i + 1] = key32(bits[2 * i + 1]);
    }
    big.sort();
    fixLowHalves(words, bits, n);
  }
  // compact the indices into the first n words (reads at 2j happen before any write reaches 2j)
  for (let j = 0; j < n; j++) words[j] = words[2 * j];
  return new Uint32Array(buf, 0, n);
}

/** Within each run of equal upper keys, sorts by the low 32 bits of the double. */
function fixLowHalves(words: Uint32Array, bits: Uint32Array, n: number): void {
  let tmp: BigUint64Array | null = null;
  let tmpWords: Uint32Array | null = null;
  let a = 0;
  while (a < n) {
    const hi = words[2 * a + 1];
    let b = a + 1;
    while (b < n && words[2 * b + 1] === hi) b++;
    const len = b - a;
    if (len > 1) {
      // negative doubles (key < 2^31) order by inverted low bits
      const neg = hi < 0x80000000;
      const lowKey = (i: number): number => (neg ? ~bits[2 * i] >>> 0 : bits[2 * i]);
      if (len <= 32) {
        // insertion sort by low key
        for (let j = a + 1; j < b; j++) {
          const idx = words[2 * j];
          const k = lowKey(idx);
          let m = j - 1;
          while (m >= a && lowKey(words[2 * m]) > k) {
            words[2 * (m + 1)] = words[2 * m];
            m--;
          }
          words[2 * (m + 1)] = idx;
        }
      } else {
        let allSame = true;
        const k0 = lowKey(words[2 * a]);
        for (let j = a + 1; j < b && allSame; j++) allSame = lowKey(words[2 * j]) === k0;
        if (!allSame) {
          if (tmp === null || tmp.length < len) {
            tmp = new BigUint64Array(Math.max(len, 1024));
            tmpWords = new Uint32Array(tmp.buffer);
          }
          const tw = tmpWords!;
          for (let j = 0; j < len; j++) {
            const idx = words[2 * (a + j)];
            tw[2 * j] = idx;
            tw[2 * j + 1] = lowKey(idx);
          }
          tmp.subarray(0, len).sort();
          for (let j = 0; j < len; j++) words[2 * (a + j)] = tw[2 * j];
        }
      }
    }
    a = b;
  }
}
