/**
 * numpy's pairwise summation (`np.add.reduce` on a contiguous float64 array, numpy 1.24):
 * n < 8: sequential; n <= 128: 8 interleaved partial sums combined as
 * ((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7)) plus the tail; larger: split at n/2 rounded down to a
 * multiple of 8 and recurse. Used where reproducing numpy's rounding bit for bit is cheap.
 */
export function numpySum(a: ArrayLike<number>, start = 0, n = a.length - start): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i];
    return res;
  }
  if (n <= 128) {
    const r = [a[start], a[start + 1], a[start + 2], a[start + 3], a[start + 4], a[start + 5], a[start + 6], a[start + 7]];
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j] += a[start + i + j];
    }
    let res = r[0] + r[1] + (r[2] + r[3]) + (r[4] + r[5] + (r[6] + r[7]));
    for (; i < n; i++) res += a[start + i];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return numpySum(a, start, n2) + numpySum(a, start + n2, n - n2);
}

/** `np.trapz(y, x)` = sum(diff(x) * (y[1:] + y[:-1]) / 2), summed like numpy. */
export function numpyTrapz(y: ArrayLike<number>, x: ArrayLike<number>): number {
  const n = x.length;
  if (n < 2) return 0;
  const terms = new Float64Array(n - 1);
  for (let i = 0; i < n - 1; i++) terms[i] = ((x[i + 1] - x[i]) * (y[i + 1] + y[i])) / 2;
  return numpySum(terms);
}

/**
 * `sklearn.metrics.auc(x, y)`: trapezoid area with direction handling. x must be monotonic:
 * non-decreasing gives +trapz, non-increasing (with some decrease) gives -trapz; otherwise, or
 * with fewer than 2 points, sklearn raises — here NaN is returned.
 */
export function sklearnAuc(x: ArrayLike<number>, y: ArrayLike<number>): number {
  if (x.length < 2 || x.length !== y.length) return NaN;
  let anyNeg = false;
  let allNonPos = true;
  for (let i = 0; i + 1 < x.length; i++) {
    const dx = x[i + 1] - x[i];
    if (dx < 0) anyNeg = true;
    if (dx > 0)
      allNonPos = false; // NaN counts as "not <= 0" in numpy too
    else if (Number.isNaN(dx)) allNonPos = false;
  }
  let direction = 1;
  if (anyNeg) {
    if (allNonPos) direction = -1;
    else return NaN;
  }
  return direction * numpyTrapz(y, x);
}
