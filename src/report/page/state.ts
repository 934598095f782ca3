/** The page's state: per category the scores, labels, order and the evaluator's results; the current view. */
import type { PageCategory, PageData } from '../page-data.js';
import type { RocPoints, F1Threshold } from '../../metrics/evaluator.js';
import type { LabelFreeThreshold } from '../../threshold.js';
import { rankByScore, scoreRange } from '../stats.js';

export interface CatState {
  c: PageCategory;
  /** [N] ranking scores, NaN when missing */
  scores: number[];
  labels: (0 | 1 | null)[];
  /** item indices, highest score first */
  rank: number[];
  /** slider and histogram span */
  range: [number, number];
  roc: RocPoints | null;
  f1: F1Threshold | null;
  free: LabelFreeThreshold | null;
  /** the current threshold (null until first shown) */
  thr: number | null;
}

export interface Card {
  el: HTMLElement;
  idx: number;
  pred: HTMLElement;
}

/** The current category, its gallery cards, the visible (filtered) items and the viewer position. */
export const ui: { cur: CatState | null; cards: Card[]; visible: number[]; viewerPos: number } = {
  cur: null,
  cards: [],
  visible: [],
  viewerPos: -1,
};

export function catState(c: PageCategory): CatState {
  const scores = c.items.map((it) => (it.score === null ? NaN : it.score));
  const labels = c.items.map((it) => it.label);
  const { f1, labelFree: free } = c.evaluation.thresholds;
  // the slider and histogram span the scores and the label-free threshold (it may lie above every score)
  const range = scoreRange(free ? scores.concat([free.threshold]) : scores);
  return { c, scores, labels, rank: rankByScore(scores), range, roc: c.evaluation.curves.roc, f1, free, thr: null };
}

export function readData(): PageData {
  return JSON.parse(document.getElementById('musc-data')!.textContent ?? '') as PageData;
}

/** The current category (set by select before anything is drawn). */
export function current(): CatState {
  if (!ui.cur) throw new Error('report page: no category selected');
  return ui.cur;
}
