/**
 * The page of a `musc predict` folder (PageData.predict): one card per image, highest score
 * first (verdict, score, normalised score, composite, regions table), the colour scale, and the
 * image threshold: moving it recounts OK / NG with the one NG rule (src/threshold.ts isNg, as
 * predict). "export NG list as CSV" downloads name,score,normalized,regions of the NG images at
 * the current threshold; "save threshold" downloads a threshold.json in the format predict writes
 * and `musc predict --threshold FILE` reads (src/bank/calibration.ts). Both are client-side.
 */
import { isNg } from '../../threshold.js';
import type { PagePredict, PredictItem } from '../page-data.js';
import { ngListCsv, thresholdFileText } from '../predict-export.js';
import { rankByScore, scoreRange } from '../stats.js';
import { $, el, fmt } from './dom.js';

const STEPS = 1000;

interface PredictView {
  p: PagePredict;
  /** [N] scores, NaN when missing (NaN counts as NG) */
  scores: number[];
  range: [number, number];
  cards: { el: HTMLElement; badge: HTMLElement; idx: number }[];
  thr: number;
}

function download(name: string, text: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el('a', { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function regionsTable(it: PredictItem): HTMLElement {
  if (it.regions.length === 0) return el('p', { class: 'note', text: 'no regions' });
  const head = ['#', 'x', 'y', 'width', 'height', 'area', 'peak', 'mean'];
  return el(
    'table',
    { class: 'regions' },
    el('tr', {}, ...head.map((h) => el('th', { class: h === '#' ? null : 'num', text: h }))),
    ...it.regions.map((r) =>
      el(
        'tr',
        {},
        ...[r.id, r.x, r.y, r.width, r.height, r.area, fmt(r.peak), fmt(r.mean)].map((v) => el('td', { class: 'num', text: String(v) })),
      ),
    ),
  );
}

function card(it: PredictItem, idx: number): PredictView['cards'][number] {
  const badge = el('span', { class: 'pill verdict' });
  const head = el(
    'div',
    { class: 'phead' },
    badge,
    el('b', { class: 'pname', text: it.name }),
    el('span', { class: 'note', text: `score ${fmt(it.score, 5)} · normalised ${fmt(it.normalized, 3)} · ${it.width}×${it.height} px` }),
  );
  const pic = it.composite
    ? el('img', { class: 'composite', src: it.composite, loading: 'lazy', alt: `${it.name}: image, heatmap, mask` })
    : null;
  const box = el('article', { class: 'pcard', 'data-name': it.name }, head, pic, el('div', { class: 'regions-wrap' }, regionsTable(it)));
  return { el: box, badge, idx };
}

function drawColourScale(p: PagePredict): void {
  const box = $('colour-scale');
  const c = p.colourScale;
  if (!c) {
    box.append(el('p', { class: 'note', text: 'no pictures (predict --no-pictures)' }));
    return;
  }
  const bar = el('div', { id: 'colour-bar', class: 'colour-bar' });
  bar.style.background = c.gradient;
  const labels = el(
    'div',
    { class: 'colour-labels' },
    el('span', { text: fmt(c.lo) }),
    el('span', { text: `${fmt(c.threshold)} (pixel threshold)` }),
    el('span', { text: fmt(c.hi) }),
  );
  box.append(
    bar,
    labels,
    el('p', { class: 'note', text: 'raw anomaly score per pixel, the same scale for every image (fixed by the bank)' }),
  );
}

function drawInfo(p: PagePredict): void {
  const t = p.thresholds;
  const rows: [string, string][] = [
    ['bank', `${p.bank.path} (${p.bank.images} images${p.bank.backbone ? `, ${p.bank.backbone}` : ''})`],
    ['image threshold', `${fmt(t.image, 6)} (${t.source})`],
    ['pixel threshold', fmt(t.pixel, 6)],
    ['images', String(p.items.length)],
  ];
  if (p.skipped.length) rows.push(['skipped', p.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ')]);
  $('pinfo').append(el('table', { class: 'kv' }, ...rows.map(([k, v]) => el('tr', {}, el('td', { text: k }), el('td', { text: v })))));
}

function applyFilter(v: PredictView): void {
  const want = $<HTMLSelectElement>('pfilter').value;
  let shown = 0;
  for (const c of v.cards) {
    const hide = want !== '' && c.el.dataset.verdict !== want;
    c.el.hidden = hide;
    if (!hide) shown++;
  }
  $('pcount').textContent = `${shown} of ${v.cards.length} images`;
}

function setThreshold(v: PredictView, t: number, fromSlider: boolean): void {
  v.thr = t;
  let ng = 0;
  for (const c of v.cards) {
    const bad = isNg(v.scores[c.idx]!, t);
    if (bad) ng++;
    c.el.dataset.verdict = bad ? 'NG' : 'OK';
    c.badge.textContent = bad ? 'NG' : 'OK';
    c.badge.className = `pill verdict ${bad ? 'ng' : 'ok'}`;
  }
  $('pcount-ng').textContent = String(ng);
  $('pcount-ok').textContent = String(v.cards.length - ng);
  $<HTMLInputElement>('pthr-value').value = String(t);
  const [lo, hi] = v.range;
  if (!fromSlider) $<HTMLInputElement>('pthr-range').value = String(Math.round((STEPS * (Math.min(hi, Math.max(lo, t)) - lo)) / (hi - lo)));
  const moved = t !== v.p.thresholds.image;
  $('pthr-notes').textContent =
    `NG when score ≥ threshold. predict used ${fmt(v.p.thresholds.image, 6)} (${v.p.thresholds.source})` +
    (moved ? '; verdicts shown at the chosen threshold. ' : '. ') +
    'Regions and normalised scores are as predict wrote them (its pixel and image thresholds).';
  document.body.dataset.threshold = String(t);
  applyFilter(v);
}

function wire(v: PredictView): void {
  const input = (id: string): HTMLInputElement => $<HTMLInputElement>(id);
  input('pthr-range').addEventListener('input', () => {
    const [lo, hi] = v.range;
    setThreshold(v, lo + ((hi - lo) * Number(input('pthr-range').value)) / STEPS, true);
  });
  input('pthr-value').addEventListener('change', () => {
    const t = Number(input('pthr-value').value);
    if (input('pthr-value').value.trim() !== '' && Number.isFinite(t)) setThreshold(v, t, false);
  });
  $('pthr-reset').addEventListener('click', () => setThreshold(v, v.p.thresholds.image, false));
  $('pfilter').addEventListener('change', () => applyFilter(v));
  $('export-ng').addEventListener('click', () =>
    download(
      'ng-list.csv',
      ngListCsv(
        v.cards.map((c) => v.p.items[c.idx]!),
        v.thr,
      ),
      'text/csv',
    ),
  );
  $('save-threshold').addEventListener('click', () => {
    const src = `report.html: chosen on the page (predict used ${v.p.thresholds.image}, ${v.p.thresholds.source})`;
    download('threshold.json', thresholdFileText(v.thr, v.p.thresholds.pixel, src), 'application/json');
  });
}

/** Draws the predict page and starts at predict's threshold. */
export function startPredictPage(p: PagePredict): void {
  const scores = p.items.map((it) => it.score ?? Number.NaN);
  const [lo, hi] = scoreRange(scores.concat([p.thresholds.image]));
  const view: PredictView = { p, scores, range: [lo, hi > lo ? hi : lo + 1], cards: [], thr: p.thresholds.image };
  view.cards = rankByScore(scores).map((i) => card(p.items[i]!, i));
  $('plist').append(...view.cards.map((c) => c.el));
  drawColourScale(p);
  drawInfo(p);
  wire(view);
  setThreshold(view, p.thresholds.image, false);
}
