/**
 * End to end in headless Chromium (Debian's chromium + playwright-core): builds a report from a
 * small run, opens it from file:// with every non-file request blocked, checks the gallery order,
 * moves the threshold slider and checks the counts against scores.csv, filters, opens an image
 * large, and saves screenshots under test-artifacts/. A `musc predict` folder's report (synthetic images,
 * a bank on the fake backbone): verdict badges, regions tables, the NG list export and the saved
 * threshold file, read back by predict's reader. Skipped with a message when
 * /usr/bin/chromium is missing (CI installs it: apt-get install chromium).
 */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { readThresholdArg } from '../src/bank/calibration.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { f1OptimalThreshold } from '../src/metrics/index.js';
import { parseCsv } from '../src/io/csv.js';
import { parseScoresCsv, type ScoreRow } from '../src/outputs/scores.js';
import { buildReport } from '../src/report/build.js';
import { makePredictFixture, type PredictFixture } from './helpers/predict-fixture.js';
import { artifactsDir, type Fixture, makeFixture, repeatPair, tempDir } from './helpers/report-fixture.js';

const CHROMIUM = process.env.MUSC_CHROMIUM ?? '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
  '--metrics-recording-only',
  '--no-default-browser-check',
];
const skip = existsSync(CHROMIUM)
  ? false
  : `chromium not installed at ${CHROMIUM} (apt-get install chromium; CI installs it): browser test skipped`;
if (skip) console.log(`# ${skip}`);

type Ctx = import('playwright-core').BrowserContext;
// the few browser globals used inside page.evaluate callbacks (the project compiles without the DOM lib)
interface BrowserEl {
  dataset: Record<string, string | undefined>;
  textContent: string | null;
  getBoundingClientRect(): { top: number };
}
interface BrowserImg extends BrowserEl {
  complete: boolean;
  naturalWidth: number;
}
declare const document: {
  getElementById(id: string): BrowserEl | null;
  querySelectorAll(sel: string): ArrayLike<BrowserEl> & Iterable<BrowserEl>;
};
declare const window: { innerHeight: number; scrollTo(x: number, y: number): void };
type Page = import('playwright-core').Page;

let tmp: { dir: string; cleanup: () => Promise<void> };
let fx: Fixture;
let pfx: PredictFixture;
let rows: ScoreRow[];
let userDir = '';
let ctx: Ctx | null = null;

before(async () => {
  if (skip) return;
  tmp = await tempDir('report-browser');
  fx = await makeFixture(
    tmp.dir,
    [
      { name: 'surface', good: 14, defective: 10, seed: 21 },
      { name: 'plate', good: 6, defective: 3, seed: 22 },
    ],
    128,
  );
  await buildReport(fx.out);
  pfx = await makePredictFixture(join(tmp.dir, 'predict-fixture'));
  await buildReport(pfx.out);
  rows = parseScoresCsv(await readFile(join(fx.out, 'surface', 'scores.csv'), 'utf8'));
  await mkdir(artifactsDir, { recursive: true });
  userDir = await mkdtemp(join(tmpdir(), 'musc-chromium-'));
  const { chromium } = await import('playwright-core');
  ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 720 },
    offline: true,
  });
});

after(async () => {
  await ctx?.close();
  if (userDir) await rm(userDir, { recursive: true, force: true });
  await tmp?.cleanup();
  await shutdownCompute();
});

/** Direct counts at threshold t from scores.csv (NG iff score_rscin >= t). */
function counts(t: number): { ng: number; ok: number; tp: number; fp: number; fn: number; tn: number } {
  const c = { ng: 0, ok: 0, tp: 0, fp: 0, fn: 0, tn: 0 };
  for (const r of rows) {
    const ng = r.score_rscin >= t;
    if (ng) c.ng++;
    else c.ok++;
    if (r.label === 1) ng ? c.tp++ : c.fn++;
    if (r.label === 0) ng ? c.fp++ : c.tn++;
  }
  return c;
}

async function shown(
  page: Page,
): Promise<{ ng: number; ok: number; tp: number; fp: number; fn: number; tn: number; t: number; cardsNg: number }> {
  return page.evaluate(() => {
    const n = (id: string): number => Number(document.getElementById(id)!.textContent);
    return {
      ng: n('count-ng'),
      ok: n('count-ok'),
      tp: n('cm-tp'),
      fp: n('cm-fp'),
      fn: n('cm-fn'),
      tn: n('cm-tn'),
      t: Number(document.getElementById('threshold')!.dataset.threshold),
      cardsNg: document.querySelectorAll('#gallery .card[data-pred="NG"]').length,
    };
  });
}

