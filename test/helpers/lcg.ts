/** Seeded test data: a 32-bit linear congruential generator (glibc constants by default). */

/** Uniform values in [0, 1): s <- (s * a + c) mod 2^32, value s / 2^32. Deterministic per seed. */
export function lcg(seed: number, a = 1103515245, c = 12345): () => number {
  let s = seed;
  return () => {
    s = (s * a + c) >>> 0;
    return s / 2 ** 32;
  };
}

/** Uniform values in [-1, 1) from lcg(seed). */
export function lcgSigned(seed: number): () => number {
  const u = lcg(seed);
  return () => u() * 2 - 1;
}
