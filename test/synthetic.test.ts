import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, writeFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { generateSynthetic, mulberry32 } from '../src/demo/synthetic.js';
import { openDataset } from '../src/datasets/index.js';
import { runDataset } from '../src/pipeline/run-dataset.js';
import { mergeSettings } from '../src/config.js';
import { parseScoresCsv } from '../src/outputs/scores.js';
import { readMaps } from '../src/outputs/maps.js';
import { decodeMask, decodeRgb } from '../src/image/decode.js';
import type { MetricsInput } from '../src/pipeline/types.js';
import { tempDir } from './helpers/cli-env.js';
import { fakeBackbone, fakeScorer, fakeMetrics, fakeLoader } from './helpers/cli-fakes.js';

test('synthetic set: MVTec layout, deterministic, masks cover the injected defects', async () => {
  const a = await tempDir('syn-a');
  const b = await tempDir('syn-b');
  try {
    const set = await generateSynthetic(a.dir, { size: 64 });
    await generateSynthetic(b.dir, { size: 64 });
    assert.equal(set.images, 24);
    const ds = await openDataset(a.dir);
    assert.equal(ds.kind, 'mvtec');
    const c = await ds.load('surface');
    assert.equal(c.items.length, 24);
    assert.equal(c.items.filter((it) => it.label === 1).length, 8);
    assert.deepEqual([...new Set(c.items.map((it) => it.defect))], ['crack', 'good', 'scratch', 'spot']);
    for (const it of c.items) {
      const rel = it.rel;
      assert.deepEqual(await readFile(join(a.dir, rel)), await readFile(join(b.dir, rel)), `${rel} differs between runs`);
      if (it.label === 1) {
        const m = await decodeMask(it.masks![0]!);
        const img = await decodeRgb(it.path);
        let inside = 0;
        let dark = 0;
        for (let i = 0; i < m.data.length; i++) {
          if (m.data[i] !== 255) continue;
          inside++;
          const g = img.data[i * 3 + 1]!;
          if (g < 110) dark++; // defects are darker than the ~135 surface
        }
        assert.ok(inside > 0, `${rel}: empty mask`);
        assert.ok(dark / inside > 0.5, `${rel}: mask does not cover a visible defect`);
      }
    }
    const r1 = mulberry32(7);
    const r2 = mulberry32(7);
    for (let i = 0; i < 5; i++) assert.equal(r1(), r2());
  } finally {
    await a.cleanup();
    await b.cleanup();
  }
});

test('end to end with a fake backbone and scorer: outputs, order, skip, determinism, division', async () => {
  const { dir, cleanup } = await tempDir('e2e');
  try {
    const set = await generateSynthetic(join(dir, 'data'), { size: 64, good: 10, defective: 6 });
    // one corrupt image: reported and skipped
    await writeFile(join(set.root, 'surface', 'test', 'good', '099.png'), 'not a png');
    const run = async (out: string, extra: Record<string, unknown> = {}) => {
      const bb = fakeBackbone(32, 4);
      const scorer = fakeScorer();
      const rec: MetricsInput[] = [];
      const settings = mergeSettings({}, { heatmaps: 'all', batch_size: 3, rscin: 'on', ...extra }); // RsCIN on: the fake doubles the score
      const res = await runDataset({ data: set.root, out, settings, loadBackbone: fakeLoader(bb), scorer, metrics: fakeMetrics(rec) });
      return { res, bb, scorer, rec };
    };
    const o1 = join(dir, 'out1');
    const { res, bb, scorer, rec } = await run(o1);
    const cat = join(o1, 'surface');
    for (const f of ['scores.csv', 'metrics.json', 'maps.safetensors', 'run.json']) assert.ok(existsSync(join(cat, f)), f);
    assert.ok(existsSync(join(o1, 'summary.json')) && existsSync(join(o1, 'metrics.md')));
    // batches of at most 3
    assert.ok(bb.calls.every((b) => b <= 3));
    assert.deepEqual(scorer.subsetSizes, [16]);
    const rows = parseScoresCsv(await readFile(join(cat, 'scores.csv'), 'utf8'));
    const ds = await openDataset(set.root);
    const items = (await ds.load('surface')).items.filter((it) => !it.rel.endsWith('099.png'));
    assert.deepEqual(
      rows.map((r) => r.path),
      items.map((it) => it.rel),
    );
    assert.deepEqual(
      rows.map((r) => r.label),
      items.map((it) => it.label),
    );
    // the fake rscin doubles the score; the metrics got the rscin scores and masks at S x S
    rows.forEach((r) => assert.equal(r.score_rscin, r.score * 2));
    assert.equal(rec.length, 1);
    assert.deepEqual(
      Array.from(rec[0]!.imageScores),
      rows.map((r) => r.score_rscin),
    );
    assert.equal(rec[0]!.height, 32);
    assert.equal(rec[0]!.masks!.length, 16 * 32 * 32);
    let defectPx = 0;
    for (let i = 0; i < rec[0]!.masks!.length; i++) defectPx += rec[0]!.masks![i]!;
    assert.ok(defectPx > 0);
    await checkMetricsAndRunJson(cat);
    await checkMaps(cat, rows);
    // heatmaps for every image
    const hm = await readdir(join(cat, 'heatmaps', 'good'));
    assert.equal(hm.length, 10);
    assert.ok(res.markdown.includes('| surface |'));

    // identical runs give byte-identical scores.csv and metrics.json
    const o2 = join(dir, 'out2');
    await run(o2);
    for (const f of ['scores.csv', 'metrics.json'])
      assert.deepEqual(await readFile(join(o2, 'surface', f)), await readFile(join(cat, f)), f);

    // division: 2 subsets scored separately, together every image
    const o3 = join(dir, 'out3');
    const d = await run(o3, { divide_num: 2, heatmaps: 'none' });
    assert.equal(d.scorer.subsetSizes.length, 2);
    assert.equal(
      d.scorer.subsetSizes.reduce((a, b) => a + b, 0),
      16,
    );
    const rj = JSON.parse(await readFile(join(o3, 'surface', 'run.json'), 'utf8')) as { divide_num_used: number; subset_sizes: number[] };
    assert.equal(rj.divide_num_used, 2);
    assert.deepEqual(rj.subset_sizes, d.scorer.subsetSizes);
    assert.ok(!existsSync(join(o3, 'surface', 'heatmaps')));

    // --max-memory: a tight budget forces more subsets
    const o4 = join(dir, 'out4');
    const mm = await run(o4, { max_memory: 0.05, heatmaps: 'none' });
    assert.ok(mm.scorer.subsetSizes.length >= 2, `subsets ${mm.scorer.subsetSizes}`);

    // strict: the corrupt image fails the run with a data error naming it
    await assert.rejects(run(join(dir, 'out5'), { strict: true }), (e: Error) => e.name === 'ImageSkipError' && /099\.png/.test(e.message));
  } finally {
    await cleanup();
  }
});