/** Starts at the F1-optimal threshold; slider and typed thresholds move counts, matrix and badges. Returns the typed one. */
async function checkThresholdSlider(page: Page): Promise<number> {
  // starts at the F1-optimal threshold, counts agree with scores.csv
  const scores = rows.map((r) => r.score_rscin);
  const labels = rows.map((r) => r.label ?? 0);
  let s = await shown(page);
  assert.equal(s.t, f1OptimalThreshold(scores, labels).threshold, 'the F1-optimal threshold of the metrics (f1_threshold of metrics.json)');
  assert.deepEqual({ ...s, t: 0, cardsNg: 0 }, { ...counts(s.t), t: 0, cardsNg: 0 });
  assert.equal(s.cardsNg, s.ng);
  assert.equal(await page.locator('#mark-f1').count(), 1, 'F1-optimal threshold marked on the slider');

  // move the slider: counts, confusion matrix and badges follow
  // the slider spans [lo, hi]: every score (and the label-free suggestion)
  const lo = Number(await page.locator('#thr-range').getAttribute('data-lo'));
  const hi = Number(await page.locator('#thr-range').getAttribute('data-hi'));
  assert.ok(lo <= Math.min(...scores) && hi >= Math.max(...scores), `slider range [${lo}, ${hi}]`);
  for (const v of [0, 300, 600, 1000]) {
    await page.locator('#thr-range').fill(String(v));
    s = await shown(page);
    assert.ok(Math.abs(s.t - (lo + ((hi - lo) * v) / 1000)) <= 1e-12 * Math.max(1, Math.abs(hi)), `slider ${v} -> threshold ${s.t}`);
    const c = counts(s.t);
    assert.deepEqual({ ng: s.ng, ok: s.ok, tp: s.tp, fp: s.fp, fn: s.fn, tn: s.tn }, c, `slider ${v}`);
    assert.equal(s.cardsNg, c.ng);
  }
  assert.equal(s.ng, rows.filter((r) => r.score_rscin >= hi).length, 'at the top only scores at the top are NG');
  // typing an exact threshold
  const mid = [...scores].sort((a, b) => a - b)[Math.floor(scores.length / 2)]!;
  await page.locator('#thr-value').fill(String(mid));
  await page.locator('#thr-value').press('Enter');
  s = await shown(page);
  assert.equal(s.t, mid);
  assert.equal(s.ng, counts(mid).ng);
  await page.screenshot({ path: join(artifactsDir, 'report-threshold.png') });
  return mid;
}

/** Filters by prediction and defect type; thumbnails load when scrolled near. */
async function checkFiltersAndLazyLoading(page: Page, mid: number): Promise<void> {
  // filters: predicted NG, then a defect type
  await page.selectOption('#filter-pred', 'NG');
  assert.equal(await page.locator('#gallery .card:visible').count(), counts(mid).ng);
  await page.selectOption('#filter-pred', '');
  await page.selectOption('#filter-defect', 'crack');
  const crack = await page.$$eval('#gallery .card:not([hidden])', (els) => els.map((e) => (e as unknown as BrowserEl).dataset.defect));
  assert.equal(crack.length, rows.filter((r) => r.defect === 'crack').length);
  assert.ok(crack.every((d) => d === 'crack'));
  await page.selectOption('#filter-defect', '');

  // lazy loading: the last card gets its thumbnails only when scrolled near
  const last = page.locator('#gallery .card').last();
  const far = await last.evaluate((e) => (e as unknown as BrowserEl).getBoundingClientRect().top > window.innerHeight + 700);
  if (far) assert.ok((await last.locator('img[data-src]').count()) > 0, 'far card not loaded yet');
  await last.scrollIntoViewIfNeeded();
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll('#gallery .card:last-child img')] as unknown as BrowserImg[];
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  });
}

