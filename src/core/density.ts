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
import { intervalBounds } from './msm.js';
import type { Interval } from './types.js';

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

/**
 * The warning for an exponent above 1 (docs/accuracy.md, eighteenth round), else undefined. In a
 * region whose typical nearest distance is s, a normal patch has a ~ s and its references rho ~ s,
 * so its normalised distance is about s^(1 - A) median^A: A = 1 (LOF's ratio) scores every normal
 * region alike, and above 1 the most uniform regions (a plain background, a polished face) of
 * normal images score highest (bottle at A = 2 on layer3: its good images' highest patches at 0.075 of the median
 * density, image AUROC 99.68 -> 76.43).
 */
export function densityExponentWarning(a: number | readonly number[] | undefined): string | undefined {
  const above = (typeof a === 'number' ? [a] : (a ?? [])).filter((v) => v > 1);
  if (above.length === 0) return undefined;
  return (
    `--density-exponent ${above.join('/')} is above 1: a normal patch's normalised distance grows as its ` +
    'region gets more uniform (about s^(1 - A) for nearest distances s), so plain regions of normal images can outscore ' +
    'defects (docs/accuracy.md, eighteenth round)'
  );
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

/**
 * Weights [N, P] of a batch whose last n_ref images are references with known densities `rhoRef`
 * [n_ref, P] (a bank's, saved at build): theirs from densityWeights(rhoRef), 1 for the others, whose
 * patches are never a reference (predict scores new images against the bank only).
 */
export function referenceWeights(rhoRef: Float64Array, n: number, p: number, exponent: number): Float32Array {
  const nRef = rhoRef.length / p;
  if (!Number.isInteger(nRef) || nRef < 1 || nRef > n)
    throw new Error(`density: reference densities of ${rhoRef.length} values for ${n} images of ${p} patches`);
  const w = new Float32Array(n * p).fill(1);
  w.set(densityWeights(rhoRef, exponent), (n - nRef) * p);
  return w;
}

/**
 * Held-out densities (a bank's leave-one-out, whose scores must be those of predicting each image
 * against the bank without it): in place, the rows of each image i of `table` [N, P, N] are
 * normalised with the densities of the batch without i,
 *   rho_-i(j, q) = MSM score of patch q of image j over the images other than i and j (eq. 6),
 * weighted by (rho_-i / its median over the images other than i)^(-A): what a bank built without i
 * would save. Each (j, q) row is sorted once; removing one image shifts ranks by at most one, so
 * every rho_-i(j, q) is a difference of prefix sums (no table is reduced N times).
 */
export function normaliseHeldOut(
  table: Float32Array,
  index: Uint16Array | Int32Array,
  n: number,
  p: number,
  exponent: number,
  interval: Interval,
): void {
  if (!(exponent > 0)) throw new Error(`density exponent: give a positive number, got ${exponent}`);
  if (n < 3) throw new Error(`held-out densities need at least 3 images, got ${n}`);
  const held = heldOutRho(table, n, p, interval); // [N (i), N (j), P]
  const rho = new Float64Array((n - 1) * p);
  for (let i = 0; i < n; i++) {
    // rho of the images other than i, in image order
    const all = held.subarray(i * n * p, (i + 1) * n * p);
    rho.set(all.subarray(0, i * p), 0);
    rho.set(all.subarray((i + 1) * p), i * p);
    const wOthers = densityWeights(rho, exponent); // [N - 1, P]: image j's at row j - (j > i)
    const w = new Float32Array(n * p).fill(1);
    w.set(wOthers.subarray(0, i * p), 0);
    w.set(wOthers.subarray(i * p), (i + 1) * p);
    const rows = table.subarray(i * p * n, (i + 1) * p * n);
    normaliseRows(rows, index.subarray(i * p * n, (i + 1) * p * n), i, n, p, w);
  }
}

/** rho_-i(j, q) [N (i), N (j), P] of normaliseHeldOut (0 where i = j); float32, one table's bytes. */
function heldOutRho(table: Float32Array, n: number, p: number, interval: Interval): Float32Array {
  const [lo, hi] = intervalBounds(n - 2, interval);
  const held = new Float32Array(n * n * p);
  const m = n - 1;
  const keys = new Float64Array(m);
  const prefix = new Float64Array(m + 1);
  const rank = new Int32Array(n);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let j = 0; j < n; j++)
    for (let q = 0; q < p; q++) {
      const row = (j * p + q) * n;
      let c = 0;
      for (let k = 0; k < n; k++) {
        if (k === j) continue;
        f32[0] = table[row + k]!;
        keys[c++] = u32[0]! * n + k; // ties keep image order, as reduceRows
      }
      keys.sort();
      for (let t = 0; t < m; t++) {
        const k = keys[t]! % n;
        rank[k] = t;
        prefix[t + 1] = prefix[t]! + table[row + k]!;
      }
      for (let i = 0; i < n; i++) {
        if (i === j) continue;
        const t = rank[i]!;
        const sum =
          t >= hi
            ? prefix[hi]! - prefix[lo]!
            : t < lo
              ? prefix[hi + 1]! - prefix[lo + 1]!
              : prefix[hi + 1]! - prefix[lo]! - table[row + i]!;
        held[(i * n + j) * p + q] = sum / (hi - lo);
      }
    }
  return held;
}

function median(a: Float64Array): number {
  const s = Float64Array.from(a).sort();
  const h = s.length >> 1;
  return s.length % 2 ? s[h]! : (s[h - 1]! + s[h]!) / 2;
}
