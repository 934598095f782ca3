/** The overview table and tabs (several categories), the metrics panel and the run panel. */
import { $, el, fmt, pct } from './dom.js';
import { ui, type CatState } from './state.js';

const OVERVIEW_KEYS: [string, string][] = [
  ['image_auroc', 'AUROC-cls'],
  ['image_f1max', 'F1-cls'],
  ['image_ap', 'AP-cls'],
  ['pixel_auroc', 'AUROC-segm'],
  ['pixel_f1max', 'F1-segm'],
  ['pixel_ap', 'AP-segm'],
  ['pixel_pro', 'PRO'],
  ['aupro', 'AUPRO'],
];
const METRIC_NAMES: [string, string][] = [
  ['image_auroc', 'Image AUROC'],
  ['image_f1max', 'Image F1-max'],
  ['image_ap', 'Image AP'],
  ['pixel_auroc', 'Pixel AUROC'],
  ['pixel_f1max', 'Pixel F1-max'],
  ['pixel_ap', 'Pixel AP'],
  ['pixel_pro', 'PRO'],
  ['aupro', 'AUPRO@0.3'],
];

export function drawOverview(cats: CatState[], select: (k: number) => void): void {
  const box = $('overview');
  box.textContent = '';
  if (cats.length < 2) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const t = el(
    'table',
    {},
    el(
      'tr',
      {},
      el('th', { text: 'Category' }),
      ...OVERVIEW_KEYS.map((k) => el('th', { class: 'num', text: k[1] })),
      el('th', { class: 'num', text: 'Images' }),
    ),
  );
  cats.forEach((s, k) => {
    const m = s.c.metrics ?? {};
    t.append(
      el(
        'tr',
        { class: 'clickable' + (s === ui.cur ? ' current' : ''), 'data-cat': k, onclick: () => select(k) },
        el('td', { text: s.c.name }),
        ...OVERVIEW_KEYS.map((kk) => el('td', { class: 'num', text: pct(m[kk[0]]) })),
        el('td', { class: 'num', text: String(s.c.items.length) }),
      ),
    );
  });
  box.append(el('h3', { text: 'All categories (metrics in %)' }), t);
}

export function drawTabs(cats: CatState[], select: (k: number) => void): void {
  const box = $('cat-tabs');
  box.textContent = '';
  if (cats.length < 2) return;
  cats.forEach((s, k) =>
    box.append(
      el('button', { class: 'cat-tab' + (s === ui.cur ? ' active' : ''), 'data-cat': k, onclick: () => select(k), text: s.c.name }),
    ),
  );
}

export function drawMetrics(s: CatState): void {
  const box = $('metrics');
  box.textContent = '';
  const m = s.c.metrics;
  box.append(el('h3', { text: 'Metrics' }));
  const n = s.c.items.length;
  const nd = s.labels.filter((l) => l === 1).length;
  const ng = s.labels.filter((l) => l === 0).length;
  const counts = el('p', {
    class: 'note',
    text:
      n +
      ' images: ' +
      ng +
      ' good, ' +
      nd +
      ' defective' +
      (n - nd - ng ? ', ' + (n - nd - ng) + ' unlabelled' : '') +
      (s.c.skipped.length ? '; ' + s.c.skipped.length + ' skipped' : ''),
  });
  if (!m || METRIC_NAMES.every((k) => m[k[0]] === null || m[k[0]] === undefined)) {
    box.append(
      el('p', {
        text:
          nd && ng
            ? 'No metrics in metrics.json (not computed in this run).'
            : 'No metrics: the images are not labelled as both good and defective.',
      }),
      counts,
    );
    return;
  }
  const t = el('table', { class: 'kv', id: 'metrics-table' });
  for (const [k, label] of METRIC_NAMES)
    t.append(el('tr', { 'data-metric': k }, el('td', { text: label }), el('td', { class: 'num', text: pct(m[k]) })));
  box.append(
    t,
    counts,
    el('p', { class: 'note', text: 'In percent, from metrics.json. ROC AUC of the ranking scores: ' + pct(s.roc?.auc) }),
  );
}

function kvTable(obj: Record<string, unknown> | null): HTMLTableElement {
  const t = el('table', { class: 'kv' });
  for (const [k, v] of Object.entries(obj ?? {}))
    t.append(el('tr', {}, el('td', { text: k }), el('td', { text: typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v) })));
  return t;
}

function runSummary(s: CatState): Record<string, string> {
  const c = s.c;
  const head: Record<string, string> = {};
  if (c.dataset) head.dataset = c.dataset;
  if (c.backbone)
    head.backbone =
      c.backbone.name +
      (c.backbone.image_size ? ' @ ' + c.backbone.image_size + ' px' : '') +
      (c.backbone.stages?.length ? ', stages ' + c.backbone.stages.join(',') : '');
  if (c.mapSize) head['map size'] = c.mapSize + ' x ' + c.mapSize;
  if (c.peakRssMb) head['peak RSS'] = c.peakRssMb + ' MB';
  return head;
}

export function drawSettings(s: CatState): void {
  const box = $('settings');
  box.textContent = '';
  const c = s.c;
  box.append(el('h3', { text: 'Run' }), kvTable(runSummary(s)));
  if (c.timings) {
    const t = el(
      'table',
      { id: 'timings' },
      el(
        'tr',
        {},
        el('th', { text: 'Stage' }),
        el('th', { class: 'num', text: 'Total ms' }),
        el('th', { class: 'num', text: 'ms / image' }),
      ),
    );
    for (const [k, v] of Object.entries(c.timings))
      t.append(
        el(
          'tr',
          {},
          el('td', { text: k }),
          el('td', { class: 'num', text: fmt(v, 6) }),
          el('td', { class: 'num', text: fmt(c.timingsPerImage?.[k], 4) }),
        ),
      );
    box.append(el('h3', { text: 'Timings' }), t);
  }
  if (c.settings) box.append(el('details', {}, el('summary', { text: 'Settings' }), kvTable(c.settings)));
  if (c.versions) box.append(el('details', {}, el('summary', { text: 'Versions' }), kvTable(c.versions)));
  const warns = c.warnings.concat(c.skipped.map((k) => 'skipped ' + k.path + ': ' + k.reason));
  if (warns.length)
    box.append(
      el(
        'details',
        { open: true },
        el('summary', { class: 'warn', text: warns.length + ' warning(s)' }),
        el('pre', { text: warns.join('\n') }),
      ),
    );
}
