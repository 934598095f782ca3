/**
 * Scale (issue 7): 500 generated images (480 good, 20 with a bright spot) through the CLI with
 * the real offline resnet50 at 64 px under `--max-memory 32`: the category is divided
 * automatically into subsets that fit (the reference's divide_num subsets), the run says so,
 * and every image gets a finite score. About a minute on 2 cores (most of it mutual scoring),
 * so it runs always.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/cli-env.js';
import { pngOf } from './helpers/corpus.js';
import { musc, noStack } from './helpers/robust-cli.js';
import { estimateSubsetBytes } from '../src/scoring/memory.js';
import { DEFAULT_FEATURE_STORAGE } from '../src/pipeline/types.js';

let cleanup: () => Promise<void> = async () => {};
after(() => cleanup());

test('500 images within --max-memory: divided automatically, all scored', async (t) => {
  const tmp = await tempDir('scale');
  cleanup = tmp.cleanup;
  const data = join(tmp.dir, 'data');
  const N_GOOD = 480;
  const N_BAD = 20;
  mkdirSync(join(data, 'big', 'test', 'good'), { recursive: true });
  mkdirSync(join(data, 'big', 'test', 'spot'), { recursive: true });
  for (let i = 0; i < N_GOOD; i++)
    writeFileSync(join(data, 'big', 'test', 'good', `${String(i).padStart(3, '0')}.png`), await pngOf(64, 64, 5000 + i));
  for (let i = 0; i < N_BAD; i++)
    writeFileSync(join(data, 'big', 'test', 'spot', `${String(i).padStart(3, '0')}.png`), await pngOf(64, 64, 9000 + i, true));

  const MB = 32;
  const out = join(tmp.dir, 'out');
  const r = musc(
    ['run', '--data', data, '--out', out, '--image-size', '64', '--max-memory', String(MB), '--heatmaps', 'none', '--no-cache'],
    {},
    600_000,
  );
  assert.equal(r.code, 0, r.stderr);
  noStack(r.stderr);
  const m = new RegExp(`big: divided into (\\d+) subsets \\(largest (\\d+) images, about (\\d+) MB\\) to fit --max-memory ${MB} MB`).exec(
    r.stderr,
  );
  assert.ok(m, r.stderr);
  const run = JSON.parse(readFileSync(join(out, 'big', 'run.json'), 'utf8'));
  assert.equal(run.divide_num_used, Number(m[1]));
  assert.ok(run.divide_num_used > 1);
  const sizes: number[] = run.subset_sizes;
  assert.equal(
    sizes.reduce((a, b) => a + b, 0),
    N_GOOD + N_BAD,
  );
  assert.equal(Math.max(...sizes), Number(m[2]));
  assert.ok(run.estimated_subset_mb <= MB, `estimate ${run.estimated_subset_mb} MB`);
  // resnet50 layers 2 and 3 at 64 px: [8, 8, 512] and [4, 4, 1024]; undivided it would not fit
  const dims = [
    { h: 8, w: 8, c: 512 },
    { h: 4, w: 4, c: 1024 },
  ];
  assert.ok(estimateSubsetBytes(N_GOOD + N_BAD, dims, 64, DEFAULT_FEATURE_STORAGE) > MB * 2 ** 20);
  assert.ok(estimateSubsetBytes(Math.max(...sizes), dims, 64, DEFAULT_FEATURE_STORAGE) <= MB * 2 ** 20);
  // every image scored, finite; the spots are found
  const rows = readFileSync(join(out, 'big', 'scores.csv'), 'utf8')
    .trimEnd()
    .split('\n')
    .slice(1);
  assert.equal(rows.length, N_GOOD + N_BAD);
  assert.ok(
    rows.every((l) =>
      l
        .split(',')
        .slice(3, 5)
        .every((v) => Number.isFinite(Number(v))),
    ),
  ); // score, score_rscin (then the OK/NG decision)
  const metrics = JSON.parse(readFileSync(join(out, 'big', 'metrics.json'), 'utf8'));
  assert.ok(metrics.image_auroc >= 0.9, `image AUROC ${metrics.image_auroc}`);
  t.diagnostic(
    `divide ${run.divide_num_used}, subsets ${sizes.join(',')}, estimate ${run.estimated_subset_mb} MB, peak RSS ${run.peak_rss_mb} MB, ` +
      `total ${Math.round(run.timings_ms.total)} ms ` +
      `(backbone ${Math.round(run.timings_ms.backbone)}, scoring ${Math.round(run.timings_ms.scoring)})`,
  );
});