test("LNAMD degrees of a run: 1,5 when the backbone fuses input sizes, the paper's 1,3,5 otherwise, an explicit list always", async () => {
  const { dir, cleanup } = await tempDir('rlist');
  try {
    const set = await generateSynthetic(join(dir, 'data'), { size: 48, good: 6, defective: 2 });
    const run = async (name: string, fuseSizes: number[], extra: Record<string, unknown> = {}) => {
      const bb = fakeBackbone(32, 4, fuseSizes);
      const scorer = fakeScorer();
      const settings = mergeSettings({}, { heatmaps: 'none', ...extra });
      const out = join(dir, name);
      await runDataset({ data: set.root, out, settings, loadBackbone: fakeLoader(bb), scorer, metrics: fakeMetrics([]) });
      const rj = JSON.parse(await readFile(join(out, 'surface', 'run.json'), 'utf8')) as { settings: { r_list: number[] } };
      return { used: scorer.rLists, recorded: rj.settings.r_list, title: (await readFile(join(out, 'metrics.md'), 'utf8')).split('\n')[0] };
    };
    const plain = await run('plain', []);
    assert.deepEqual(plain.used, [[1, 3, 5]]);
    assert.deepEqual(plain.recorded, [1, 3, 5]);
    assert.match(plain.title!, /with resnet50 at 32 px, r 1,3,5$/);
    const fused = await run('fused', [64]);
    assert.deepEqual(fused.used, [[1, 5]]);
    assert.deepEqual(fused.recorded, [1, 5]);
    assert.match(fused.title!, /at 32 px \(\+ 64 px fused\), r 1,5$/);
    assert.deepEqual((await run('explicit', [64], { r_list: [1, 3, 5] })).used, [[1, 3, 5]]);
    assert.deepEqual((await run('reference', [64], { preset: 'reference' })).used, [[1, 3, 5]]);
  } finally {
    await cleanup();
  }
});

/** metrics.json counts and run.json's skipped list, timings and backbone of the e2e run. */
async function checkMetricsAndRunJson(cat: string): Promise<void> {
  const metrics = JSON.parse(await readFile(join(cat, 'metrics.json'), 'utf8')) as Record<string, number | null>;
  assert.equal(metrics.n_images, 16);
  assert.equal(metrics.n_skipped, 1);
  assert.equal(metrics.n_defective, 6);
  assert.equal(typeof metrics.image_auroc, 'number');
  const runJson = JSON.parse(await readFile(join(cat, 'run.json'), 'utf8')) as {
    skipped: { path: string; reason: string }[];
    timings_ms_per_image: Record<string, number>;
    peak_rss_mb: number;
    backbone: { name: string };
  };
  assert.equal(runJson.skipped.length, 1);
  assert.match(runJson.skipped[0]!.path, /099\.png$/);
  assert.match(runJson.skipped[0]!.reason, /not an image/);
  for (const k of ['decode', 'backbone', 'scoring', 'rscin', 'metrics', 'write', 'total'])
    assert.equal(typeof runJson.timings_ms_per_image[k], 'number', k);
  assert.ok(runJson.peak_rss_mb > 0);
  assert.equal(runJson.backbone.name, 'fake');
}

/** maps.safetensors: [N, S, S] in scores.csv order, each score the maximum of its map. */
async function checkMaps(cat: string, rows: ReturnType<typeof parseScoresCsv>): Promise<void> {
  // maps: [N, S, S], the score is the max of the map
  const maps = await readMaps(join(cat, 'maps.safetensors'));
  assert.equal(maps.n, 16);
  assert.equal(maps.size, 32);
  assert.deepEqual(
    maps.paths,
    rows.map((r) => r.path),
  );
  for (let i = 0; i < maps.n; i++) {
    let m = -Infinity;
    for (let k = 0; k < 32 * 32; k++) m = Math.max(m, maps.maps[i * 1024 + k]!);
    assert.equal(m, rows[i]!.score);
  }
}
