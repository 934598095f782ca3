/**
 * Reference-density normalisation of MSM distances (`--density-exponent A`; docs/accuracy.md,
 * sixteenth round).
 *
 * MSM scores patch p of image i by its nearest distances a(i, p, j) = |Z[i,p] - Z[j,q*]| to the
 * other images (msm.ts, eq. 5). How far a normal patch lies from its nearest match depends on where
 * it is: a smooth surface has close matches in every image, a streaked or rough one does not. So a
 * faint defect on a smooth surface can score below normal patches of a rough one. As in local
 * outlier factors (LOF: a point's distance compared with its neighbours' own distances), each
 * distance is divided by how far its reference patch q* itself lies from its matches:
 *   rho(j, q)   = MSM score of patch q of image j in the same table (eq. 6, the plan's interval),
 *   a'(i, p, j) = a(i, p, j) (rho(j, q*) / median rho)^(-A)
 * A = 0 is MSM. The median keeps each (stage, r) table on its own scale, so the mean over tables
 * weighs them as before. rho is a batch statistic like MSM itself (every image scored against
 * every other); the patch scores then reduce a' as they reduce a.
 */
/**
 * a' [N, P, N] from a table [N, P, N], its nearest indices [N, P, N] (msm.ts
 * nearestTableWithIndices) and rho [N, P], the table's zero-shot MSM scores (core/score.ts).
 */
export function densityNormalised(
  table: Float32Array,
  index: Uint16Array | Int32Array,
  n: number,
  p: number,
  exponent: number,
  rho: Float64Array,
): Float32Array {
  if (!(exponent > 0)) throw new Error(`density exponent: give a positive number, got ${exponent}`);
  if (table.length !== n * p * n || index.length !== table.length || rho.length !== n * p)
    throw new Error('density: a table and its indices [N, P, N] of every pair, and rho [N, P]');
  const out = table.slice();
  normaliseRows(out, index, 0, n, p, densityWeights(rho, exponent));
  return out;
}

/**
 * In place: the table rows of images [i0, i0 + k) `rows` [k, P, N] (their indices alike) times the
 * weight [N, P] of each entry's nearest patch; the diagonal (i, ., i) is left as it is. A table
 * normalised in row blocks is the table normalised at once (the cluster's merge jobs).
 */
export function normaliseRows(
  rows: Float32Array,
  index: Uint16Array | Int32Array,
  i0: number,
  n: number,
  p: number,
  weight: Float32Array,
): void {
  const k = rows.length / (p * n);
  for (let t = 0; t < k * p; t++) {
    const i = i0 + Math.floor(t / p);
    for (let j = 0; j < n; j++) if (j !== i) rows[t * n + j]! *= weight[j * p + index[t * n + j]!]!;
  }
}

/** Whether a density exponent (one, or one per stage) normalises any table. */
export function densityActive(a: number | readonly number[] | undefined): boolean {
  return typeof a === 'number' ? a > 0 : (a ?? []).some((v) => v > 0);
}

/** (rho / median rho)^(-A) per patch [N, P]; rho below 1e-6 of the median counts as that (a duplicate patch). */
export function densityWeights(rho: Float64Array, exponent: number): Float32Array {
  const med = median(rho);
  if (!(med > 0)) return new Float32Array(rho.length).fill(1); // every patch matched exactly: nothing to normalise
  return Float32Array.from(rho, (v) => Math.max(v / med, 1e-6) ** -exponent);
}

function median(a: Float64Array): number {
  const s = Float64Array.from(a).sort();
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}
