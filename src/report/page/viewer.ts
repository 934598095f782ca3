/** The large view of one image: original, map and overlay side by side; arrows step through the visible cards. */
import { $, el, fmt, labelText } from './dom.js';
import { current, ui } from './state.js';
import { urlOf } from './gallery.js';
import { isNg } from '../../threshold.js';
import type { PageCategory, PageItem } from '../page-data.js';

function bigBox(c: PageCategory, it: PageItem, kind: string, ext: string, have: boolean, outline: boolean): HTMLElement {
  const box = el('div', { class: 'big' });
  if (!have) {
    box.append(el('span', { class: 'missing', text: 'not available' }));
    return box;
  }
  box.append(el('img', { src: urlOf(c, kind, it, ext), alt: kind, id: 'viewer-' + kind }));
  if (outline && it.g) box.append(el('img', { class: 'outline', src: urlOf(c, 'outline', it, 'png'), alt: '' }));
  return box;
}

export function openViewer(idx: number): void {
  const s = current(),
    c = s.c,
    it = c.items[idx]!;
  ui.viewerPos = ui.visible.indexOf(idx);
  const sc = s.scores[idx]!;
  const ng = s.thr !== null && isNg(sc, s.thr);
  $('viewer-title').textContent = it.path;
  $('viewer-info').textContent =
    'rank ' +
    (s.rank.indexOf(idx) + 1) +
    ' · score ' +
    fmt(sc, 6) +
    ' (image score of the map ' +
    fmt(it.raw, 6) +
    ') · ' +
    labelText(it.label, it.defect) +
    ' · predicted ' +
    (ng ? 'NG' : 'OK');
  const box = $('viewer-imgs');
  box.textContent = '';
  box.append(
    el(
      'figure',
      {},
      bigBox(c, it, 'orig', 'jpg', !!it.o, true),
      el('figcaption', { text: 'original' + (it.g ? ' (ground truth outlined)' : '') }),
    ),
    el('figure', {}, bigBox(c, it, 'map', 'png', !!it.m, false), el('figcaption', { text: 'anomaly map' })),
    el('figure', {}, bigBox(c, it, 'overlay', 'jpg', !!(it.m && it.o), true), el('figcaption', { text: 'overlay' })),
  );
  showLeftOut(c, it);
  const v = $<HTMLDialogElement>('viewer');
  v.dataset.idx = String(idx);
  if (!v.open) v.showModal();
}

/** The images the repeated-anomaly filter scored this one without (they share a repeated defect), each a link to its large view. */
function showLeftOut(c: PageCategory, it: PageItem): void {
  const p = $('viewer-repeats');
  p.textContent = '';
  p.hidden = !it.w?.length;
  if (!it.w?.length) return;
  p.append(
    `Scored without ${it.w.length} image${it.w.length === 1 ? '' : 's'} it shares a repeated defect with (repeated-anomaly filter): `,
  );
  it.w.forEach((row, k) => {
    if (k > 0) p.append(', ');
    p.append(
      el(
        'a',
        {
          href: '#',
          class: 'repeat-link',
          'data-row': String(row),
          onclick: (e: Event) => {
            e.preventDefault();
            openViewer(row);
          },
        },
        c.items[row]!.path,
      ),
    );
  });
}

export function step(d: number): void {
  if (!ui.visible.length) return;
  ui.viewerPos = Math.min(ui.visible.length - 1, Math.max(0, ui.viewerPos + d));
  openViewer(ui.visible[ui.viewerPos]!);
}
