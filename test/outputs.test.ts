import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { formatCsv, parseCsv, csvField } from '../src/outputs/csv.js';
import { formatScoresCsv, parseScoresCsv } from '../src/outputs/scores.js';
import { formatMetricsJson } from '../src/outputs/metrics-json.js';
import { writeMaps, readMaps } from '../src/outputs/maps.js';
import { metricsMarkdown, summaryJson, pct } from '../src/outputs/summary.js';
import { heatmapPaths, selectHeatmaps, colourMap, jet } from '../src/outputs/heatmaps.js';
import type { DatasetItem } from '../src/datasets/types.js';
import { tempDir } from './helpers/cli-env.js';

const item = (rel: string, defect: string, label: 0 | 1 | null): DatasetItem => ({ path: `/d/${rel}`, rel, defect, label, masks: null });

test('CSV quoting (RFC 4180) round trips odd names', () => {
  const odd = ['plain.png', 'a,b.png', 'say "hi".png', 'line\nbreak.png', ' lead.png', 'naïve ünïcode.png', ''];
  const text = formatCsv(['name', 'x'], odd.map((s, i) => [s, i]));
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  const rows = parseCsv(text);
  assert.deepEqual(rows[0], ['name', 'x']);
  assert.deepEqual(rows.slice(1).map((r) => r[0]), odd);
  assert.deepEqual(parseCsv('a,b\r\n"x\r\ny",2\r\n'), [['a', 'b'], ['x\r\ny', '2']]);
});

test('scores.csv: header, empty label when unknown, exact numbers, round trip', () => {
  const items = [item('cat/test/good/000.png', 'good', 0), item('cat/test/cut,1/"x".png', 'cut,1', 1), item('u/1.png', 'u', null)];
  const r = { items, imageScores: Float64Array.from([0.1, 1 / 3, NaN]), rscinScores: Float64Array.from([0.2, 2 / 3, 1e-20]) };
  const text = formatScoresCsv(r);
  assert.equal(text.split('\n')[0], 'path,defect,label,score,score_rscin');
  assert.equal(text.split('\n')[1], 'cat/test/good/000.png,good,0,0.1,0.2');
  assert.equal(text.split('\n')[3], 'u/1.png,u,,nan,1e-20');
  const back = parseScoresCsv(text);
  assert.deepEqual(back.map((b) => [b.path, b.defect, b.label]), items.map((it) => [it.rel, it.defect, it.label]));
  assert.equal(back[1]!.score, 1 / 3);
  assert.equal(back[1]!.score_rscin, 2 / 3);
  assert.ok(Number.isNaN(back[2]!.score));
  assert.equal(formatScoresCsv(r), text); // deterministic
});

test('metrics.json: fixed key order, nulls, counts', () => {
  const items = [item('a', 'good', 0), item('b', 'good', 0), item('c', 'x', 1)];
  const m = { image_auroc: 1, image_f1max: 0.5, image_ap: NaN, pixel_auroc: null, pixel_f1max: null, pixel_ap: null, pixel_pro: null, aupro: null };
  const text = formatMetricsJson({ items, skipped: [{ path: 'z', reason: 'bad' }], metrics: m });
  const obj = JSON.parse(text) as Record<string, unknown>;
  assert.deepEqual(Object.keys(obj), ['image_auroc', 'image_f1max', 'image_ap', 'pixel_auroc', 'pixel_f1max', 'pixel_ap', 'pixel_pro', 'aupro', 'n_images', 'n_good', 'n_defective', 'n_skipped']);
  assert.equal(obj.image_ap, null);
  assert.deepEqual([obj.n_images, obj.n_good, obj.n_defective, obj.n_skipped], [3, 2, 1, 1]);
  const none = JSON.parse(formatMetricsJson({ items, skipped: [], metrics: null })) as Record<string, unknown>;
  assert.equal(none.image_auroc, null);
});

test('maps.safetensors round trip with the path list', async () => {
  const { dir, cleanup } = await tempDir('maps');
  try {
    const maps = Float32Array.from({ length: 2 * 3 * 3 }, (_, i) => i / 7);
    await writeMaps(join(dir, 'maps.safetensors'), maps, 2, 3, ['a/1.png', 'b/"2".png']);
    const back = await readMaps(join(dir, 'maps.safetensors'));
    assert.equal(back.n, 2);
    assert.equal(back.size, 3);
    assert.deepEqual(back.paths, ['a/1.png', 'b/"2".png']);
    assert.deepEqual([...back.maps], [...maps]);
    const bytes = await readFile(join(dir, 'maps.safetensors'));
    assert.equal(bytes.readBigUInt64LE(0) % 8n, 0n);
  } finally {
    await cleanup();
  }
});