/** The large viewer: original, map and overlay; arrow keys and Escape. */
async function checkViewer(page: Page, expected: string[]): Promise<void> {
  // open the top image large: original, map and overlay side by side
  await page.locator('#gallery .card').first().click();
  await page.waitForSelector('#viewer[open]');
  assert.equal(await page.locator('#viewer-title').textContent(), expected[0]);
  await page.waitForFunction(() =>
    ['viewer-orig', 'viewer-map', 'viewer-overlay'].every((id) => {
      const i = document.getElementById(id) as unknown as BrowserImg | null;
      return !!i && i.complete && i.naturalWidth > 0;
    }),
  );
  const topIsDefective = rows.find((r) => r.path === expected[0])!.label === 1;
  if (topIsDefective)
    assert.equal(await page.locator('#viewer-imgs img.outline').count(), 2, 'ground-truth outline on original and overlay');
  await page.locator('#viewer').screenshot({ path: join(artifactsDir, 'report-viewer.png') });
  await page.keyboard.press('ArrowRight');
  assert.equal(await page.locator('#viewer-title').textContent(), expected[1]);
  await page.keyboard.press('Escape');
  await page.waitForSelector('#viewer:not([open])', { state: 'attached' });

  // the repeated-anomaly filter's pair: each image's view names the other, a link to its view
  const [a, b] = repeatPair(rows).map((i) => rows[i]!.path) as [string, string];
  await page.locator(`#gallery .card[data-path="${a}"]`).click();
  await page.waitForSelector('#viewer[open]');
  assert.equal(await page.locator('#viewer-title').textContent(), a);
  assert.ok(await page.locator('#viewer-repeats').isVisible(), 'the left-out images are shown');
  assert.match((await page.locator('#viewer-repeats').textContent())!, /Scored without 1 image it shares a repeated defect with/);
  await page.locator('#viewer').screenshot({ path: join(artifactsDir, 'report-viewer-repeats.png') });
  await page.locator('#viewer-repeats a.repeat-link').click();
  assert.equal(await page.locator('#viewer-title').textContent(), b);
  assert.equal(await page.locator('#viewer-repeats a.repeat-link').textContent(), a);
  await page.keyboard.press('Escape');
  await page.waitForSelector('#viewer:not([open])', { state: 'attached' });
  // an image the filter did not touch shows no such line
  const plain = rows.find((_, i) => !repeatPair(rows).includes(i))!.path;
  await page.locator(`#gallery .card[data-path="${plain}"]`).click();
  await page.waitForSelector('#viewer[open]');
  assert.ok(!(await page.locator('#viewer-repeats').isVisible()), `${plain}: no left-out line`);
  await page.keyboard.press('Escape');
  await page.waitForSelector('#viewer:not([open])', { state: 'attached' });
}

test('report in headless Chromium: order, slider, filters, viewer, screenshots', { skip, timeout: 90_000 }, async () => {
  const page = await ctx!.newPage();
  const requests: string[] = [];
  const errors: string[] = [];
  await page.route('**/*', (route) => (route.request().url().startsWith('file:') ? route.continue() : route.abort()));
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(pathToFileURL(join(fx.out, 'report.html')).href);
  await page.waitForSelector('body[data-ready="1"]');

  // gallery order: score_rscin descending, ties in scores.csv order
  const expected = rows
    .map((r, i) => ({ r, i }))
    .sort((a, b) => b.r.score_rscin - a.r.score_rscin || a.i - b.i)
    .map((x) => x.r.path);
  const order = await page.$$eval('#gallery .card', (els) => els.map((e) => (e as unknown as BrowserEl).dataset.path));
  assert.deepEqual(order, expected);

  const mid = await checkThresholdSlider(page);
  await checkFiltersAndLazyLoading(page, mid);
  await checkViewer(page, expected);

  // the other category
  await page.locator('.cat-tab[data-cat="1"]').click();
  const plate = parseScoresCsv(await readFile(join(fx.out, 'plate', 'scores.csv'), 'utf8'));
  assert.equal(await page.locator('#gallery .card').count(), plate.length);
  assert.equal(await page.locator('#cat-title').textContent(), 'plate');
  await page.locator('.cat-tab[data-cat="0"]').click();

  // scroll through the gallery so that every thumbnail loads, then a full-page screenshot
  await page.evaluate(() => window.scrollTo(0, 1e6));
  await page.waitForFunction(() => {
    const imgs = [...document.querySelectorAll('#gallery img')] as unknown as BrowserImg[];
    return document.querySelectorAll('#gallery img[data-src]').length === 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(artifactsDir, 'report.png'), fullPage: true });
  assert.deepEqual(errors, [], 'no script errors or blocked resources');
  const foreign = requests.filter((u) => !u.startsWith('file:'));
  assert.deepEqual(foreign, [], 'no network requests');
  await page.close();
});

/** The predict page's cards: name, badge text, data-verdict, regions table rows. */
async function predictCards(page: Page): Promise<{ name: string; badge: string; verdict: string; regions: string[][] }[]> {
  return page.$$eval('#plist .pcard', (els) =>
    els.map((e) => {
      const c = e as unknown as BrowserEl & {
        querySelector(s: string): BrowserEl | null;
        querySelectorAll(s: string): ArrayLike<BrowserEl> & Iterable<BrowserEl>;
      };
      const rows = [...c.querySelectorAll('table.regions tr')].slice(1);
      const cells = rows.map((r) =>
        [...(r as unknown as { querySelectorAll(s: string): Iterable<BrowserEl> }).querySelectorAll('td')].map((d) => d.textContent ?? ''),
      );
      return {
        name: c.dataset.name ?? '',
        badge: c.querySelector('.verdict')?.textContent ?? '',
        verdict: c.dataset.verdict ?? '',
        regions: cells,
      };
    }),
  );
}

