/**
 * The evaluator: scores (+ labels, maps, masks) -> metrics -> curves -> thresholds, computed once
 * and shared by `musc run`, `musc ablate`, `musc rscin` and the report (which only shows them).
 *
 *   metrics     the eight metrics of computeMetrics (index.ts), when every image has a label
 *   curves      the image ROC curve (sklearn roc_curve, drop_intermediate) with its AUC
 *   thresholds  f1: the F1-optimal threshold of the image scores (the threshold of image_f1max;
 *                 on equal F1 the lowest one, as MuSc's np.argmax), with its precision and recall
 *               labelFree: the label-free rule of src/threshold.ts (default mad, k = 3)
 *   decisions   OK / NG per image at the label-free threshold, when a rule is asked for
 *
 * Every threshold is used with the one NG rule (src/threshold.ts isNg): NG iff score >= t.
 * Curves and the F1 threshold use the images with a label (0 or 1) and a finite score; they are
 * null unless both good and defective images are among them.
 */
import { binaryMetrics, rocCurve } from './roc.js';
import { computeMetrics, type MetricsFn, type MetricsValues } from './index.js';
import { confusionAt } from './confusion.js';
import {
  decideAt,
  labelFreeThreshold,
  DEFAULT_DECISION_RULE,
  type DecisionRule,
  type Decisions,
  type LabelFreeThreshold,
} from '../threshold.js';

/** The image ROC curve: points from (0, 0) to (1, 1). */
export interface RocPoints {
  /** [K] false-positive rates, ascending */
  fpr: number[];
  /** [K] true-positive rates */
  tpr: number[];
  /** area under the curve (sklearn roc_auc_score) */
  auc: number;
}

/** The threshold of the image F1-max and the counts it gives (NG iff score >= threshold). */
export interface F1Threshold {
  threshold: number;
  f1: number;
  precision: number;
  recall: number;
}

export interface ImageCurves {
  /** null unless both classes are labelled */
  roc: RocPoints | null;
}

export interface Thresholds {
  /** null unless both classes are labelled */
  f1: F1Threshold | null;
  /** null when no score is finite */
  labelFree: LabelFreeThreshold | null;
}

/** What the report and `musc rscin` need: curves and thresholds of image scores. */
export interface ImageEvaluation {
  /** images with a label and a finite score (the curves' and the F1 threshold's images) */
  labelled: number;
  curves: ImageCurves;
  thresholds: Thresholds;
}

export interface EvaluationInput {
  /** [N] image scores (the classification score: RsCIN's in `musc run`) */
  imageScores: ArrayLike<number>;
  /** [N] 0/1 labels (1 = defective), or null when unlabelled: no metrics, no curves, no F1 threshold */
  labels: ArrayLike<number> | null;
  /** [N, S, S] anomaly maps; pixel metrics need maps, masks and size */
  maps?: Float32Array | Float64Array | null;
  /** [N, S, S] 0/1 masks, or null: image metrics only */
  masks?: ArrayLike<number> | null;
  /** S, the maps' side */
  size?: number;
  /** the label-free rule (default mad, k = 3); when given, `decisions` are returned */
  decision?: DecisionRule;
  /** the metrics function (default computeMetrics); null: no metrics */
  metrics?: MetricsFn | null;
}

export interface Evaluation extends ImageEvaluation {
  /** null without labels (or with `metrics: null`) */
  metrics: MetricsValues | null;
  /** OK / NG per image at thresholds.labelFree, when input.decision was given */
  decisions?: Decisions;
}

/** Indices of the images with a 0/1 label and a finite score; throws on other label values. */
function labelledIndices(scores: ArrayLike<number>, labels: ArrayLike<number | null>): number[] {
  if (labels.length !== scores.length) throw new RangeError(`${scores.length} image scores but ${labels.length} labels`);
  const out: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i];
    if (l !== null && l !== 0 && l !== 1) throw new RangeError(`label ${i} is ${l}; labels must be 0, 1 or null`);
    if (l !== null && Number.isFinite(scores[i])) out.push(i);
  }
  return out;
}

/** ROC curve and F1-optimal threshold of labelled scores (both classes present). */
function supervised(s: Float64Array, l: Uint8Array): { roc: RocPoints; f1: F1Threshold } {
  const m = binaryMetrics(s, l);
  const c = rocCurve(s, l);
  const at = confusionAt(s, l, m.f1Threshold);
  return {
    roc: { fpr: Array.from(c.fpr), tpr: Array.from(c.tpr), auc: m.auroc },
    f1: { threshold: m.f1Threshold, f1: m.f1max, precision: at.precision ?? 0, recall: at.recall ?? 0 },
  };
}

/**
 * Curves and thresholds of image scores [N] with labels [N] (0, 1, or null for unknown), or
 * without labels. Scores may hold NaN (left out of the curves; NG by the NG rule).
 */
export function evaluateImages(
  scores: ArrayLike<number>,
  labels: ArrayLike<number | null> | null,
  rule: DecisionRule = DEFAULT_DECISION_RULE,
): ImageEvaluation {
  const labelFree = labelFreeThreshold(scores, rule);
  const idx = labels ? labelledIndices(scores, labels) : [];
  const s = Float64Array.from(idx, (i) => scores[i]!);
  const l = Uint8Array.from(idx, (i) => labels![i]!);
  let positives = 0;
  for (const x of l) positives += x;
  const both = positives > 0 && positives < l.length;
  const sup = both ? supervised(s, l) : null;
  return { labelled: idx.length, curves: { roc: sup?.roc ?? null }, thresholds: { f1: sup?.f1 ?? null, labelFree } };
}

/**
 * The whole evaluation of one category: metrics (with labels), image curves and thresholds, and
 * label-free decisions (with a rule). maps and masks are [N, S, S] in the order of imageScores.
 */
export async function evaluate(input: EvaluationInput): Promise<Evaluation> {
  const { imageScores, labels } = input;
  const image = evaluateImages(imageScores, labels, input.decision ?? DEFAULT_DECISION_RULE);
  let metrics: MetricsValues | null = null;
  const fn = input.metrics === undefined ? computeMetrics : input.metrics;
  if (labels && fn) {
    const pixel = input.maps && input.masks;
    if (pixel && input.size === undefined) throw new RangeError('evaluate: size is required with maps and masks');
    metrics = await fn({
      imageScores,
      imageLabels: labels,
      ...(pixel ? { maps: input.maps!, masks: input.masks!, height: input.size!, width: input.size! } : {}),
    });
  }
  const lf = image.thresholds.labelFree;
  if (input.decision && !lf) throw new RangeError(`${input.decision.method} threshold: no finite scores`);
  return { ...image, metrics, ...(input.decision ? { decisions: decideAt(imageScores, lf!) } : {}) };
}
