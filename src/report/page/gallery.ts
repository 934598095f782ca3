/** The ranked gallery (lazy-loaded thumbnails) and its filters. */
import { $, el, fmt, labelText } from './dom.js';
import { ui, type CatState } from './state.js';
import type { PageCategory, PageItem } from '../page-data.js';

/** URL of an asset of an item, relative to report.html. */
export const urlOf = (c: PageCategory, kind: string, it: PageItem, ext: string): string => c.base + kind + '/' + it.id + '.' + ext;

function loadImages(root: Element): void {
  for (const img of root.querySelectorAll<HTMLImageElement>('img[data-src]')) {
    img.src = img.dataset.src!;
    img.removeAttribute('data-src');
  }
}

// lazy loading of thumbnails: a card's images load when it comes within 600 px of the viewport
const io =
  'IntersectionObserver' in window
    ? new IntersectionObserver(
        (entries) => {
          for (const e of entries) {
            if (!e.isIntersecting) continue;
            loadImages(e.target);
            io!.unobserve(e.target);
          }
        },
        { rootMargin: '600px 0px' },
      )
    : null;

function thumbBox(c: PageCategory, it: PageItem, kind: 'thumb' | 'thumb-overlay', outline: boolean): HTMLElement {
  const box = el('div', { class: 'tw' });
  const have = kind === 'thumb' ? it.o : it.m;
  if (!have) {
    box.append(el('span', { class: 'missing', text: kind === 'thumb' ? 'no image' : 'no map' }));
    return box;
  }
  box.append(el('img', { 'data-src': urlOf(c, kind, it, 'jpg'), alt: '', loading: 'lazy', decoding: 'async' }));
  if (outline && it.g)
    box.append(el('img', { class: 'outline', 'data-src': urlOf(c, 'thumb-outline', it, 'png'), alt: '', loading: 'lazy' }));
  return box;
}

function card(s: CatState, idx: number, r: number, open: (idx: number) => void): HTMLElement {
  const c = s.c;
  const it = c.items[idx]!;
  const pred = el('span', { class: 'pill pred' });
  const e = el(
    'div',
    {
      class: 'card',
      tabindex: 0,
      'data-idx': idx,
      'data-rank': r + 1,
      'data-path': it.path,
      'data-defect': it.defect,
      'data-label': it.label === null ? '' : it.label,
      'data-score': String(s.scores[idx]),
    },
    el('div', { class: 'thumbs' }, thumbBox(c, it, 'thumb', true), thumbBox(c, it, 'thumb-overlay', true)),
    el(
      'div',
      { class: 'meta' },
      el('span', { class: 'rank', text: '#' + (r + 1) }),
      el('span', { class: 'score', title: 'score (RsCIN); image score of the map ' + fmt(it.raw, 6), text: fmt(s.scores[idx]) }),
      el('span', { class: 'lab ' + (it.label === 1 ? 'l1' : it.label === 0 ? 'l0' : 'lu'), text: labelText(it.label, it.defect) }),
      pred,
    ),
    el('div', { class: 'path', title: it.path }, el('bdi', { text: it.path })),
  );
  e.addEventListener('click', () => open(idx));
  e.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') open(idx);
  });
  ui.cards.push({ el: e, idx, pred });
  return e;
}

function defectFilter(c: PageCategory): void {
  const defects = [...new Set(c.items.map((it) => it.defect))].sort();
  const fd = $<HTMLSelectElement>('filter-defect');
  fd.textContent = '';
  fd.append(el('option', { value: '', text: 'all types' }));
  for (const d of defects)
    fd.append(el('option', { value: d, text: (d || '(none)') + ' (' + c.items.filter((it) => it.defect === d).length + ')' }));
  $<HTMLSelectElement>('filter-pred').value = '';
}

export function drawGallery(s: CatState, open: (idx: number) => void): void {
  const g = $('gallery');
  g.textContent = '';
  ui.cards = [];
  s.rank.forEach((idx, r) => {
    const e = card(s, idx, r, open);
    g.append(e);
    if (io) io.observe(e);
    else loadImages(e);
  });
  defectFilter(s.c);
}

export function applyFilters(): void {
  const d = $<HTMLSelectElement>('filter-defect').value;
  const p = $<HTMLSelectElement>('filter-pred').value;
  ui.visible = [];
  for (const c of ui.cards) {
    const show = (!d || c.el.dataset.defect === d) && (!p || c.el.dataset.pred === p);
    c.el.hidden = !show;
    if (show) ui.visible.push(c.idx);
  }
  $('gallery-count').textContent = ui.visible.length + ' of ' + ui.cards.length + ' images, highest score first';
}
