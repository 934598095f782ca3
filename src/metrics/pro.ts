/**
 * Per-region overlap (PRO) curves and their normalised areas, in two definitions.
 *
 * Common terms, over all N images of a [N,H,W] stack:
 *   regions r = 8-connected components of each image's defect mask (nonzero), taken per image;
 *   PRO(t)   = (1/R) * sum_r TP_r(t) / area_r      (mean over all regions of all images)
 *   FPR(t)   = FP(t) / #{mask == 0 pixels}         (over all images)
 *
 * (a) `proMusc` — MuSc's `cal_pro_score` (utils/metrics.py, from cflow-ad):
 *   thresholds th_i = np.arange(min, max, (max-min)/200): length ceil((max-min)/step), th_0 = min,
 *   th_1 = min + step, th_i = min + i*(th_1 - th_0) (numpy's arange fill); positive iff score > th
 *   (strict). Points (in ascending threshold order) with FPR < 0.3 are kept, their FPRs min-max
 *   rescaled to [0,1], and the area is sklearn `auc(fpr, pro)` (trapezoid, direction-aware; FPR
 *   decreases along the curve so the sign flips). No division by 0.3.
 *   Computed exactly with one histogram pass (each pixel binned by how many thresholds lie
 *   strictly below its score), no per-threshold pass.
 *
 * (b) `aupro` — the MVTec AD official definition: every distinct score t is a threshold, positive
 *   iff score >= t; curve (0,0), (FPR(t), PRO(t)) for t descending, (1,1); area by the trapezoid
 *   rule up to FPR = 0.3, with a linearly interpolated point at 0.3 (when 0.3 is not itself a
 *   curve x), divided by 0.3. Computed from one sort of all pixels and one descending sweep
 *   (sweep.ts), so it scales to tens of millions of pixels.
 */
import { labelImages, type Regions } from './regions.js';
import { numpySum, sklearnAuc } from './numpy-sum.js';
import { sweepDescending, type RegionWeights, type Scores, type ThresholdSink } from './sweep.js';
import { assertFinite } from './sort.js';

/** A stack of score maps with their masks. */
export interface PixelInput {
  /** [N,H,W] row-major anomaly scores */
  maps: Scores;
  /** [N,H,W] ground truth, nonzero = defect */
  masks: ArrayLike<number>;
  n: number;
  h: number;
  w: number;
}

function checkShape(input: PixelInput): void {
  const size = input.n * input.h * input.w;
  if (input.maps.length !== size) throw new RangeError(`maps hold ${input.maps.length} values, expected ${input.n}x${input.h}x${input.w}`);
  if (input.masks.length !== size)
    throw new RangeError(`masks hold ${input.masks.length} values, expected ${input.n}x${input.h}x${input.w}`);
}

/** Default regions of a stack: per image, 8-connected. */
export function stackRegions(input: PixelInput): Regions {
  return labelImages(input.masks, input.n, input.h, input.w, 8);
}

/** Per-pixel region ids with 1/area weights, as the sweep needs them. */
export function regionWeights(regions: Regions): RegionWeights {
  const invArea = new Float64Array(regions.count + 1);
  for (let r = 1; r <= regions.count; r++) invArea[r] = 1 / regions.areas[r];
  return { labels: regions.labels, invArea };
}

// ---------------------------------------------------------------------------------------------
// (a) MuSc cal_pro_score

/** numpy `np.arange(start, stop, step)` for float64 scalars (numpy 1.24 semantics). */
export function numpyArange(start: number, stop: number, step: number): Float64Array {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  if (!Number.isFinite(len)) throw new RangeError(`arange(${start}, ${stop}, ${step}) has no finite length`);
  const out = new Float64Array(len);
  if (len > 0) out[0] = start;
  if (len > 1) out[1] = start + step;
  const d = out[1] - out[0];
  for (let i = 2; i < len; i++) out[i] = start + i * d;
  return out;
}