test('summary.json mean skips nulls; metrics.md has percentages with one decimal and a mean row', () => {
  const base = { image_f1max: null, image_ap: null, pixel_auroc: null, pixel_f1max: null, pixel_ap: null, pixel_pro: null, aupro: null, n_good: 1, n_defective: 1, n_skipped: 0 };
  const entries = [
    { category: 'a|b', metrics: { ...base, image_auroc: 0.9994, n_images: 2 } },
    { category: 'c', metrics: { ...base, image_auroc: 0.5, pixel_auroc: 0.75, n_images: 3, n_skipped: 1 } },
  ];
  const s = summaryJson('mvtec', 'fake', 32, entries);
  assert.equal(s.mean.image_auroc, (0.9994 + 0.5) / 2);
  assert.equal(s.mean.pixel_auroc, 0.75);
  assert.equal(s.mean.aupro, null);
  const md = metricsMarkdown('t', entries);
  assert.match(md, /\| a\\\|b \| 99\.9 \| - \|/);
  assert.match(md, /\| \*\*mean\*\* \| 75\.0 \| - \| - \| 75\.0 \|.* \| 5 \| 1 \|/);
  assert.equal(pct(0.12345), '12.3');
  assert.equal(pct(null), '-');
});

test('heatmap selection, paths and colours', () => {
  const items = [item('c/test/good/000.png', 'good', 0), item('c/test/cut/000.png', 'cut', 1), item('c/test/cut/000.jpg', 'cut', 1), item('x/../../evil.png', '../..', 1)];
  assert.deepEqual(selectHeatmaps(items, 'anomalous'), [1, 2, 3]);
  assert.deepEqual(selectHeatmaps(items, 'all'), [0, 1, 2, 3]);
  assert.deepEqual(selectHeatmaps(items, 'none'), []);
  assert.deepEqual(selectHeatmaps([item('a.png', '', null)], 'anomalous'), [0]);
  const p = heatmapPaths(items, [0, 1, 2, 3]);
  assert.equal(p.get(0), 'heatmaps/good/000.png');
  assert.equal(p.get(1), 'heatmaps/cut/000.png');
  assert.equal(p.get(2), 'heatmaps/cut/000_jpg.png');
  assert.equal(p.get(3), 'heatmaps/evil.png');
  assert.deepEqual(jet(0), [0, 0, 128]);
  assert.deepEqual(jet(1), [128, 0, 0]);
  const rgb = colourMap(Float32Array.from([0, 1]), 0, 1);
  assert.deepEqual([...rgb], [0, 0, 128, 128, 0, 0]);
  const over = colourMap(Float32Array.from([0]), 0, 1, Uint8Array.from([100, 100, 100]));
  assert.deepEqual([...over], [50, 50, 114]);
});

test('CSV formula injection (issue 16): text cells starting with = + - @ TAB CR get a leading quote, numbers do not', () => {
  for (const bad of ['=HYPERLINK("http://x","y")', '+A1', '-1+2', '-cmd', '@SUM(A1)', '\tx', '\rx']) {
    const f = csvField(bad);
    const cell = parseCsv(`${f}\n`)[0]![0]!;
    assert.equal(cell[0], "'", `${JSON.stringify(bad)} written as ${JSON.stringify(f)}`);
    assert.equal(cell.slice(1), bad);
  }
  assert.equal(csvField(-0.5), '-0.5');
  assert.equal(csvField(-Infinity), '-inf');
  assert.equal(csvField('-0.25'), '-0.25'); // a number kept as text (musc rscin re-writes scores)
  assert.equal(csvField('plain'), 'plain');
  // scores.csv: a defect folder named like a formula is inert in the file and read back unchanged
  const items = [item('=HYPERLINK("http://evil")/1.png', '=HYPERLINK("http://evil")', 1), item('@x/2.png', '@x', 0)];
  const text = formatScoresCsv({ items, imageScores: Float64Array.from([0.5, -0.5]), rscinScores: Float64Array.from([1, 2]) });
  for (const line of text.split('\n').slice(1, 3)) assert.match(line, /^"?'[=@]/);
  assert.deepEqual(parseScoresCsv(text).map((r) => [r.path, r.defect]), items.map((it) => [it.rel, it.defect]));
});
