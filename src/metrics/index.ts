/**
 * Evaluation metrics of MuSc (utils/metrics.py::compute_metrics, sklearn 1.2.1, skimage 0.19.3).
 *
 * Image level (scores [N], labels [N], nonzero = anomalous):
 *   image_auroc = roc_auc_score, image_ap = average_precision_score,
 *   image_f1max = max over precision_recall_curve points of 2PR/(P+R) (non-finite dropped).
 * Pixel level (maps [N,H,W], masks [N,H,W], all pixels of all images flattened):
 *   pixel_auroc, pixel_ap, pixel_f1max as above;
 *   pixel_pro = MuSc's cal_pro_score (200 arange thresholds, strict >, FPR < 0.3 kept and min-max
 *               rescaled, sklearn auc) — the number MuSc reports as "AUPRO";
 *   aupro     = MVTec AD official AUPRO (every distinct score a threshold, >=, area up to FPR 0.3
 *               with interpolation, divided by 0.3).
 * See roc.ts and pro.ts for the exact formulas.
 *
 * Undefined metrics are null (MuSc reports 0 there instead):
 *   - image metrics when all images have the same label;
 *   - pixel metrics when no maps/masks are given, when no mask pixel is a defect (AUROC and
 *     PRO undefined), or when every pixel is a defect (no normal pixel, FPR undefined).
 * All values are fractions in [0,1].
 *
 * evaluator.ts puts these metrics together with the image curves and thresholds (one call for
 * `musc run`, `musc ablate`, `musc rscin` and the report).
 */
import { AveragePrecisionSink, binaryMetrics, F1Sink, RocAucSink } from './roc.js';
import { AuproSink, proMuscCurve, regionWeights, stackRegions, type PixelInput } from './pro.js';
import { countClasses, sweepDescending, type Labels, type Scores } from './sweep.js';

export { rocCurve, f1OptimalThreshold, binaryMetrics, rocAucScore, averagePrecisionScore, f1Max } from './roc.js';
export { proMusc, proMuscCurve, aupro, auproCurve, numpyArange, stackRegions, type PixelInput } from './pro.js';
export { labelRegions, labelImages, type Connectivity, type Regions } from './regions.js';

export interface MetricsInput {
  /** [N] image anomaly scores */
  imageScores: ArrayLike<number>;
  /** [N] image labels, nonzero = anomalous */
  imageLabels: Labels;
  /** [N,H,W] pixel anomaly scores (optional) */
  maps?: Scores;
  /** [N,H,W] masks, nonzero = defect (optional; needed with maps) */
  masks?: ArrayLike<number>;
  /** map height and width; required with maps */
  height?: number;
  width?: number;
}

export interface MetricsCounts {
  images: number;
  anomalous_images: number;
  normal_images: number;
  /** 0 when no pixel data */
  pixels: number;
  defect_pixels: number;
  normal_pixels: number;
  /** 8-connected defect regions over all masks */
  regions: number;
  /** distinct pixel scores (= official AUPRO thresholds) */
  distinct_pixel_scores: number;
  /** thresholds evaluated by MuSc's PRO (200, sometimes 201) */
  musc_pro_thresholds: number;
}

export interface MetricsResult {
  image_auroc: number | null;
  image_f1max: number | null;
  image_ap: number | null;
  pixel_auroc: number | null;
  pixel_f1max: number | null;
  pixel_ap: number | null;
  /** MuSc's cal_pro_score */
  pixel_pro: number | null;
  /** MVTec official AUPRO, FPR limit 0.3 */
  aupro: number | null;
  counts: MetricsCounts;
}

/** The metrics without their counts (what metrics.json and the ablation tables hold). */
export type MetricsValues = Omit<MetricsResult, 'counts'>;

/** A metrics function: computeMetrics, or a stand-in in tests. */
export type MetricsFn = (input: MetricsInput) => MetricsValues | Promise<MetricsValues>;

const orNull = (v: number): number | null => (Number.isFinite(v) ? v : null);

/** Computes every MuSc metric (see the module comment). One sort for the images, one for the pixels. */
export function computeMetrics(input: MetricsInput): MetricsResult {
  const n = input.imageScores.length;
  if (input.imageLabels.length !== n) throw new RangeError(`${n} image scores but ${input.imageLabels.length} labels`);
  const img = binaryMetrics(input.imageScores, input.imageLabels);
  const imgOk = img.positives > 0 && img.negatives > 0;
  const result: MetricsResult = {
    image_auroc: imgOk ? orNull(img.auroc) : null,
    image_f1max: imgOk ? orNull(img.f1max) : null,
    image_ap: imgOk ? orNull(img.ap) : null,
    pixel_auroc: null,
    pixel_f1max: null,
    pixel_ap: null,
    pixel_pro: null,
    aupro: null,
    counts: {
      images: n, anomalous_images: img.positives, normal_images: img.negatives,
      pixels: 0, defect_pixels: 0, normal_pixels: 0, regions: 0, distinct_pixel_scores: 0, musc_pro_thresholds: 0,
    },
  };
  if (input.maps === undefined || input.masks === undefined) return result;
  const h = input.height;
  const w = input.width;
  if (h === undefined || w === undefined) throw new RangeError('height and width are required with maps');
  const px: PixelInput = { maps: input.maps, masks: input.masks, n, h, w };
  if (input.maps.length !== n * h * w || input.masks.length !== n * h * w) {
    throw new RangeError(`maps (${input.maps.length}) and masks (${input.masks.length}) must hold ${n}x${h}x${w} values`);
  }
  const { positives, negatives } = countClasses(input.masks);
  const c = result.counts;
  c.pixels = input.maps.length;
  c.defect_pixels = positives;
  c.normal_pixels = negatives;
  if (positives === 0 || negatives === 0) return result;

  const regions = stackRegions(px);
  c.regions = regions.count;
  const roc = new RocAucSink(positives, negatives);
  const ap = new AveragePrecisionSink(positives);
  const f1 = new F1Sink(positives);
  const pro = new AuproSink(regions.count, negatives, 0.3);
  c.distinct_pixel_scores = sweepDescending(input.maps, input.masks, [roc, ap, f1, pro], regionWeights(regions));
  result.pixel_auroc = orNull(roc.result());
  result.pixel_ap = orNull(ap.result());
  result.pixel_f1max = orNull(f1.result().f1);
  result.aupro = orNull(pro.result());
  const musc = proMuscCurve(px, regions);
  c.musc_pro_thresholds = musc.numThresholds;
  result.pixel_pro = orNull(musc.area);
  return result;
}
