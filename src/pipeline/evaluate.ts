/**
 * The evaluation step of one category: masks at the map size, then the evaluator
 * (src/metrics/evaluator.ts): the metrics (only when every image has a label; pixel metrics when
 * every defective image has a mask), the F1-optimal threshold of the RsCIN scores and, with a
 * decision rule, the label-free OK/NG decisions. Problems with masks become warnings (or an
 * ImageSkipError with --strict).
 */
import { performance } from 'node:perf_hooks';
import { runDecisions } from '../bank/calibration.js';
import { loadMask, MaskNotes, type MaskRule } from '../datasets/masks.js';
import type { DatasetItem, DatasetKind } from '../datasets/types.js';
import { ImageSkipError } from '../features/store.js';
import { evaluate } from '../metrics/evaluator.js';
import type { DecisionRule, Decisions } from '../threshold.js';
import type { CategoryResult, MetricsFn } from './types.js';

export interface EvaluateInput {
  /** scored images, in dataset order [N] */
  items: DatasetItem[];
  /** decoded size [width, height] of each item (mask checks) */
  sizes: ([number, number] | undefined)[];
  /** [N, S, S] anomaly maps */
  maps: Float32Array;
  /** S */
  size: number;
  /** [N] */
  rscinScores: Float64Array;
}

export interface EvaluateOptions {
  maskRule: MaskRule;
  kind: DatasetKind;
  strict: boolean;
  /** label-free OK/NG rule (--decision), when decisions are wanted */
  decision?: DecisionRule;
}

export interface Evaluation {
  /** [N, S, S] 0/1 masks, when pixel metrics were computed */
  masks: Uint8Array | null;
  metrics: CategoryResult['metrics'];
  f1Threshold: number | null;
  decisions?: Decisions;
  /** milliseconds for masks + metrics */
  ms: number;
}

export async function evaluateCategory(
  input: EvaluateInput,
  metricsFn: MetricsFn | undefined,
  opts: EvaluateOptions,
  warnings: string[],
): Promise<Evaluation> {
  const { items, rscinScores } = input;
  const labeled = items.every((it) => it.label !== null);
  const labels = labeled ? Uint8Array.from(items, (it) => it.label ?? 0) : null;
  const t0 = performance.now();
  let masks: Uint8Array | null = null;
  if (labels && metricsFn) {
    const missing = items.filter((it) => it.label === 1 && !it.masks).length;
    if (missing === 0) masks = await loadMasks(input, opts, warnings);
    else warnings.push(`${missing} defective images have no mask: pixel metrics not computed`);
  }
  const ev = await evaluate({
    imageScores: rscinScores,
    labels,
    maps: input.maps,
    masks,
    size: input.size,
    metrics: metricsFn ?? null,
    ...(opts.decision ? { decision: opts.decision } : {}),
  });
  const f1 = ev.thresholds.f1?.threshold;
  const f1Threshold = f1 !== undefined && Number.isFinite(f1) ? f1 : null;
  // OK / NG by default: F1-optimal with labels, else the false-alarm rule over the run's scores (src/bank/calibration.ts)
  const decisions = ev.decisions ?? runDecisions(rscinScores, labels);
  return { masks, metrics: ev.metrics, f1Threshold, decisions, ms: performance.now() - t0 };
}

/** Every item's mask at S x S [N, S, S] (zeros for good images), or null after a warning. */
async function loadMasks(input: EvaluateInput, opts: EvaluateOptions, warnings: string[]): Promise<Uint8Array | null> {
  const { items, size: S } = input;
  const masks = new Uint8Array(items.length * S * S);
  const wrongSize: string[] = [];
  const notes = new MaskNotes();
  let failed = false;
  for (let k = 0; k < items.length && !failed; k++) {
    const it = items[k]!;
    const img = input.sizes[k];
    try {
      masks.set(
        await loadMask(
          it.masks,
          S,
          opts.maskRule,
          opts.kind,
          (_file, w, h) => {
            if (img && (img[0] !== w || img[1] !== h)) wrongSize.push(`${it.rel} is ${img[0]}x${img[1]}, its mask ${w}x${h}`);
          },
          notes,
        ),
        k * S * S,
      );
    } catch (e) {
      const msg = `mask of ${it.rel}: ${(e as Error).message}`;
      if (opts.strict) throw new ImageSkipError(`${msg} (--strict)`);
      warnings.push(`${msg}: pixel metrics not computed`);
      failed = true;
    }
  }
  warnings.push(...notes.warnings());
  if (wrongSize.length > 0) {
    const listed = `${wrongSize.slice(0, 3).join('; ')}${wrongSize.length > 3 ? '; ...' : ''}`;
    const verb = wrongSize.length > 1 ? 's do' : ' does';
    warnings.push(`${wrongSize.length} mask${verb} not match the image size (both are resized to ${S}x${S}; check the pairing): ${listed}`);
  }
  return failed ? null : masks;
}