export interface ProMuscCurve {
  /** [K] kept points' FPR, min-max rescaled to [0,1] (the x given to sklearn `auc`) */
  fpr: Float64Array;
  /** [K] kept points' PRO (the y given to `auc`) */
  pro: Float64Array;
  /** [K] kept points' raw FPR (before rescaling) */
  fprRaw: Float64Array;
  /** [K] kept points' thresholds, ascending */
  thresholds: Float64Array;
  /** number of thresholds evaluated (200, sometimes 201) */
  numThresholds: number;
  /** the area: sklearn auc(fpr, pro); NaN when undefined (fewer than 2 kept points, no regions, constant maps) */
  area: number;
}

/**
 * MuSc's `cal_pro_score(masks, amaps, max_step=200, expect_fpr=0.3)` with its curve.
 * `regions` defaults to per-image 8-connected labelling of the masks.
 */
export function proMuscCurve(input: PixelInput, regions?: Regions, maxStep = 200, expectFpr = 0.3): ProMuscCurve {
  checkShape(input);
  const { maps, masks } = input;
  assertFinite(maps, 'maps');
  const reg = regions ?? stackRegions(input);
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < maps.length; i++) {
    const v = maps[i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const delta = (max - min) / maxStep;
  const empty: ProMuscCurve = {
    fpr: new Float64Array(0),
    pro: new Float64Array(0),
    fprRaw: new Float64Array(0),
    thresholds: new Float64Array(0),
    numThresholds: 0,
    area: NaN,
  };
  if (!(delta > 0)) return empty; // constant maps: numpy's arange would fail (step 0)
  const th = numpyArange(min, max, delta);
  const t = th.length;
  const bins = t + 1;
  // bin k = number of thresholds strictly below the score; the pixel is positive at th_i iff i < k
  const negHist = new Float64Array(bins);
  const R = reg.count;
  const regHist = new Uint32Array((R + 1) * bins); // [R+1, bins] pixel counts per region and bin
  const labels = reg.labels;
  const step = t > 1 ? th[t - 1] / (t - 1) - min / (t - 1) : 0; // ~ spacing, only used as a first guess
  for (let p = 0; p < maps.length; p++) {
    const v = maps[p];
    // k = #{i : th_i < v}: guess from the (near-uniform) spacing, then correct exactly
    let k = step > 0 ? Math.ceil((v - min) / step) : 0;
    if (!(k >= 0)) k = 0;
    else if (k > t) k = t;
    while (k > 0 && th[k - 1] >= v) k--;
    while (k < t && th[k] < v) k++;
    const lo = k;
    if (masks[p] === 0) negHist[lo]++;
    else regHist[labels[p] * bins + lo]++;
  }
  let negTotal = 0;
  for (let k = 0; k < bins; k++) negTotal += negHist[k];
  // suffix sums: FP(th_i) = sum_{k > i} negHist[k]; TP_r(th_i) likewise
  const fprAll = new Float64Array(t);
  const proAll = new Float64Array(t);
  const tpR = new Float64Array(R + 1); // running TP_r for the current threshold
  const ratios = new Float64Array(R);
  let fp = 0;
  for (let i = t - 1; i >= 0; i--) {
    fp += negHist[i + 1];
    for (let r = 1; r <= R; r++) {
      tpR[r] += regHist[r * bins + i + 1];
      ratios[r - 1] = tpR[r] / reg.areas[r];
    }
    fprAll[i] = fp / negTotal;
    proAll[i] = R > 0 ? numpySum(ratios) / R : NaN; // np.array(pro).mean()
  }
  // keep FPR < expect_fpr (threshold order), then min-max rescale the kept FPRs
  const keep: number[] = [];
  for (let i = 0; i < t; i++) if (fprAll[i] < expectFpr) keep.push(i);
  const k = keep.length;
  const fprRaw = new Float64Array(k);
  const pro = new Float64Array(k);
  const thresholds = new Float64Array(k);
  let fMin = Infinity;
  let fMax = -Infinity;
  for (let j = 0; j < k; j++) {
    const i = keep[j];
    fprRaw[j] = fprAll[i];
    pro[j] = proAll[i];
    thresholds[j] = th[i];
    if (fprRaw[j] < fMin) fMin = fprRaw[j];
    if (fprRaw[j] > fMax) fMax = fprRaw[j];
  }
  const fpr = new Float64Array(k);
  for (let j = 0; j < k; j++) fpr[j] = (fprRaw[j] - fMin) / (fMax - fMin);
  return { fpr, pro, fprRaw, thresholds, numThresholds: t, area: R > 0 ? sklearnAuc(fpr, pro) : NaN };
}

/** MuSc's pixel AUPRO (`cal_pro_score`): area of the min-max rescaled PRO curve below FPR 0.3. */
export function proMusc(input: PixelInput, regions?: Regions): number {
  return proMuscCurve(input, regions).area;
}

// ---------------------------------------------------------------------------------------------
// (b) MVTec AD official AUPRO

/**
 * Streams the official AUPRO area: trapezoids of the curve (0,0), (FPR_t, PRO_t)..., (1,1) up to
 * FPR = limit, with the linear interpolation at the limit, divided by the limit.
 */
export class AuproSink implements ThresholdSink {
  private s = 0; // Neumaier sum of the trapezoids
  private c = 0;
  private x0 = 0; // the prepended (0,0)
  private y0 = 0;
  private done = false;
  private limitIsPoint = false;
  constructor(
    private readonly regionCount: number,
    private readonly negatives: number,
    private readonly limit = 0.3,
  ) {}
  point(_th: number, _tp: number, fp: number, proSum: number): void {
    if (!this.done) this.add(fp / this.negatives, proSum / this.regionCount);
  }
  private addArea(v: number): void {
    const u = this.s + v;
    this.c += Math.abs(this.s) >= Math.abs(v) ? this.s - u + v : v - u + this.s;
    this.s = u;
  }
  private add(x: number, y: number): void {
    if (this.done) return;
    if (x <= this.limit) {
      this.addArea(0.5 * (y + this.y0) * (x - this.x0));
      if (x === this.limit) this.limitIsPoint = true;
      this.x0 = x;
      this.y0 = y;
    } else {
      if (!this.limitIsPoint) {
        const yAt = this.y0 + ((y - this.y0) * (this.limit - this.x0)) / (x - this.x0);
        this.addArea(0.5 * (yAt + this.y0) * (this.limit - this.x0));
      }
      this.done = true;
    }
  }
  /** normalised area in [0,1]; NaN without regions or normal pixels. Call once, after the sweep. */
  result(): number {
    this.add(1, 1); // the appended (1,1)
    if (this.regionCount === 0 || this.negatives === 0) return NaN;
    return (this.s + this.c) / this.limit;
  }
}

export interface AuproCurve {
  /** [T+2] FPR: 0, then one per distinct score (descending), then 1 */
  fpr: Float64Array;
  /** [T+2] PRO: 0, ..., 1 */
  pro: Float64Array;
  /** [T] every distinct score, descending */
  thresholds: Float64Array;
}

function negativesOf(masks: ArrayLike<number>): number {
  let c = 0;
  for (let i = 0; i < masks.length; i++) if (masks[i] === 0) c++;
  return c;
}

/** The full official PRO curve (materialised: use for small inputs and reports). */
export function auproCurve(input: PixelInput, regions?: Regions): AuproCurve {
  checkShape(input);
  const reg = regions ?? stackRegions(input);
  const negatives = negativesOf(input.masks);
  const fpr: number[] = [0];
  const pro: number[] = [0];
  const ths: number[] = [];
  sweepDescending(
    input.maps,
    input.masks,
    [
      {
        point: (th, _tp, fp, proSum) => {
          ths.push(th);
          fpr.push(fp / negatives);
          pro.push(proSum / reg.count);
        },
      },
    ],
    regionWeights(reg),
  );
  fpr.push(1);
  pro.push(1);
  return { fpr: Float64Array.from(fpr), pro: Float64Array.from(pro), thresholds: Float64Array.from(ths) };
}

/** The official AUPRO (area up to `fprLimit`, divided by it), one sort + one sweep. */
export function aupro(input: PixelInput, regions?: Regions, fprLimit = 0.3): number {
  checkShape(input);
  const reg = regions ?? stackRegions(input);
  const sink = new AuproSink(reg.count, negativesOf(input.masks), fprLimit);
  sweepDescending(input.maps, input.masks, [sink], regionWeights(reg));
  return sink.result();
}
