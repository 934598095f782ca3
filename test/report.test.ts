/** The report without a browser: statistics, data model, images written, HTML content, CLI. */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Command } from 'commander';
import sharp from 'sharp';
import { readThresholdArg, writeThresholdFile } from '../src/bank/calibration.js';
import { reportCommand } from '../src/cli/report.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { confusionAt } from '../src/metrics/confusion.js';
import { evaluateImages } from '../src/metrics/evaluator.js';
import { parseCsv } from '../src/io/csv.js';
import { parseScoresCsv } from '../src/outputs/scores.js';
import { maskOutline } from '../src/report/assets.js';
import { buildReport } from '../src/report/build.js';
import { type PageData, pageScriptSource, scriptJson } from '../src/report/html.js';
import { ReportError } from '../src/report/model.js';
import { ngListCsv, thresholdFileText } from '../src/report/predict-export.js';
import { rankByScore, scoreHistogram } from '../src/report/stats.js';
import { labelFreeThreshold } from '../src/threshold.js';
import { cliMain } from './helpers/cli-env.js';
import { makePredictFixture, type PredictFixture } from './helpers/predict-fixture.js';
import { type Fixture, makeFixture, repeatPair, tempDir } from './helpers/report-fixture.js';

/** deterministic pseudo-random scores with ties and labels */
function sample(n: number, seed: number): { scores: number[]; labels: (0 | 1 | null)[] } {
  let a = seed;
  const rnd = (): number => {
    a = (a * 1103515245 + 12345) % 2 ** 31;
    return a / 2 ** 31;
  };
  const labels: (0 | 1 | null)[] = [];
  const scores: number[] = [];
  for (let i = 0; i < n; i++) {
    const l = rnd() < 0.35 ? 1 : 0;
    labels.push(l);
    scores.push(Math.round((rnd() + 0.6 * l) * 20) / 20); // rounded: many ties
  }
  return { scores, labels };
}

test('rankByScore: descending, ties in dataset order, NaN last', () => {
  assert.deepEqual(rankByScore([0.2, 0.9, NaN, 0.9, 0.1]), [1, 3, 0, 4, 2]);
});

test('confusionAt matches a direct count with the NG rule (score >= t; NaN is NG); unlabelled images only in NG/OK', () => {
  const { scores, labels } = sample(60, 3);
  scores[5] = NaN;
  labels[7] = null;
  for (const t of [-1, 0.3, 0.55, 0.8, 2]) {
    const c = confusionAt(scores, labels, t);
    const pred = scores.map((s) => Number.isNaN(s) || s >= t);
    assert.equal(pred[5], true, 'NaN is NG');
    assert.equal(c.ng, pred.filter(Boolean).length);
    assert.equal(c.ok, scores.length - c.ng);
    assert.equal(c.tp, pred.filter((p, i) => p && labels[i] === 1).length);
    assert.equal(c.fp, pred.filter((p, i) => p && labels[i] === 0).length);
    assert.equal(c.fn, pred.filter((p, i) => !p && labels[i] === 1).length);
    assert.equal(c.tn, pred.filter((p, i) => !p && labels[i] === 0).length);
    if (c.tp + c.fp > 0) assert.equal(c.precision, c.tp / (c.tp + c.fp));
    else assert.equal(c.precision, null);
  }
});

test('evaluateImages ROC: AUC equals the Mann-Whitney statistic (ties count half), curve monotone from (0,0) to (1,1)', () => {
  for (const seed of [1, 2, 3]) {
    const { scores, labels } = sample(80, seed);
    scores[3] = NaN; // left out of the curve, as unlabelled images are
    labels[4] = null;
    let pairs = 0;
    let wins = 0;
    for (let i = 0; i < scores.length; i++)
      for (let j = 0; j < scores.length; j++) {
        if (labels[i] !== 1 || labels[j] !== 0 || Number.isNaN(scores[i]!) || Number.isNaN(scores[j]!)) continue;
        pairs++;
        wins += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
      }
    const e = evaluateImages(scores, labels);
    assert.equal(e.labelled, 78);
    const r = e.curves.roc!;
    assert.ok(Math.abs(r.auc - wins / pairs) < 1e-12, `seed ${seed}: ${r.auc} vs ${wins / pairs}`);
    assert.deepEqual([r.fpr[0], r.tpr[0]], [0, 0]);
    assert.deepEqual([r.fpr.at(-1), r.tpr.at(-1)], [1, 1]);
    for (let k = 1; k < r.fpr.length; k++) assert.ok(r.fpr[k]! >= r.fpr[k - 1]! && r.tpr[k]! >= r.tpr[k - 1]!);
  }
  assert.equal(evaluateImages([1, 2], [0, 0]).curves.roc, null);
  assert.equal(evaluateImages([1, 2], null).curves.roc, null);
  assert.throws(() => evaluateImages([1, 2], [0, 2]), /labels must be 0, 1 or null/);
});

