/**
 * report.html: one self-contained page (inline CSS, inline script, inline JSON data; images are
 * relative files under <cat>/report/). A Content-Security-Policy forbids any network access
 * beyond the page's own folder.
 *
 * The script is the bundle of src/report/page/ (TypeScript, type-checked with the DOM lib),
 * written by `npm run build` to dist/report/page.js and read here once.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { PageData } from './page-data.js';
import { PAGE_CSS } from './page-style.js';
import { PREDICT_BODY } from './predict-html.js';

export type { PageCategory, PageData, PageItem } from './page-data.js';

/** Where the build puts the page bundle, relative to the package root. */
export const PAGE_BUNDLE = join('dist', 'report', 'page.js');

/** The package root: the nearest folder above this module with a package.json. */
function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return d;
}

let pageScript: string | null = null;

/** The page script (the esbuild bundle); an error naming the file when it was not built. */
export function pageScriptSource(): string {
  if (pageScript !== null) return pageScript;
  const file = join(packageRoot(), PAGE_BUNDLE);
  let src: string;
  try {
    src = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(
      `report page script ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found (run npm run build)' : (e as Error).message}`,
    );
  }
  if (/<\/script|<!--/i.test(src)) throw new Error(`report page script ${file} contains </script or <!--`);
  pageScript = src;
  return src;
}

const escapeHtml = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** JSON safe inside <script>: no '</script', no '<!--', no U+2028/2029 surprises. */
export function scriptJson(v: unknown): string {
  return JSON.stringify(v)
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

export const REPORT_CSP =
  "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'";

/** The page body of a `musc run` folder: category tabs, charts, threshold panel, gallery, viewer. */
const RUN_BODY = `<main>
<div id="cat-tabs" class="tabs"></div>
<div id="overview" class="panel overview" hidden></div>
<h2 id="cat-title"></h2>
<div class="panels">
  <section id="metrics" class="panel"></section>
  <section id="hist" class="panel"></section>
  <section id="roc" class="panel"></section>
  <section id="settings" class="panel"></section>
</div>
<section id="threshold" class="panel threshold">
  <h3>Threshold</h3>
  <div class="thr-row">
    <div class="slider-wrap"><div id="slider-marks"></div><input id="thr-range" type="range" min="0" max="1000" step="1" value="0" aria-label="threshold"></div>
    <label>score &ge; <input id="thr-value" type="number" step="any" aria-label="threshold value"></label>
    <button id="thr-f1" type="button" title="the threshold with the highest F1 on the labelled images">F1-optimal</button>
    <button id="thr-free" type="button" title="the label-free threshold of the scores (no labels needed)">label-free</button>
  </div>
  <div class="thr-row" style="margin-top:8px">
    <div class="counts"><span><span class="pill ng">NG</span> <b id="count-ng">0</b></span><span><span class="pill ok">OK</span> <b id="count-ok">0</b></span></div>
    <div id="pr" class="counts"><span>precision <b id="precision">-</b>%</span><span>recall <b id="recall">-</b>%</span><span>F1 <b id="f1">-</b>%</span></div>
    <table id="cm" class="cm">
      <tr><th></th><th>pred. NG</th><th>pred. OK</th></tr>
      <tr><th>defective</th><td id="cm-tp" title="true positives">0</td><td id="cm-fn" title="false negatives">0</td></tr>
      <tr><th>good</th><td id="cm-fp" title="false positives">0</td><td id="cm-tn" title="true negatives">0</td></tr>
    </table>
  </div>
  <p id="thr-notes" class="note"></p>
</section>
<div class="controls">
  <label>Type <select id="filter-defect"></select></label>
  <label>Predicted <select id="filter-pred"><option value="">all</option><option value="NG">NG</option><option value="OK">OK</option></select></label>
  <label><input id="show-outline" type="checkbox" checked> ground-truth outline</label>
  <span id="gallery-count" class="note"></span>
</div>
<div id="gallery" class="gallery"></div>
</main>
<dialog id="viewer">
  <div class="viewer-head"><span id="viewer-title" class="title"></span><span id="viewer-info" class="note grow"></span>
  <button id="viewer-prev" type="button" title="previous (left arrow)">&larr;</button><button id="viewer-next" type="button" title="next (right arrow)">&rarr;</button><button id="viewer-close" type="button">Close</button></div>
  <div id="viewer-imgs" class="viewer-imgs"></div>
  <p id="viewer-repeats" class="note" hidden></p>
</dialog>
`;

/** report.html of a `musc run` folder (data.categories) or of a `musc predict` folder (data.predict). */
export function renderReportHtml(data: PageData): string {
  const script = pageScriptSource();
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="${REPORT_CSP}">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(data.title)}</title>
<style>${PAGE_CSS}</style>
</head>
<body>
<header><h1>${escapeHtml(data.title)}</h1><span class="sub">${escapeHtml(data.subtitle)}</span></header>
${data.predict ? PREDICT_BODY : RUN_BODY}<script type="application/json" id="musc-data">${scriptJson(data)}</script>
<script>
${script}
</script>
</body>
</html>
`;
}
