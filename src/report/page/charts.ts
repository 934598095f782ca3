/** The score histogram and the ROC curve (SVG), with the current threshold's marks. */
import { $, el, fmt, pct, sv } from './dom.js';
import { scoreHistogram, type Histogram } from '../stats.js';
import type { CatState } from './state.js';

export const W = 360,
  H = 170;
const PAD = { l: 34, r: 10, t: 10, b: 24 };
/** ROC plot side and padding */
export const ROC_S = 170,
  ROC_P = 26;

/** x position of score v in the histogram. */
export function xOf(s: CatState, v: number): number {
  const [lo, hi] = s.range;
  return PAD.l + (hi > lo ? (v - lo) / (hi - lo) : 0.5) * (W - PAD.l - PAD.r);
}

const text = (x: number, y: number, anchor: string, t: string): SVGElement =>
  sv('text', { x, y, 'text-anchor': anchor }, document.createTextNode(t));

function bars(g: SVGElement, h: Histogram, bins: number): void {
  const max = Math.max(1, ...h.good, ...h.defective, ...h.unknown);
  const bw = (W - PAD.l - PAD.r) / bins;
  const yOf = (c: number): number => H - PAD.b - (c / max) * (H - PAD.t - PAD.b);
  const series: ['unknown' | 'good' | 'defective', string][] = [
    ['unknown', '#8a94a6'],
    ['good', '#1f9d55'],
    ['defective', '#d64545'],
  ];
  for (const [key, colour] of series) {
    h[key].forEach((c, b) => {
      if (c > 0)
        g.append(
          sv(
            'rect',
            {
              x: PAD.l + b * bw + 0.5,
              y: yOf(c),
              width: Math.max(1, bw - 1),
              height: H - PAD.b - yOf(c),
              fill: colour,
              'fill-opacity': 0.55,
              class: 'bar-' + key,
            },
            sv('title', {}, document.createTextNode(key + ': ' + c + ' in [' + fmt(h.edges[b]) + ', ' + fmt(h.edges[b + 1]) + ']')),
          ),
        );
    });
  }
  g.append(text(PAD.l - 4, PAD.t + 8, 'end', String(max)));
}

function legend(s: CatState): HTMLElement {
  const lg = el('div', { class: 'legend' });
  if (s.labels.some((l) => l === 0)) lg.append(el('span', {}, el('span', { class: 'sw', style: 'background:#1f9d55' }), 'good'));
  if (s.labels.some((l) => l === 1)) lg.append(el('span', {}, el('span', { class: 'sw', style: 'background:#d64545' }), 'defective'));
  if (s.labels.some((l) => l === null)) lg.append(el('span', {}, el('span', { class: 'sw', style: 'background:#8a94a6' }), 'unlabelled'));
  lg.append(el('span', {}, '| threshold'));
  if (s.f1) lg.append(el('span', { style: 'color:var(--f1)' }, '┆ F1-optimal'));
  if (s.free) lg.append(el('span', { style: 'color:var(--free)' }, '⋮ label-free'));
  return lg;
}

export function drawHistogram(s: CatState): void {
  const box = $('hist');
  box.textContent = '';
  box.append(el('h3', { text: 'Image scores' }));
  const [lo, hi] = s.range;
  const bins = Math.max(10, Math.min(40, Math.ceil(Math.sqrt(s.scores.length) * 2)));
  const g = sv('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, id: 'hist-svg' });
  bars(g, scoreHistogram(s.scores, s.labels, lo, hi, bins), bins);
  g.append(sv('line', { x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b, stroke: '#999' }));
  g.append(text(PAD.l, H - 8, 'start', fmt(lo)), text(W - PAD.r, H - 8, 'end', fmt(hi)));
  const mark = (t: number, attrs: Record<string, string | number>): SVGElement =>
    sv('line', { x1: xOf(s, t), x2: xOf(s, t), y1: PAD.t, y2: H - PAD.b, ...attrs });
  if (s.f1) g.append(mark(s.f1.threshold, { stroke: 'var(--f1)', 'stroke-dasharray': '4 3' }));
  if (s.free) g.append(mark(s.free.threshold, { stroke: 'var(--free)', 'stroke-dasharray': '1 3', 'stroke-width': 2 }));
  g.append(sv('line', { id: 'hist-thr', x1: 0, x2: 0, y1: PAD.t - 4, y2: H - PAD.b, stroke: '#1c2330', 'stroke-width': 2 }));
  box.append(g, legend(s));
}

/** ROC plot coordinates of a rate pair. */
export const rocX = (v: number): number => ROC_P + v * (ROC_S - ROC_P - 8);
export const rocY = (v: number): number => ROC_S - ROC_P - v * (ROC_S - ROC_P - 8);

export function drawRoc(s: CatState): void {
  const box = $('roc');
  box.textContent = '';
  box.append(el('h3', { text: 'ROC curve' }));
  const roc = s.roc;
  if (!roc) {
    box.append(el('p', { class: 'note', text: 'Needs good and defective labels.' }));
    return;
  }
  const S = ROC_S,
    X = rocX,
    Y = rocY;
  const g = sv('svg', { viewBox: '0 0 ' + S + ' ' + S, width: S * 1.3, height: S * 1.3, id: 'roc-svg' });
  g.append(sv('rect', { x: X(0), y: Y(1), width: X(1) - X(0), height: Y(0) - Y(1), fill: 'none', stroke: '#ccc' }));
  g.append(sv('line', { x1: X(0), y1: Y(0), x2: X(1), y2: Y(1), stroke: '#ccc', 'stroke-dasharray': '3 3' }));
  const points = roc.fpr.map((f, i) => X(f).toFixed(1) + ',' + Y(roc.tpr[i]!).toFixed(1)).join(' ') + ' ' + X(1) + ',' + Y(1);
  g.append(sv('polyline', { points, fill: 'none', stroke: '#2f6fde', 'stroke-width': 2 }));
  g.append(sv('circle', { id: 'roc-point', r: 4, fill: '#1c2330' }));
  g.append(text(X(0.5), S - 6, 'middle', 'false-positive rate'));
  g.append(
    sv(
      'text',
      { x: 10, y: Y(0.5), transform: 'rotate(-90 10 ' + Y(0.5) + ')', 'text-anchor': 'middle' },
      document.createTextNode('true-positive rate'),
    ),
  );
  box.append(g, el('div', { class: 'legend', text: 'AUC ' + pct(roc.auc) + '%; dot: current threshold' }));
}
