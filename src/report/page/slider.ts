/** The threshold panel: slider, marks, counts at the threshold, and the NG / OK badges of the cards. */
import { $, el, fmt, pct } from './dom.js';
import { current, ui, type CatState } from './state.js';
import { rocX, rocY, xOf } from './charts.js';
import { applyFilters } from './gallery.js';
import { confusionAt } from '../../metrics/confusion.js';
import { isNg, type LabelFreeThreshold } from '../../threshold.js';

export const STEPS = 1000;

export function sliderPos(s: CatState, t: number): number {
  const [lo, hi] = s.range;
  return hi > lo ? Math.round(Math.min(1, Math.max(0, (t - lo) / (hi - lo))) * STEPS) : 0;
}

/** How the label-free threshold was found, in words. */
function freeNote(f: LabelFreeThreshold): string {
  const t = fmt(f.threshold, 6);
  if (f.method === 'otsu') return 'Label-free threshold (Otsu split of the scores) = ' + t + '.';
  if (!f.sigma) return 'Label-free threshold: all scores are equal (median ' + fmt(f.median) + '); ' + t + ' leaves every image OK.';
  const sd = f.mad ? f.k + ' x 1.4826 x MAD' : f.k + ' x sqrt(pi/2) x mean absolute deviation (MAD is 0)';
  return 'Label-free threshold median + ' + sd + ' = ' + t + ' (median ' + fmt(f.median) + ', MAD ' + fmt(f.mad) + ').';
}

export function drawThresholdPanel(s: CatState): void {
  const [lo, hi] = s.range;
  const marks = $('slider-marks');
  marks.textContent = '';
  const at = (t: number): string => (100 * sliderPos(s, t)) / STEPS + '%';
  if (s.f1)
    marks.append(
      el('span', { class: 'mark f1', id: 'mark-f1', style: 'left:' + at(s.f1.threshold), title: 'F1-optimal ' + fmt(s.f1.threshold, 6) }),
    );
  if (s.free)
    marks.append(
      el('span', {
        class: 'mark free',
        id: 'mark-free',
        style: 'left:' + at(s.free.threshold),
        title: 'label-free ' + fmt(s.free.threshold, 6),
      }),
    );
  const range = $<HTMLInputElement>('thr-range');
  range.dataset.lo = String(lo);
  range.dataset.hi = String(hi);
  const value = $<HTMLInputElement>('thr-value');
  value.min = String(lo);
  value.max = String(hi);
  value.step = 'any';
  $('thr-f1').hidden = !s.f1;
  $('thr-free').hidden = !s.free;
  const notes: string[] = [];
  if (s.f1)
    notes.push(
      'F1-optimal threshold ' +
        fmt(s.f1.threshold, 6) +
        ' (F1 ' +
        pct(s.f1.f1) +
        '%, precision ' +
        pct(s.f1.precision) +
        '%, recall ' +
        pct(s.f1.recall) +
        '%).',
    );
  if (s.free) notes.push(freeNote(s.free));
  notes.push('An image is NG when its score >= threshold.');
  $('thr-notes').textContent = notes.join(' ');
  $('cm').hidden = !s.labels.some((l) => l !== null);
  $('pr').hidden = !s.labels.some((l) => l === 1);
}

/** Sets the current category's threshold: counts, confusion matrix, marks and badges follow. */
export function setThreshold(t: number, fromSlider: boolean): void {
  const s = current();
  s.thr = t;
  $('threshold').dataset.threshold = String(t);
  if (!fromSlider) $<HTMLInputElement>('thr-range').value = String(sliderPos(s, t));
  if (document.activeElement !== $('thr-value')) $<HTMLInputElement>('thr-value').value = String(t);
  const c = confusionAt(s.scores, s.labels, t);
  const show: [string, string][] = [
    ['count-ng', String(c.ng)],
    ['count-ok', String(c.ok)],
    ['precision', pct(c.precision)],
    ['recall', pct(c.recall)],
    ['f1', pct(c.f1)],
    ['cm-tp', String(c.tp)],
    ['cm-fp', String(c.fp)],
    ['cm-fn', String(c.fn)],
    ['cm-tn', String(c.tn)],
  ];
  for (const [id, v] of show) $(id).textContent = v;
  const hx = String(xOf(s, Math.min(s.range[1], Math.max(s.range[0], t))));
  const hl = document.getElementById('hist-thr');
  if (hl) {
    hl.setAttribute('x1', hx);
    hl.setAttribute('x2', hx);
  }
  const rp = document.getElementById('roc-point');
  if (rp) {
    const P = c.tp + c.fn,
      N = c.fp + c.tn;
    rp.setAttribute('cx', String(rocX(N ? c.fp / N : 0)));
    rp.setAttribute('cy', String(rocY(P ? c.tp / P : 0)));
  }
  for (const card of ui.cards) {
    const it = s.c.items[card.idx]!;
    const ng = isNg(s.scores[card.idx]!, t);
    card.el.dataset.pred = ng ? 'NG' : 'OK';
    card.pred.textContent = ng ? 'NG' : 'OK';
    card.pred.className = 'pill pred ' + (ng ? 'ng' : 'ok');
    card.el.classList.toggle('wrong', it.label !== null && (it.label === 1) !== ng);
  }
  applyFilters();
}