test('evaluateImages F1 threshold: the maximum F1 over every score used as threshold (brute force), lowest on ties', () => {
  for (const seed of [4, 5, 6]) {
    const { scores, labels } = sample(70, seed);
    let best = -1;
    let bestT = NaN;
    for (const t of [...new Set(scores)].sort((a, b) => b - a)) {
      const f1 = confusionAt(scores, labels, t).f1 ?? 0;
      if (f1 >= best - 1e-15) {
        if (f1 > best + 1e-15) best = f1;
        bestT = t;
      }
    }
    const b = evaluateImages(scores, labels).thresholds.f1!;
    assert.ok(Math.abs(b.f1 - best) < 1e-12, `seed ${seed}: ${b.f1} vs ${best}`);
    assert.equal(b.threshold, bestT);
    const c = confusionAt(scores, labels, b.threshold);
    assert.ok(Math.abs(c.f1! - b.f1) < 1e-12);
    assert.deepEqual([b.precision, b.recall], [c.precision, c.recall]);
  }
  assert.equal(evaluateImages([1, 2], [0, null]).thresholds.f1, null);
});

test('evaluateImages label-free threshold: the rule of src/threshold.ts over every finite score', () => {
  const { scores, labels } = sample(30, 8);
  scores[2] = NaN;
  assert.deepEqual(evaluateImages(scores, labels).thresholds.labelFree, labelFreeThreshold(scores, { method: 'mad', k: 3 }));
  assert.deepEqual(evaluateImages(scores, null, { method: 'otsu' }).thresholds.labelFree, labelFreeThreshold(scores, { method: 'otsu' }));
  assert.equal(evaluateImages([NaN], null).thresholds.labelFree, null);
});

test('scoreHistogram: every finite score in exactly one bin of its label', () => {
  const { scores, labels } = sample(50, 9);
  labels[0] = null;
  const lo = Math.min(...scores);
  const hi = Math.max(...scores);
  const h = scoreHistogram(scores, labels, lo, hi, 7);
  assert.equal(h.edges.length, 8);
  const sum = (a: number[]): number => a.reduce((x, y) => x + y, 0);
  assert.equal(sum(h.good), labels.filter((l) => l === 0).length);
  assert.equal(sum(h.defective), labels.filter((l) => l === 1).length);
  assert.equal(sum(h.unknown), 1);
});

test('page script: the esbuild bundle of src/report/page, inlined once, safe inside <script>', async () => {
  const src = pageScriptSource();
  assert.ok(src.length > 1000 && !/<\/script|<!--/i.test(src));
  assert.match(src, /function isNg\(/, 'the NG rule of src/threshold.ts is bundled, not copied');
});

test('maskOutline: the boundary pixels of the mask, nothing outside it', () => {
  const S = 8;
  const m = new Uint8Array(S * S);
  for (let y = 2; y < 6; y++) for (let x = 2; x < 6; x++) m[y * S + x] = 1;
  const o = maskOutline(m, S, 1);
  const on = (x: number, y: number): boolean => o[(y * S + x) * 4 + 3] === 255;
  assert.ok(on(2, 2) && on(5, 3) && on(3, 5));
  assert.ok(!on(3, 3) && !on(4, 4), 'interior is not outline');
  assert.ok(!on(1, 1) && !on(6, 6), 'outside is not outline');
});

test('scriptJson: nothing can close the script element', () => {
  const s = scriptJson({ p: '</script><script>alert(1)</script><!--', q: '\u2028' });
  assert.ok(!/<\/script|<!--/i.test(s));
  assert.deepEqual(JSON.parse(s), { p: '</script><script>alert(1)</script><!--', q: '\u2028' });
});

let fx: Fixture;
let tmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  tmp = await tempDir('report');
  fx = await makeFixture(
    tmp.dir,
    [
      { name: 'surface', good: 8, defective: 6, seed: 5 },
      { name: 'plate', good: 6, defective: 3, seed: 6 },
    ],
    64,
  );
});
after(async () => tmp?.cleanup());

