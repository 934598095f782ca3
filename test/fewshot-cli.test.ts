/**
 * Few-shot through the pipeline and the CLI: --reference-dir and --mode musc-plus with the real
 * MuSc core (scorePatches in the compute worker) and a small colour-block backbone.
 *
 * Hand-checkable: a reference that is a byte copy of test image X has identical features, so
 *   - MuSc+ (min distance over the references) scores X's patches 0: X's score is 0;
 *   - MuSc with the interval [0, 1] (the single nearest image of the pool) scores X 0 only when
 *     the references join the pool.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { copyFile, mkdir, readFile, symlink } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { generateSynthetic } from '../src/demo/synthetic.js';
import { runDataset } from '../src/pipeline/run-dataset.js';
import { mergeSettings, ConfigError, type Settings } from '../src/config.js';
import { parseScoresCsv } from '../src/outputs/scores.js';
import { readMaps } from '../src/outputs/maps.js';
import { referenceFolder, listReferenceImages } from '../src/features/references.js';
import * as core from '../src/scoring/musc.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { DatasetError } from '../src/datasets/types.js';
import type { Scorer } from '../src/pipeline/types.js';
import type { ScoreOptions } from '../src/scoring/musc.js';
import { tempDir, cliMain, writePng } from './helpers/cli-env.js';
import { fakeBackbone, fakeLoader, fakeMetrics } from './helpers/cli-fakes.js';
import { localScorer } from '../src/pipeline/local-scorer.js';

after(shutdownCompute);

/** the real core, recording what scorePatches was given */
function recordingScorer(): Scorer & { calls: { n: number; opts: ScoreOptions }[] } {
  const calls: { n: number; opts: ScoreOptions }[] = [];
  return {
    calls,
    scorePatches: (stages, opts) => {
      calls.push({ n: stages[0]!.n, opts });
      return core.scorePatches(stages, opts);
    },
    upsampleMaps: localScorer.upsampleMaps,
    imageScoresOf: localScorer.imageScoresOf,
    rscin: localScorer.rscin,
  };
}

async function setup(dir: string) {
  const set = await generateSynthetic(join(dir, 'data'), { size: 48, good: 6, defective: 3 });
  const cat = join(set.root, 'surface');
  const x = 'test/good/002.png';
  const refs = join(dir, 'refs');
  await mkdir(refs, { recursive: true });
  await copyFile(join(cat, x), join(refs, 'copy-of-002.png'));
  return { root: set.root, x: `surface/${x}`, refs };
}

async function run(root: string, out: string, extra: Partial<Settings>) {
  const scorer = recordingScorer();
  const warnings: string[] = [];
  const settings = mergeSettings({}, { heatmaps: 'none', r_list: [1], k_list: [0], ...extra });
  const res = await runDataset({
    data: root,
    out,
    settings,
    loadBackbone: fakeLoader(fakeBackbone(32, 4)),
    scorer,
    metrics: fakeMetrics(),
    warn: (w) => warnings.push(w),
  });
  const rows = parseScoresCsv(await readFile(join(out, 'surface', 'scores.csv'), 'utf8'));
  return { res, rows, scorer, warnings };
}

test('MuSc+ in the pipeline: a reference copy of a test image scores it 0; references are not in the outputs', async () => {
  const { dir, cleanup } = await tempDir('fs-plus');
  try {
    const { root, x, refs } = await setup(dir);
    // exact: a copy's distance is 0
    const { rows, scorer } = await run(root, join(dir, 'o'), { reference_dir: refs, mode: 'musc-plus', msm_precision: 'exact' });
    assert.equal(rows.length, 9);
    assert.ok(!rows.some((r) => r.path.includes('copy-of')));
    // the scorer got the 9 test images + 1 reference, last
    assert.equal(scorer.calls.length, 1);
    assert.equal(scorer.calls[0]!.n, 10);
    assert.equal(scorer.calls[0]!.opts.references, 1);
    assert.equal(scorer.calls[0]!.opts.mode, 'musc-plus');
    for (const r of rows) {
      if (r.path === x) assert.ok(r.score < 1e-6, `${r.path}: ${r.score}`);
      else assert.ok(r.score > 1e-3, `${r.path}: ${r.score}`);
    }
    const maps = await readMaps(join(dir, 'o', 'surface', 'maps.safetensors'));
    assert.equal(maps.n, 9);
    const runJson = JSON.parse(await readFile(join(dir, 'o', 'surface', 'run.json'), 'utf8')) as {
      settings: { reference_images: string[]; mode: string };
    };
    assert.deepEqual(runJson.settings.reference_images, [join(refs, 'copy-of-002.png')]);
    assert.equal(runJson.settings.mode, 'musc-plus');
  } finally {
    await cleanup();
  }
});