/** Clicks a download button; the downloaded file's text. */
async function downloaded(page: Page, button: string): Promise<{ name: string; text: string; file: string }> {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.locator(button).click()]);
  const file = join(tmp.dir, `dl-${dl.suggestedFilename()}`);
  await dl.saveAs(file);
  return { name: dl.suggestedFilename(), text: await readFile(file, 'utf8'), file };
}

test('predict report in headless Chromium: verdict badges, regions tables, NG list CSV, saved threshold read back', {
  skip,
  timeout: 90_000,
}, async () => {
  const page = await ctx!.newPage();
  const errors: string[] = [];
  const requests: string[] = [];
  await page.route('**/*', (route) => (route.request().url().startsWith('file:') ? route.continue() : route.abort()));
  page.on('request', (r) => requests.push(r.url()));
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  await page.goto(pathToFileURL(join(pfx.out, 'report.html')).href);
  await page.waitForSelector('body[data-ready="1"]');
  const preds = JSON.parse(await readFile(join(pfx.out, 'predictions.json'), 'utf8')).predictions as {
    name: string;
    verdict: string;
    score: number;
    normalized: number;
    regions: unknown[];
  }[];
  const ranked = preds
    .map((p, i) => ({ p, i }))
    .sort((a, b) => b.p.score - a.p.score || a.i - b.i)
    .map((x) => x.p);

  // at predict's threshold: the verdicts of predictions.json, highest score first; regions as regions.csv
  let cards = await predictCards(page);
  assert.deepEqual(
    cards.map((c) => c.name),
    ranked.map((p) => p.name),
  );
  assert.deepEqual(
    cards.map((c) => [c.badge, c.verdict]),
    ranked.map((p) => [p.verdict, p.verdict]),
  );
  const regions = parseCsv(await readFile(join(pfx.out, 'regions.csv'), 'utf8')).slice(1);
  for (const c of cards) {
    const want = regions.filter((r) => r[0] === c.name).map((r) => r.slice(1, 7)); // region, x, y, width, height, area
    assert.deepEqual(
      c.regions.map((r) => r.slice(0, 6)),
      want,
      c.name,
    );
  }
  assert.ok(cards.some((c) => c.regions.length > 0) && cards.some((c) => c.verdict === 'OK'), 'fixture with regions and OK images');
  const ng0 = ranked.filter((p) => p.verdict === 'NG').length;
  assert.equal(Number(await page.locator('#pcount-ng').textContent()), ng0);
  assert.equal(Number(await page.locator('#pcount-ok').textContent()), preds.length - ng0);
  await page.waitForFunction(() => {
    const i = document.querySelectorAll('#plist img.composite')[0] as unknown as BrowserImg | undefined;
    return !!i && i.complete && i.naturalWidth > 0;
  });
  assert.equal(await page.locator('#colour-bar').count(), 1);

  // the NG list at predict's threshold: the NG rows, ranked
  let csv = parseCsv((await downloaded(page, '#export-ng')).text);
  assert.deepEqual(csv[0], ['name', 'score', 'normalized', 'regions']);
  const asRow = (p: (typeof preds)[number]): string[] => [p.name, String(p.score), String(p.normalized), String(p.regions.length)];
  assert.deepEqual(csv.slice(1), ranked.filter((p) => p.verdict === 'NG').map(asRow));

  // a chosen threshold: badges, counts, filter and export follow it (NG iff score >= t)
  const t = ranked[2]!.score;
  await page.locator('#pthr-value').fill(String(t));
  await page.locator('#pthr-value').press('Enter');
  cards = await predictCards(page);
  assert.deepEqual(
    cards.map((c) => c.badge),
    ranked.map((p) => (p.score >= t ? 'NG' : 'OK')),
  );
  assert.equal(Number(await page.locator('#pcount-ng').textContent()), 3);
  await page.selectOption('#pfilter', 'NG');
  assert.equal(await page.locator('#plist .pcard:visible').count(), 3);
  await page.selectOption('#pfilter', '');
  csv = parseCsv((await downloaded(page, '#export-ng')).text);
  assert.deepEqual(csv.slice(1), ranked.slice(0, 3).map(asRow));

  // the saved threshold: predict's reader gets the chosen image threshold and predict's pixel threshold back
  const saved = await downloaded(page, '#save-threshold');
  assert.equal(saved.name, 'threshold.json');
  assert.deepEqual(await readThresholdArg(saved.file), { image: t, pixel: pfx.thresholds.pixel });
  await page.screenshot({ path: join(artifactsDir, 'report-predict.png'), fullPage: true });
  assert.deepEqual(errors, [], 'no script errors or blocked resources');
  assert.deepEqual(
    requests.filter((u) => !u.startsWith('file:') && !u.startsWith('blob:')),
    [],
    'no network requests',
  );
  await page.close();
});