/** The JSON data block of a report.html. */
function pageData(html: string): PageData {
  const m = /<script type="application\/json" id="musc-data">([\s\S]*?)<\/script>/.exec(html);
  assert.ok(m, 'data block present');
  return JSON.parse(m[1]!) as PageData;
}

test('buildReport: data model from the outputs, every referenced image written', async () => {
  const r = await buildReport(fx.out, { thumbSize: 48 });
  assert.equal(r.file, join(fx.out, 'report.html'));
  const html = await readFile(r.file, 'utf8');
  const data = pageData(html);
  assert.deepEqual(
    data.categories.map((c) => c.name),
    ['surface', 'plate'],
    'summary.json order',
  );
  for (const c of data.categories) {
    const rows = parseScoresCsv(await readFile(join(fx.out, c.folder, 'scores.csv'), 'utf8'));
    assert.equal(c.items.length, rows.length);
    assert.equal(c.mapSize, 64);
    assert.equal(c.backbone?.name, 'fake');
    assert.ok(c.timings && c.timings.backbone === 200);
    assert.ok(c.metrics && typeof c.metrics.image_auroc === 'number');
    const ev = evaluateImages(
      rows.map((r) => r.score_rscin),
      rows.map((r) => r.label),
    );
    assert.deepEqual(c.evaluation, JSON.parse(JSON.stringify(ev)), 'curves and thresholds of the ranking scores, precomputed');
    assert.ok(c.evaluation.curves.roc && c.evaluation.thresholds.f1 && c.evaluation.thresholds.labelFree?.method === 'mad');
    for (const [k, it] of c.items.entries()) {
      assert.equal(it.path, rows[k]!.path);
      assert.equal(it.label, rows[k]!.label);
      assert.equal(it.score, rows[k]!.score_rscin);
      assert.equal(it.raw, rows[k]!.score);
      assert.equal(it.o, 1, `${it.path}: original found through run.json data_root`);
      assert.equal(it.m, 1);
      assert.equal(it.g, it.label === 1 ? 1 : 0, `${it.path}: outline exactly for the masked images`);
      // run.json's repeat_filter.left_out as rows: the fixture's pair, each without the other
      const pair = repeatPair(rows);
      const other = k === pair[0] ? pair[1] : k === pair[1] ? pair[0] : null;
      assert.deepEqual(it.w, other === null ? undefined : [other], `${it.path}: images left out`);
      const files = [
        'thumb/ID.jpg',
        'thumb-overlay/ID.jpg',
        'orig/ID.jpg',
        'map/ID.png',
        'overlay/ID.jpg',
        ...(it.g ? ['thumb-outline/ID.png', 'outline/ID.png'] : []),
      ];
      for (const f of files) {
        const rel = decodeURIComponent(c.base) + f.replace('ID', it.id);
        assert.ok((await stat(join(fx.out, rel))).isFile(), rel);
      }
    }
    // image sizes: thumbnails T x T, map S x S
    const it0 = c.items[0]!;
    const th = await sharp(join(fx.out, c.folder, 'report', 'thumb', `${it0.id}.jpg`)).metadata();
    assert.deepEqual([th.width, th.height], [48, 48]);
    const mp = await sharp(join(fx.out, c.folder, 'report', 'map', `${it0.id}.png`)).metadata();
    assert.deepEqual([mp.width, mp.height], [64, 64]);
  }
  assert.deepEqual(r.warnings, []);
});

