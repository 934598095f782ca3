/**
 * The report page's script, bundled by esbuild (npm run build -> dist/report/page.js) and inlined
 * into report.html by html.ts. It reads the JSON data block #musc-data (PageData), then per
 * category draws the metrics, histogram, ROC curve, threshold panel and the ranked gallery, and
 * the large viewer; for a `musc predict` folder (data.predict) the predict page (predict.ts).
 * Curves and thresholds come precomputed (src/metrics/evaluator.ts); the page
 * counts NG / OK at the chosen threshold with the one NG rule (src/threshold.ts isNg). No network:
 * images are relative files, lazy-loaded when a card comes near the viewport.
 */

import type { PageData } from '../page-data.js';
import { drawHistogram, drawRoc } from './charts.js';
import { $ } from './dom.js';
import { applyFilters, drawGallery } from './gallery.js';
import { drawMetrics, drawOverview, drawSettings, drawTabs } from './panels.js';
import { startPredictPage } from './predict.js';
import { drawThresholdPanel, STEPS, setThreshold } from './slider.js';
import { type CatState, catState, readData, ui } from './state.js';
import { openViewer, step } from './viewer.js';

let cats: CatState[] = [];

function select(k: number): void {
  const cur = cats[k]!;
  ui.cur = cur;
  drawTabs(cats, select);
  drawOverview(cats, select);
  $('cat-title').textContent = cur.c.name;
  drawMetrics(cur);
  drawHistogram(cur);
  drawRoc(cur);
  drawSettings(cur);
  drawThresholdPanel(cur);
  drawGallery(cur, openViewer);
  if (cur.thr === null) cur.thr = cur.f1 ? cur.f1.threshold : cur.free ? cur.free.threshold : cur.range[1];
  setThreshold(cur.thr, false);
}

function wire(): void {
  const input = (id: string): HTMLInputElement => $<HTMLInputElement>(id);
  input('thr-range').addEventListener('input', () => {
    const [lo, hi] = ui.cur!.range;
    setThreshold(lo + ((hi - lo) * Number(input('thr-range').value)) / STEPS, true);
  });
  input('thr-value').addEventListener('change', () => {
    const t = Number(input('thr-value').value);
    if (Number.isFinite(t)) setThreshold(t, false);
  });
  $('thr-f1').addEventListener('click', () => {
    if (ui.cur?.f1) setThreshold(ui.cur.f1.threshold, false);
  });
  $('thr-free').addEventListener('click', () => {
    if (ui.cur?.free) setThreshold(ui.cur.free.threshold, false);
  });
  $('filter-defect').addEventListener('change', applyFilters);
  $('filter-pred').addEventListener('change', applyFilters);
  input('show-outline').addEventListener('change', () => document.body.classList.toggle('no-outline', !input('show-outline').checked));
  const viewer = $<HTMLDialogElement>('viewer');
  $('viewer-close').addEventListener('click', () => viewer.close());
  $('viewer-prev').addEventListener('click', () => step(-1));
  $('viewer-next').addEventListener('click', () => step(1));
  viewer.addEventListener('click', (e) => {
    if (e.target === viewer) viewer.close();
  });
  viewer.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowLeft') step(-1);
    else if (e.key === 'ArrowRight') step(1);
  });
}

/** The page of a `musc run` folder: categories. */
function startRunPage(data: PageData): void {
  cats = data.categories.map(catState);
  wire();
  if (cats.length) select(0);
  else $('cat-title').textContent = 'No categories';
}

const data = readData();
if (data.predict) startPredictPage(data.predict);
else startRunPage(data);
document.body.dataset.ready = '1';