test('few-shot MuSc: references join the pool (nearest-image interval [0,1] drops the copied image to 0)', async () => {
  const { dir, cleanup } = await tempDir('fs-pool');
  try {
    const { root, x, refs } = await setup(dir);
    const zero = await run(root, join(dir, 'z'), { interval: [0, 1], msm_precision: 'exact' });
    const shot = await run(root, join(dir, 's'), { interval: [0, 1], reference_dir: refs, msm_precision: 'exact' });
    assert.equal(shot.scorer.calls[0]!.opts.references, 1);
    assert.equal(shot.scorer.calls[0]!.opts.mode, 'musc');
    const z = new Map(zero.rows.map((r) => [r.path, r.score]));
    for (const r of shot.rows) {
      if (r.path === x) {
        assert.ok(r.score < 1e-6, `with the reference: ${r.score}`);
        assert.ok(z.get(x)! > 1e-3, `zero-shot: ${z.get(x)}`);
      } else assert.ok(r.score <= z.get(r.path)! + 1e-6, 'a larger pool never raises the nearest distance');
    }
  } finally {
    await cleanup();
  }
});

test('reference folders: per-category train/good, a test image given as reference is dropped with a warning, errors', async () => {
  const { dir, cleanup } = await tempDir('fs-dirs');
  try {
    const { root, refs } = await setup(dir);
    await writePng(join(dir, 'mv', 'surface', 'train', 'good', 'a.png'), 8, 8, 50);
    await writePng(join(dir, 'mv', 'other', 'b.png'), 8, 8, 50);
    assert.equal(await referenceFolder(join(dir, 'mv'), 'surface'), join(dir, 'mv', 'surface', 'train', 'good'));
    assert.equal(await referenceFolder(join(dir, 'mv'), 'other'), join(dir, 'mv', 'other'));
    assert.equal(await referenceFolder(join(dir, 'mv'), 'none'), join(dir, 'mv'));
    assert.deepEqual(await listReferenceImages(join(dir, 'mv')), [
      join(dir, 'mv', 'other', 'b.png'),
      join(dir, 'mv', 'surface', 'train', 'good', 'a.png'),
    ]);
    // a reference folder that is the test folder itself: every image dropped -> data error
    await assert.rejects(
      run(root, join(dir, 'e1'), { reference_dir: join(root, 'surface', 'test', 'good') }),
      (e: unknown) => e instanceof DatasetError && /every reference image is also a test image/.test((e as Error).message),
    );
    await copyFile(join(root, 'surface', 'test', 'good', '000.png'), join(refs, 'dup.png')); // a copy is fine (different file)
    await symlink(join(root, 'surface', 'test', 'good', '001.png'), join(refs, 'link.png')); // the test image itself
    const ok = await run(root, join(dir, 'e2'), { reference_dir: refs });
    assert.equal(ok.scorer.calls[0]!.opts.references, 2);
    assert.equal(
      ok.warnings.filter((w) => /link\.png is also a test image of 'surface': not used/.test(w)).length,
      1,
      ok.warnings.join('\n'),
    );
    await assert.rejects(
      run(root, join(dir, 'e3'), { mode: 'musc-plus' }),
      (e: unknown) => e instanceof ConfigError && /needs reference images/.test((e as Error).message),
    );
    await assert.rejects(
      run(root, join(dir, 'e4'), { reference_dir: join(dir, 'nope') }),
      (e: unknown) => e instanceof DatasetError && /reference folder not found/.test((e as Error).message),
    );
    await mkdir(join(dir, 'empty'));
    await assert.rejects(run(root, join(dir, 'e5'), { reference_dir: join(dir, 'empty') }), /no images found/);
  } finally {
    await cleanup();
  }
});

test('CLI: --mode musc-plus without references exits 2, a missing --reference-dir 3, a bad --decision 2', async () => {
  const { dir, cleanup } = await tempDir('fs-cli');
  try {
    await writePng(join(dir, 'ds', 'bottle', 'test', 'good', '000.png'), 8, 8, 1);
    const musc = (args: string[]) =>
      spawnSync(process.execPath, [cliMain, 'run', '--data', join(dir, 'ds'), '--out', join(dir, 'out'), ...args], {
        encoding: 'utf8',
        timeout: 60_000,
      });
    let r = musc(['--mode', 'musc-plus']);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /musc-plus.*needs reference images.*--reference-dir/);
    r = musc(['--reference-dir', join(dir, 'nope')]);
    assert.equal(r.status, 3, r.stderr);
    assert.match(r.stderr, /reference folder not found: .*nope/);
    r = musc(['--decision', 'median']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--decision.*expected mad, mad:K or otsu/);
    r = musc(['--mode', 'plus']);
    assert.equal(r.status, 2);
    const h = spawnSync(process.execPath, [cliMain, 'run', '--help'], { encoding: 'utf8' });
    for (const f of ['--reference-dir', '--mode', '--decision']) assert.ok(h.stdout.includes(f), f);
  } finally {
    await cleanup();
  }
});
