/**
 * The report page's script (plain browser JavaScript, inlined into report.html after the
 * statistics functions of stats.ts). It reads the JSON data block #musc-data (PageData of
 * html.ts), then per category draws the metrics, histogram, ROC curve, threshold panel and the
 * ranked gallery, and the large viewer. No network: images are relative files, lazy-loaded when
 * a card comes near the viewport (IntersectionObserver; loading="lazy" as well).
 *
 * Uses from stats.ts: rankByScore, confusionAt, rocCurve, bestF1Threshold, labelFreeThreshold,
 * scoreRange, scoreHistogram.
 */
export const PAGE_SCRIPT = String.raw`
'use strict';
const DATA = JSON.parse(document.getElementById('musc-data').textContent);
const STEPS = 1000;
const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids) if (c !== null && c !== undefined) e.append(c);
  return e;
}
const SVGNS = 'http://www.w3.org/2000/svg';
function sv(tag, attrs, ...kids) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  for (const c of kids) e.append(c);
  return e;
}
function fmt(x, digits) {
  if (x === null || x === undefined || Number.isNaN(x)) return '-';
  if (!Number.isFinite(x)) return String(x);
  return String(Number(x.toPrecision(digits || 4)));
}
const pct = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : (100 * x).toFixed(1));
const labelText = (l, defect) => (l === 1 ? 'defective' : l === 0 ? 'good' : 'unlabelled') + (defect && defect !== 'good' && defect !== 'ok' ? ' · ' + defect : '');

// ---- state
const cats = DATA.categories.map((c) => {
  const scores = c.items.map((it) => (it.score === null ? NaN : it.score));
  const labels = c.items.map((it) => it.label);
  const hasLabels = labels.some((l) => l === 0) && labels.some((l) => l === 1);
  const anyDefective = labels.some((l) => l === 1);
  const free = labelFreeThreshold(scores);
  // the slider and histogram span the scores and the label-free suggestion (it may lie above every score)
  const range = scoreRange(free ? scores.concat([free.threshold]) : scores);
  return {
    c, scores, labels, hasLabels,
    rank: rankByScore(scores),
    range,
    roc: rocCurve(scores, labels),
    f1: anyDefective ? bestF1Threshold(scores, labels) : null,
    free,
    thr: null,
  };
});
let cur = null;
let cards = [];
let visible = [];
let viewerPos = -1;

function urlOf(c, kind, it, ext) { return c.base + kind + '/' + it.id + '.' + ext; }

// ---- lazy loading of thumbnails
const io = 'IntersectionObserver' in window ? new IntersectionObserver((entries) => {
  for (const e of entries) {
    if (!e.isIntersecting) continue;
    for (const img of e.target.querySelectorAll('img[data-src]')) { img.src = img.dataset.src; img.removeAttribute('data-src'); }
    io.unobserve(e.target);
  }
}, { rootMargin: '600px 0px' }) : null;

// ---- overview (several categories)
function drawOverview() {
  const box = $('overview');
  box.textContent = '';
  if (cats.length < 2) { box.hidden = true; return; }
  box.hidden = false;
  const keys = [['image_auroc', 'AUROC-cls'], ['image_f1max', 'F1-cls'], ['image_ap', 'AP-cls'], ['pixel_auroc', 'AUROC-segm'], ['pixel_f1max', 'F1-segm'], ['pixel_ap', 'AP-segm'], ['pixel_pro', 'PRO'], ['aupro', 'AUPRO']];
  const t = el('table', {}, el('tr', {}, el('th', { text: 'Category' }), ...keys.map((k) => el('th', { class: 'num', text: k[1] })), el('th', { class: 'num', text: 'Images' })));
  cats.forEach((s, k) => {
    const m = s.c.metrics || {};
    t.append(el('tr', { class: 'clickable' + (s === cur ? ' current' : ''), 'data-cat': k, onclick: () => select(k) }, el('td', { text: s.c.name }), ...keys.map((kk) => el('td', { class: 'num', text: pct(m[kk[0]]) })), el('td', { class: 'num', text: String(s.c.items.length) })));
  });
  box.append(el('h3', { text: 'All categories (metrics in %)' }), t);
}

function drawTabs() {
  const box = $('cat-tabs');
  box.textContent = '';
  if (cats.length < 2) return;
  cats.forEach((s, k) => box.append(el('button', { class: 'cat-tab' + (s === cur ? ' active' : ''), 'data-cat': k, onclick: () => select(k), text: s.c.name })));
}

// ---- metrics, settings
function drawMetrics(s) {
  const box = $('metrics');
  box.textContent = '';
  const m = s.c.metrics;
  const names = [['image_auroc', 'Image AUROC'], ['image_f1max', 'Image F1-max'], ['image_ap', 'Image AP'], ['pixel_auroc', 'Pixel AUROC'], ['pixel_f1max', 'Pixel F1-max'], ['pixel_ap', 'Pixel AP'], ['pixel_pro', 'PRO'], ['aupro', 'AUPRO@0.3']];
  box.append(el('h3', { text: 'Metrics' }));
  const n = s.c.items.length;
  const nd = s.labels.filter((l) => l === 1).length;
  const ng = s.labels.filter((l) => l === 0).length;
  const counts = el('p', { class: 'note', text: n + ' images: ' + ng + ' good, ' + nd + ' defective' + (n - nd - ng ? ', ' + (n - nd - ng) + ' unlabelled' : '') + (s.c.skipped.length ? '; ' + s.c.skipped.length + ' skipped' : '') });
  if (!m || names.every((k) => m[k[0]] === null || m[k[0]] === undefined)) {
    box.append(el('p', { text: nd && ng ? 'No metrics in metrics.json (not computed in this run).' : 'No metrics: the images are not labelled as both good and defective.' }), counts);
    return;
  }
  const t = el('table', { class: 'kv', id: 'metrics-table' });
  for (const [k, label] of names) t.append(el('tr', { 'data-metric': k }, el('td', { text: label }), el('td', { class: 'num', text: pct(m[k]) })));
  box.append(t, counts, el('p', { class: 'note', text: 'In percent, from metrics.json. ROC AUC recomputed here: ' + pct(s.roc.auc) }));
}

function kvTable(obj) {
  const t = el('table', { class: 'kv' });
  for (const [k, v] of Object.entries(obj || {})) t.append(el('tr', {}, el('td', { text: k }), el('td', { text: typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v) })));
  return t;
}

function drawSettings(s) {
  const box = $('settings');
  box.textContent = '';
  const c = s.c;
  box.append(el('h3', { text: 'Run' }));
  const head = {};
  if (c.dataset) head.dataset = c.dataset;
  if (c.backbone) head.backbone = c.backbone.name + (c.backbone.image_size ? ' @ ' + c.backbone.image_size + ' px' : '') + (c.backbone.stages && c.backbone.stages.length ? ', stages ' + c.backbone.stages.join(',') : '');
  if (c.mapSize) head['map size'] = c.mapSize + ' x ' + c.mapSize;
  if (c.peakRssMb) head['peak RSS'] = c.peakRssMb + ' MB';
  box.append(kvTable(head));
  if (c.timings) {
    const t = el('table', { id: 'timings' }, el('tr', {}, el('th', { text: 'Stage' }), el('th', { class: 'num', text: 'Total ms' }), el('th', { class: 'num', text: 'ms / image' })));
    for (const [k, v] of Object.entries(c.timings)) t.append(el('tr', {}, el('td', { text: k }), el('td', { class: 'num', text: fmt(v, 6) }), el('td', { class: 'num', text: fmt((c.timingsPerImage || {})[k], 4) })));
    box.append(el('h3', { text: 'Timings' }), t);
  }
  if (c.settings) box.append(el('details', {}, el('summary', { text: 'Settings' }), kvTable(c.settings)));
  if (c.versions) box.append(el('details', {}, el('summary', { text: 'Versions' }), kvTable(c.versions)));
  const warns = c.warnings.concat(c.skipped.map((k) => 'skipped ' + k.path + ': ' + k.reason));
  if (warns.length) box.append(el('details', { open: true }, el('summary', { class: 'warn', text: warns.length + ' warning(s)' }), el('pre', { text: warns.join('\n') })));
}

// ---- histogram and ROC
const W = 360, H = 170, PAD = { l: 34, r: 10, t: 10, b: 24 };
function xOf(s, v) { const [lo, hi] = s.range; return PAD.l + (hi > lo ? (v - lo) / (hi - lo) : 0.5) * (W - PAD.l - PAD.r); }
function drawHistogram(s) {
  const box = $('hist');
  box.textContent = '';
  box.append(el('h3', { text: 'Image scores' }));
  const [lo, hi] = s.range;
  const bins = Math.max(10, Math.min(40, Math.ceil(Math.sqrt(s.scores.length) * 2)));
  const h = scoreHistogram(s.scores, s.labels, lo, hi, bins);
  const max = Math.max(1, ...h.good, ...h.defective, ...h.unknown);
  const g = sv('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, id: 'hist-svg' });
  const bw = (W - PAD.l - PAD.r) / bins;
  const yOf = (c) => H - PAD.b - (c / max) * (H - PAD.t - PAD.b);
  const series = [['unknown', '#8a94a6'], ['good', '#1f9d55'], ['defective', '#d64545']];
  for (const [key, colour] of series) {
    h[key].forEach((c, b) => { if (c > 0) g.append(sv('rect', { x: PAD.l + b * bw + 0.5, y: yOf(c), width: Math.max(1, bw - 1), height: H - PAD.b - yOf(c), fill: colour, 'fill-opacity': 0.55, class: 'bar-' + key }, sv('title', {}, document.createTextNode(key + ': ' + c + ' in [' + fmt(h.edges[b]) + ', ' + fmt(h.edges[b + 1]) + ']')))); });
  }
  g.append(sv('line', { x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b, stroke: '#999' }));
  g.append(sv('text', { x: PAD.l, y: H - 8, 'text-anchor': 'start' }, document.createTextNode(fmt(lo))));
  g.append(sv('text', { x: W - PAD.r, y: H - 8, 'text-anchor': 'end' }, document.createTextNode(fmt(hi))));
  g.append(sv('text', { x: PAD.l - 4, y: PAD.t + 8, 'text-anchor': 'end' }, document.createTextNode(String(max))));
  if (s.f1) g.append(sv('line', { x1: xOf(s, s.f1.threshold), x2: xOf(s, s.f1.threshold), y1: PAD.t, y2: H - PAD.b, stroke: 'var(--f1)', 'stroke-dasharray': '4 3' }));
  if (s.free) g.append(sv('line', { x1: xOf(s, s.free.threshold), x2: xOf(s, s.free.threshold), y1: PAD.t, y2: H - PAD.b, stroke: 'var(--free)', 'stroke-dasharray': '1 3', 'stroke-width': 2 }));
  g.append(sv('line', { id: 'hist-thr', x1: 0, x2: 0, y1: PAD.t - 4, y2: H - PAD.b, stroke: '#1c2330', 'stroke-width': 2 }));
  box.append(g);
  const lg = el('div', { class: 'legend' });
  if (s.labels.some((l) => l === 0)) lg.append(el('span', {}, el('span', { class: 'sw', style: 'background:#1f9d55' }), 'good'));
  if (s.labels.some((l) => l === 1)) lg.append(el('span', {}, el('span', { class: 'sw', style: 'background:#d64545' }), 'defective'));
  if (s.labels.some((l) => l === null)) lg.append(el('span', {}, el('span', { class: 'sw', style: 'background:#8a94a6' }), 'unlabelled'));
  lg.append(el('span', {}, '| threshold'));
  if (s.f1) lg.append(el('span', { style: 'color:var(--f1)' }, '┆ F1-optimal'));
  if (s.free) lg.append(el('span', { style: 'color:var(--free)' }, '⋮ label-free'));
  box.append(lg);
}

function drawRoc(s) {
  const box = $('roc');
  box.textContent = '';
  box.append(el('h3', { text: 'ROC curve' }));
  if (s.roc.auc === null) { box.append(el('p', { class: 'note', text: 'Needs good and defective labels.' })); return; }
  const S = 170, P = 26;
  const X = (v) => P + v * (S - P - 8), Y = (v) => S - P - v * (S - P - 8);
  const g = sv('svg', { viewBox: '0 0 ' + S + ' ' + S, width: S * 1.3, height: S * 1.3, id: 'roc-svg' });
  g.append(sv('rect', { x: X(0), y: Y(1), width: X(1) - X(0), height: Y(0) - Y(1), fill: 'none', stroke: '#ccc' }));
  g.append(sv('line', { x1: X(0), y1: Y(0), x2: X(1), y2: Y(1), stroke: '#ccc', 'stroke-dasharray': '3 3' }));
  g.append(sv('polyline', { points: s.roc.fpr.map((f, i) => X(f).toFixed(1) + ',' + Y(s.roc.tpr[i]).toFixed(1)).join(' ') + ' ' + X(1) + ',' + Y(1), fill: 'none', stroke: '#2f6fde', 'stroke-width': 2 }));
  g.append(sv('circle', { id: 'roc-point', r: 4, fill: '#1c2330' }));
  g.append(sv('text', { x: X(0.5), y: S - 6, 'text-anchor': 'middle' }, document.createTextNode('false-positive rate')));
  g.append(sv('text', { x: 10, y: Y(0.5), transform: 'rotate(-90 10 ' + Y(0.5) + ')', 'text-anchor': 'middle' }, document.createTextNode('true-positive rate')));
  box.append(g, el('div', { class: 'legend', text: 'AUC ' + pct(s.roc.auc) + '%; dot: current threshold' }));
}

// ---- threshold
function sliderPos(s, t) { const [lo, hi] = s.range; return hi > lo ? Math.round(Math.min(1, Math.max(0, (t - lo) / (hi - lo))) * STEPS) : 0; }
function drawThresholdPanel(s) {
  const [lo, hi] = s.range;
  const marks = $('slider-marks');
  marks.textContent = '';
  const at = (t) => (100 * sliderPos(s, t) / STEPS) + '%';
  if (s.f1) marks.append(el('span', { class: 'mark f1', id: 'mark-f1', style: 'left:' + at(s.f1.threshold), title: 'F1-optimal ' + fmt(s.f1.threshold, 6) }));
  if (s.free) marks.append(el('span', { class: 'mark free', id: 'mark-free', style: 'left:' + at(s.free.threshold), title: 'label-free ' + fmt(s.free.threshold, 6) }));
  $('thr-range').dataset.lo = String(lo);
  $('thr-range').dataset.hi = String(hi);
  $('thr-value').min = String(lo);
  $('thr-value').max = String(hi);
  $('thr-value').step = 'any';
  $('thr-f1').hidden = !s.f1;
  $('thr-free').hidden = !s.free;
  const notes = [];
  if (s.f1) notes.push('F1-optimal threshold ' + fmt(s.f1.threshold, 6) + ' (F1 ' + pct(s.f1.f1) + '%, precision ' + pct(s.f1.precision) + '%, recall ' + pct(s.f1.recall) + '%).');
  if (s.free) notes.push('Label-free suggestion median + 3 x 1.4826 x MAD = ' + fmt(s.free.threshold, 6) + ' (median ' + fmt(s.free.median) + ', MAD ' + fmt(s.free.mad) + ').');
  notes.push('An image is NG when its score >= threshold.');
  $('thr-notes').textContent = notes.join(' ');
  $('cm').hidden = !s.labels.some((l) => l !== null);
  $('pr').hidden = !s.labels.some((l) => l === 1);
}

function setThreshold(t, fromSlider) {
  const s = cur;
  s.thr = t;
  $('threshold').dataset.threshold = String(t);
  if (!fromSlider) $('thr-range').value = String(sliderPos(s, t));
  if (document.activeElement !== $('thr-value')) $('thr-value').value = String(t);
  const c = confusionAt(s.scores, s.labels, t);
  $('count-ng').textContent = String(c.ng);
  $('count-ok').textContent = String(c.ok);
  $('precision').textContent = pct(c.precision);
  $('recall').textContent = pct(c.recall);
  $('f1').textContent = pct(c.f1);
  $('cm-tp').textContent = String(c.tp);
  $('cm-fp').textContent = String(c.fp);
  $('cm-fn').textContent = String(c.fn);
  $('cm-tn').textContent = String(c.tn);
  const hx = xOf(s, Math.min(s.range[1], Math.max(s.range[0], t)));
  const hl = $('hist-thr');
  if (hl) { hl.setAttribute('x1', hx); hl.setAttribute('x2', hx); }
  const rp = $('roc-point');
  if (rp) {
    const P = c.tp + c.fn, N = c.fp + c.tn;
    const S = 170, PP = 26;
    rp.setAttribute('cx', PP + (N ? c.fp / N : 0) * (S - PP - 8));
    rp.setAttribute('cy', S - PP - (P ? c.tp / P : 0) * (S - PP - 8));
  }
  for (const card of cards) {
    const it = s.c.items[card.idx];
    const sc = s.scores[card.idx];
    const ng = Number.isFinite(sc) && sc >= t;
    card.el.dataset.pred = ng ? 'NG' : 'OK';
    card.pred.textContent = ng ? 'NG' : 'OK';
    card.pred.className = 'pill pred ' + (ng ? 'ng' : 'ok');
    card.el.classList.toggle('wrong', it.label !== null && (it.label === 1) !== ng);
  }
  applyFilters();
}

// ---- gallery
function thumbBox(c, it, kind, outline) {
  const box = el('div', { class: 'tw' });
  const have = kind === 'thumb' ? it.o : it.m;
  if (!have) { box.append(el('span', { class: 'missing', text: kind === 'thumb' ? 'no image' : 'no map' })); return box; }
  box.append(el('img', { 'data-src': urlOf(c, kind, it, 'jpg'), alt: '', loading: 'lazy', decoding: 'async' }));
  if (outline && it.g) box.append(el('img', { class: 'outline', 'data-src': urlOf(c, 'thumb-outline', it, 'png'), alt: '', loading: 'lazy' }));
  return box;
}

function drawGallery(s) {
  const g = $('gallery');
  g.textContent = '';
  cards = [];
  const c = s.c;
  s.rank.forEach((idx, r) => {
    const it = c.items[idx];
    const pred = el('span', { class: 'pill pred' });
    const card = el('div', { class: 'card', tabindex: 0, 'data-idx': idx, 'data-rank': r + 1, 'data-path': it.path, 'data-defect': it.defect, 'data-label': it.label === null ? '' : it.label, 'data-score': String(s.scores[idx]) },
      el('div', { class: 'thumbs' }, thumbBox(c, it, 'thumb', true), thumbBox(c, it, 'thumb-overlay', true)),
      el('div', { class: 'meta' }, el('span', { class: 'rank', text: '#' + (r + 1) }), el('span', { class: 'score', title: 'score (RsCIN); map max ' + fmt(it.raw, 6), text: fmt(s.scores[idx]) }), el('span', { class: 'lab ' + (it.label === 1 ? 'l1' : it.label === 0 ? 'l0' : 'lu'), text: labelText(it.label, it.defect) }), pred),
      el('div', { class: 'path', title: it.path }, el('bdi', { text: it.path })));
    card.addEventListener('click', () => openViewer(idx));
    card.addEventListener('keydown', (e) => { if (e.key === 'Enter') openViewer(idx); });
    g.append(card);
    cards.push({ el: card, idx, pred });
    if (io) io.observe(card); else for (const img of card.querySelectorAll('img[data-src]')) img.src = img.dataset.src;
  });
  const defects = [...new Set(c.items.map((it) => it.defect))].sort();
  const fd = $('filter-defect');
  fd.textContent = '';
  fd.append(el('option', { value: '', text: 'all types' }));
  for (const d of defects) fd.append(el('option', { value: d, text: (d || '(none)') + ' (' + c.items.filter((it) => it.defect === d).length + ')' }));
  $('filter-pred').value = '';
}

function applyFilters() {
  const d = $('filter-defect').value;
  const p = $('filter-pred').value;
  visible = [];
  for (const card of cards) {
    const show = (!d || card.el.dataset.defect === d) && (!p || card.el.dataset.pred === p);
    card.el.hidden = !show;
    if (show) visible.push(card.idx);
  }
  $('gallery-count').textContent = visible.length + ' of ' + cards.length + ' images, highest score first';
}

// ---- viewer
function bigBox(c, it, kind, ext, have, outline) {
  const box = el('div', { class: 'big' });
  if (!have) { box.append(el('span', { class: 'missing', text: 'not available' })); return box; }
  box.append(el('img', { src: urlOf(c, kind, it, ext), alt: kind, id: 'viewer-' + kind }));
  if (outline && it.g) box.append(el('img', { class: 'outline', src: urlOf(c, 'outline', it, 'png'), alt: '' }));
  return box;
}
function openViewer(idx) {
  const s = cur, c = s.c, it = c.items[idx];
  viewerPos = visible.indexOf(idx);
  const sc = s.scores[idx];
  const ng = Number.isFinite(sc) && sc >= s.thr;
  $('viewer-title').textContent = it.path;
  $('viewer-info').textContent = 'rank ' + (s.rank.indexOf(idx) + 1) + ' · score ' + fmt(sc, 6) + ' (map max ' + fmt(it.raw, 6) + ') · ' + labelText(it.label, it.defect) + ' · predicted ' + (ng ? 'NG' : 'OK');
  const box = $('viewer-imgs');
  box.textContent = '';
  box.append(
    el('figure', {}, bigBox(c, it, 'orig', 'jpg', it.o, true), el('figcaption', { text: 'original' + (it.g ? ' (ground truth outlined)' : '') })),
    el('figure', {}, bigBox(c, it, 'map', 'png', it.m, false), el('figcaption', { text: 'anomaly map' })),
    el('figure', {}, bigBox(c, it, 'overlay', 'jpg', it.m && it.o, true), el('figcaption', { text: 'overlay' })));
  $('viewer').dataset.idx = String(idx);
  if (!$('viewer').open) $('viewer').showModal();
}
function step(d) {
  if (!visible.length) return;
  viewerPos = Math.min(visible.length - 1, Math.max(0, viewerPos + d));
  openViewer(visible[viewerPos]);
}

// ---- wiring
function select(k) {
  cur = cats[k];
  drawTabs();
  drawOverview();
  $('cat-title').textContent = cur.c.name;
  drawMetrics(cur);
  drawHistogram(cur);
  drawRoc(cur);
  drawSettings(cur);
  drawThresholdPanel(cur);
  drawGallery(cur);
  if (cur.thr === null) cur.thr = cur.f1 ? cur.f1.threshold : cur.free ? cur.free.threshold : cur.range[1];
  setThreshold(cur.thr, false);
}
$('thr-range').addEventListener('input', (e) => {
  const [lo, hi] = cur.range;
  setThreshold(lo + ((hi - lo) * Number(e.target.value)) / STEPS, true);
});
$('thr-value').addEventListener('change', (e) => { const t = Number(e.target.value); if (Number.isFinite(t)) setThreshold(t, false); });
$('thr-f1').addEventListener('click', () => { if (cur.f1) setThreshold(cur.f1.threshold, false); });
$('thr-free').addEventListener('click', () => { if (cur.free) setThreshold(cur.free.threshold, false); });
$('filter-defect').addEventListener('change', applyFilters);
$('filter-pred').addEventListener('change', applyFilters);
$('show-outline').addEventListener('change', (e) => document.body.classList.toggle('no-outline', !e.target.checked));
$('viewer-close').addEventListener('click', () => $('viewer').close());
$('viewer-prev').addEventListener('click', () => step(-1));
$('viewer-next').addEventListener('click', () => step(1));
$('viewer').addEventListener('click', (e) => { if (e.target === $('viewer')) $('viewer').close(); });
$('viewer').addEventListener('keydown', (e) => { if (e.key === 'ArrowLeft') step(-1); else if (e.key === 'ArrowRight') step(1); });
if (cats.length) select(0);
else $('cat-title').textContent = 'No categories';
document.body.dataset.ready = '1';
`;