test('report.html: self-contained (no external URL, a CSP without network), escapes the data', async () => {
  const html = await readFile(join(fx.out, 'report.html'), 'utf8');
  assert.ok(!/<(script|link|img|iframe)[^>]+(src|href)=/i.test(html), 'no external script, stylesheet or image element');
  assert.ok(!/url\(\s*['"]?(https?:)?\/\//i.test(html), 'no remote CSS url()');
  assert.match(html, /http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' data:/);
  assert.equal(html.match(/<\/script>/g)!.length, 2, 'only the data and code blocks end scripts');
  assert.equal(html.split(pageScriptSource()).length, 2, 'the page bundle inlined exactly once');
  for (const id of [
    'thr-range',
    'thr-value',
    'count-ng',
    'count-ok',
    'cm-tp',
    'gallery',
    'filter-defect',
    'filter-pred',
    'viewer',
    'hist',
    'roc',
    'metrics',
  ])
    assert.ok(html.includes(`id="${id}"`), id);
});

test('unlabelled run without maps or run.json: still a report, with warnings', async () => {
  const t = await tempDir('report-unl');
  try {
    await mkdir(join(t.dir, 'parts'), { recursive: true });
    const rows = [
      'path,defect,label,score,score_rscin',
      'a/1.png,a,,0.5,0.5',
      'a/2.png,a,,0.9,0.8',
      '"b/</script>.png",b,,nan,nan',
      'b/3.png,b,,0.1,0.2',
    ];
    await writeFile(join(t.dir, 'parts', 'scores.csv'), rows.join('\n') + '\n');
    const r = await buildReport(t.dir);
    const html = await readFile(r.file, 'utf8');
    const d = pageData(html);
    assert.equal(html.match(/<\/script>/g)!.length, 2);
    const c = d.categories[0]!;
    assert.equal(c.name, 'parts');
    assert.deepEqual(
      c.items.map((it) => it.label),
      [null, null, null, null],
    );
    assert.deepEqual(
      c.items.map((it) => it.score),
      [0.5, 0.8, null, 0.2],
    );
    assert.deepEqual(
      c.items.map((it) => it.o + it.m + it.g),
      [0, 0, 0, 0],
    );
    assert.ok(r.warnings.some((w) => w.includes('maps.safetensors')));
    assert.ok(r.warnings.some((w) => w.includes('data_root')));
  } finally {
    await t.cleanup();
  }
});

test("the page's label-free threshold follows the run's rule (metrics.json decision_method, decision_k)", async () => {
  const t = await tempDir('report-rule');
  try {
    const rows = [
      'path,defect,label,score,score_rscin',
      'a/1.png,a,0,0.1,0.1',
      'a/2.png,a,0,0.12,0.12',
      'a/3.png,a,1,0.9,0.9',
      'a/4.png,a,1,0.8,0.85',
    ];
    await writeFileAtomic(join(t.dir, 'c', 'scores.csv'), rows.join('\n') + '\n');
    const scores = [0.1, 0.12, 0.9, 0.85];
    for (const [extra, rule] of [
      [{ decision_method: 'otsu' }, { method: 'otsu' }],
      [
        { decision_method: 'mad', decision_k: 1 },
        { method: 'mad', k: 1 },
      ],
      [{}, { method: 'mad', k: 3 }],
      [
        { decision_method: 'mad', decision_k: -1 },
        { method: 'mad', k: 3 },
      ],
    ] as const) {
      await writeFileAtomic(join(t.dir, 'c', 'metrics.json'), JSON.stringify({ image_auroc: 1, ...extra }));
      const r = await buildReport(t.dir);
      assert.deepEqual(r.data.categories[0]!.evaluation.thresholds.labelFree, labelFreeThreshold(scores, rule));
    }
  } finally {
    await t.cleanup();
  }
});

test('data folder moved away: originals and outlines missing, maps still shown', async () => {
  const moved = fx.data + '-moved';
  await rename(fx.data, moved);
  try {
    const r = await buildReport(fx.out, { thumbSize: 32 });
    for (const c of r.data.categories) for (const it of c.items) assert.deepEqual([it.o, it.m, it.g], [0, 1, 0]);
    assert.ok(
      r.warnings.some((w) => /could not be read|cannot list/.test(w)),
      r.warnings.join('\n'),
    );
  } finally {
    await rename(moved, fx.data);
  }
  await buildReport(fx.out, { thumbSize: 48 }); // restore for the other tests
});

test('errors name the folder or file', async () => {
  const t = await tempDir('report-err');
  try {
    await assert.rejects(
      buildReport(t.dir),
      (e: Error) => e instanceof ReportError && e.message.includes(t.dir) && /scores\.csv/.test(e.message),
    );
    await mkdir(join(t.dir, 'x'));
    await writeFile(join(t.dir, 'x', 'scores.csv'), 'file,score\na,1\n');
    await assert.rejects(
      buildReport(t.dir),
      (e: Error) => e instanceof ReportError && e.message.includes(join(t.dir, 'x', 'scores.csv')) && /header/.test(e.message),
    );
    await assert.rejects(buildReport(join(t.dir, 'missing')), (e: Error) => e instanceof ReportError && /cannot read/.test(e.message));
  } finally {
    await t.cleanup();
  }
});

test('musc report command: writes the report; bad options are usage errors', async () => {
  const t = await tempDir('report-cli');
  try {
    await mkdir(join(t.dir, 'c'));
    await writeFile(join(t.dir, 'c', 'scores.csv'), 'path,defect,label,score,score_rscin\nx.png,,,1,1\n');
    const prog = new Command('musc')
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} })
      .addCommand(
        reportCommand()
          .exitOverride()
          .configureOutput({ writeErr: () => {}, writeOut: () => {} }),
      );
    await prog.parseAsync(['node', 'musc', 'report', t.dir, '--quiet', '--thumb-size', '40']);
    assert.ok((await stat(join(t.dir, 'report.html'))).isFile());
    await assert.rejects(prog.parseAsync(['node', 'musc', 'report', t.dir, '--thumb-size', '3']), /thumb-size/);
    await assert.rejects(prog.parseAsync(['node', 'musc', 'report', t.dir, '--norm', 'bogus']), /norm/);
  } finally {
    await t.cleanup();
  }
});

// ---- a `musc predict` folder (predictions.json): the same report.html, the predict page ----

let pfx: PredictFixture;
let ptmp: { dir: string; cleanup: () => Promise<void> };
before(async () => {
  ptmp = await tempDir('report-predict');
  pfx = await makePredictFixture(ptmp.dir);
});
after(async () => {
  await ptmp?.cleanup();
  await shutdownCompute();
});

test('predict folder: report with each verdict, score, regions (= regions.csv), composite, threshold (= threshold.json)', async () => {
  const r = await buildReport(pfx.out);
  assert.equal(r.file, join(pfx.out, 'report.html'));
  const html = await readFile(r.file, 'utf8');
  const data = pageData(html);
  assert.equal(data.categories.length, 0);
  const p = data.predict!;
  assert.ok(p, 'predict data present');
  // the verdicts, scores and normalised scores of predictions.csv, row by row
  const csv = parseCsv(await readFile(join(pfx.out, 'predictions.csv'), 'utf8'));
  assert.equal(p.items.length, csv.length - 1);
  const verdicts = new Set<string>();
  csv.slice(1).forEach((row, i) => {
    const it = p.items[i]!;
    assert.equal(it.name, row[0]);
    assert.equal(it.verdict, row[1]);
    assert.equal(it.score, Number(row[2]));
    assert.equal(it.normalized, Number(row[3]));
    assert.equal(it.regions.length, Number(row[6]));
    verdicts.add(it.verdict);
  });
  assert.deepEqual([...verdicts].sort(), ['NG', 'OK'], 'the fixture has both verdicts');
  // every region of regions.csv, in order
  const regions = parseCsv(await readFile(join(pfx.out, 'regions.csv'), 'utf8')).slice(1);
  assert.ok(regions.length > 0, 'the fixture has regions');
  const listed = p.items.flatMap((it) =>
    it.regions.map((g) => [it.name, g.id, g.x, g.y, g.width, g.height, g.area, g.peak, g.mean].map(String)),
  );
  assert.deepEqual(
    listed,
    regions.map((row) => row.map((c, k) => (k === 0 ? c : String(Number(c))))),
  );
  // the threshold in use, as threshold.json has it
  const thr = await readThresholdArg(join(pfx.out, 'threshold.json'));
  assert.equal(p.thresholds.image, thr.image);
  assert.equal(p.thresholds.pixel, thr.pixel);
  assert.match(p.thresholds.source, /calibration/);
  // composites: relative to report.html, each an existing file; the colour scale with the pixel threshold
  for (const it of p.items) assert.ok((await stat(join(pfx.out, decodeURI(it.composite!)))).isFile(), it.composite!);
  assert.equal(p.colourScale!.threshold, thr.pixel);
  assert.ok(p.colourScale!.lo < p.colourScale!.hi);
  for (const id of ['pthr-range', 'export-ng', 'save-threshold', 'colour-scale', 'plist']) assert.ok(html.includes(`id="${id}"`), id);
  assert.ok(!/https?:\/\//.test(html.replace(/http:\/\/www\.w3\.org\/2000\/svg/g, '')), 'no external URL');
});

test('predict page exports: the NG list at a threshold, a threshold.json as predict writes it and reads it back', async () => {
  const { predict: p } = (await buildReport(pfx.out)).data;
  const items = p!.items;
  // at predict's threshold the NG list is the NG rows of predictions.csv
  const csv = parseCsv(ngListCsv(items, p!.thresholds.image));
  assert.deepEqual(csv[0], ['name', 'score', 'normalized', 'regions']);
  const ng = pfx.predictions.filter((q) => q.verdict === 'NG');
  assert.deepEqual(
    csv.slice(1).map((r) => [r[0], Number(r[1]), Number(r[2]), Number(r[3])]),
    ng.map((q) => [q.name, q.score, q.normalized, q.regions.length]),
  );
  // a higher threshold: exactly the images scoring at least it
  const t = [...items.map((i) => i.score!)].sort((a, b) => b - a)[2]!;
  assert.deepEqual(
    parseCsv(ngListCsv(items, t))
      .slice(1)
      .map((r) => r[0]),
    items.filter((i) => i.score! >= t).map((i) => i.name),
  );
  // threshold.json: the bytes writeThresholdFile writes; readThresholdArg reads the chosen value back
  const file = join(ptmp.dir, 'chosen.json');
  await writeThresholdFile(file, { image_threshold: t, pixel_threshold: p!.thresholds.pixel, source: 'report' });
  assert.equal(thresholdFileText(t, p!.thresholds.pixel, 'report'), await readFile(file, 'utf8'));
  await writeFile(file, thresholdFileText(t, p!.thresholds.pixel, 'report.html'));
  assert.deepEqual(await readThresholdArg(file), { image: t, pixel: p!.thresholds.pixel });
});

test('predict folder errors name predictions.json', async () => {
  const t = await tempDir('report-predict-err');
  try {
    await writeFile(join(t.dir, 'predictions.json'), '{"thresholds": {"image": 1}}');
    await assert.rejects(
      buildReport(t.dir),
      (e: Error) => e instanceof ReportError && e.message.includes(join(t.dir, 'predictions.json')) && /thresholds\.pixel/.test(e.message),
    );
    await writeFile(
      join(t.dir, 'predictions.json'),
      '{"thresholds": {"image": 1, "pixel": 2}, "predictions": [{"name": "a.png", "verdict": "maybe", "regions": []}]}',
    );
    await assert.rejects(buildReport(t.dir), (e: Error) => e instanceof ReportError && /predictions\[0\].*verdict/.test(e.message));
    await writeFile(join(t.dir, 'predictions.json'), '{not json');
    await assert.rejects(buildReport(t.dir), (e: Error) => e instanceof ReportError && e.message.includes('predictions.json'));
  } finally {
    await t.cleanup();
  }
});

test('musc predict writes report.html (the predict page) unless --no-report', async () => {
  const musc = (args: string[]) => spawnSync(process.execPath, [cliMain, ...args], { encoding: 'utf8', timeout: 300_000 });
  const images = join(ptmp.dir, 'data', 'surface', 'test');
  const bank = join(ptmp.dir, 'cli.bank');
  let r = musc(['bank', 'build', '--data', join(images, 'good'), '--out', bank, '--image-size', '64', '-q']);
  assert.equal(r.status, 0, r.stderr);
  const out = join(ptmp.dir, 'cli-out');
  r = musc(['predict', '--bank', bank, join(images, 'crack'), '--out', out, '-q']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /report\.html/);
  const data = pageData(await readFile(join(out, 'report.html'), 'utf8'));
  const preds = JSON.parse(await readFile(join(out, 'predictions.json'), 'utf8')) as { predictions: { name: string; verdict: string }[] };
  assert.deepEqual(
    data.predict!.items.map((i) => [i.name, i.verdict]),
    preds.predictions.map((p) => [p.name, p.verdict]),
  );
  const quiet = join(ptmp.dir, 'cli-no-report');
  r = musc(['predict', '--bank', bank, join(images, 'crack'), '--out', quiet, '-q', '--no-report']);
  assert.equal(r.status, 0, r.stderr);
  await assert.rejects(stat(join(quiet, 'report.html')), /ENOENT/);
  assert.ok((await stat(join(quiet, 'predictions.json'))).isFile());
});
