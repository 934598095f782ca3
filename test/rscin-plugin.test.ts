/**
 * RsCIN as a plug-in: tokens.safetensors + another method's scores CSV -> score_rscin.
 *
 * Fixture where neighbours agree: 6 good and 6 defective images whose tokens form two clusters
 * (good ~ e1, defective ~ e2). A noisy baseline gives one good image a high score and one
 * defective image a low score (AUROC 35/36: the one inverted pair is 0.7 > 0.3); RsCIN averages each score with its 2-3 most similar
 * images, which share its label, so the two outliers move back into their cluster: AUROC 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFile, writeFile, readdir } from 'node:fs/promises';
import { spawnSync } from 'node:child_process';
import { writeTokens, readTokens, rscinByPath, rscinCsv, matchPaths, encodeTokens, normalizeTokens } from '../src/rscin-plugin.js';
import { rscin } from '../src/core/rscin.js';
import { rocAucScore } from '../src/metrics/index.js';
import { parseCsv } from '../src/outputs/csv.js';
import { encodeSafetensors } from '../src/io/safetensors.js';
import { tempDir, cliMain } from './helpers/cli-env.js';

const good = [0.1, 0.2, 0.15, 0.7, 0.12, 0.18]; // image 3: noisy high
const bad = [0.8, 0.9, 0.3, 0.85, 0.75, 0.95]; // image 2: noisy low
const paths = [...good.map((_, i) => `good/${i}.png`), ...bad.map((_, i) => `bad/${i}.png`)];
const labels = [...good.map(() => 0), ...bad.map(() => 1)];
const scores = [...good, ...bad];

/** [12, 3]: good = e1 + 0.01 i e3, bad = e2 + 0.01 i e3 */
function clusterTokens(): Float32Array {
  const t = new Float32Array(12 * 3);
  for (let i = 0; i < 12; i++) {
    t[i * 3 + (i < 6 ? 0 : 1)] = 1;
    t[i * 3 + 2] = 0.01 * (i % 6);
  }
  return t;
}

test('noisy baseline re-scored where neighbours agree: AUROC rises to 1 (library, rows matched by path)', () => {
  const before = rocAucScore(scores, labels);
  assert.ok(Math.abs(before - 35 / 36) < 1e-12);
  // the tokens file lists the images in another order, with an extra image
  const order = [11, 0, 5, 3, 8, 1, 10, 2, 7, 4, 9, 6];
  const base = clusterTokens();
  const tok = new Float32Array(13 * 3);
  order.forEach((src, row) => tok.set(base.subarray(src * 3, src * 3 + 3), row * 3));
  tok.set([0.5, 0.5, 0.5], 12 * 3);
  const set = { paths: [...order.map((i) => paths[i]!), 'extra/x.png'], root: '/data', tokens: { n: 13, d: 3, data: tok } };
  const out = rscinByPath(scores, paths, set, [1, 2, 3]);
  // the same as core RsCIN on tokens in the CSV's order
  assert.deepEqual(Array.from(out), Array.from(rscin(scores, { n: 12, d: 3, data: base }, [1, 2, 3])));
  assert.equal(rocAucScore(out, labels), 1);
  // hand check: good image 3 (score 0.7); its largest similarities (tokens are not unit length):
  // good 5 (1 + 0.03 * 0.05 = 1.0015), good 4 (1.0012), itself (1.0009)
  const s = scores.map((v) => (v - 0.1) / (0.95 - 0.1));
  const w = (i: number, j: number) => { let d = 0; for (let k = 0; k < 3; k++) d += base[i * 3 + k]! * base[j * 3 + k]!; return d; };
  const avg = (js: number[]) => js.reduce((a, j) => a + w(3, j) * s[j]!, 0) / js.reduce((a, j) => a + w(3, j), 0);
  const expect = (avg([5]) + avg([5, 4]) + avg([5, 4, 3])) / 3;
  assert.ok(Math.abs(out[3]! - expect) < 1e-6, `${out[3]} vs ${expect}`);
  // absolute paths under root match too; unknown paths are a clear error
  assert.deepEqual(Array.from(matchPaths(['/data/good/0.png', 'bad/5.png'], set)), [1, 0]);
  assert.throws(() => matchPaths(['good/0.png', 'good/99.png'], set), /1 of 2 scores rows have no image token: good\/99\.png/);
  assert.throws(() => matchPaths(['good/0.png', './good/0.png'], set), /several rows name the same image/);
  // musc tokens --normalize: unit rows (a zero row stays zero)
  const u = normalizeTokens({ n: 2, d: 2, data: Float32Array.from([3, 4, 0, 0]) });
  assert.deepEqual(Array.from(u.data), [0.6000000238418579, 0.800000011920929, 0, 0]);
});

test('musc rscin CLI: adds score_rscin atomically, keeps other columns, prints AUROC before/after; errors', async () => {
  const { dir, cleanup } = await tempDir('rscin-cli');
  try {
    const tokFile = join(dir, 'tokens.safetensors');
    await writeTokens(tokFile, { paths, root: join(dir, 'data'), backbone: 'fake', imageSize: 8, tokens: { n: 12, d: 3, data: clusterTokens() } });
    const back = await readTokens(tokFile);
    assert.deepEqual(back.paths, paths);
    assert.equal(back.backbone, 'fake');
    // another method's CSV: reversed order, an extra quoted column
    const idx = paths.map((_, i) => 11 - i);
    const csv = ['path,label,note,score', ...idx.map((i) => `${paths[i]},${labels[i]},"a, b",${scores[i]}`)].join('\n') + '\n';
    const scoresFile = join(dir, 'other.csv');
    await writeFile(scoresFile, csv);
    const musc = (args: string[]) => spawnSync(process.execPath, [cliMain, 'rscin', ...args], { encoding: 'utf8', timeout: 60_000 });
    let r = musc(['--scores', scoresFile, '--features', tokFile, '--k', '1,2,3']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /image AUROC: 97\.2 \(score\) -> 100\.0 \(score_rscin, k=1,2,3\)/);
    const rows = parseCsv(await readFile(scoresFile, 'utf8'));
    assert.deepEqual(rows[0], ['path', 'label', 'note', 'score', 'score_rscin']);
    assert.equal(rows[1]![2], 'a, b');
    const lib = await rscinCsv({ scoresFile, tokensFile: tokFile, kList: [1, 2, 3] });
    rows.slice(1).forEach((row, k) => assert.equal(Number(row[4]), lib.rscin[k]));
    assert.deepEqual((await readdir(dir)).sort(), ['other.csv', 'tokens.safetensors']); // no temporary files left
    // a second run replaces the column (reads `score`, not score_rscin)
    r = musc(['--scores', scoresFile, '--features', tokFile, '--out', join(dir, 'again.csv'), '--quiet']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(await readFile(join(dir, 'again.csv'), 'utf8'), await readFile(scoresFile, 'utf8'));
    // unknown labels (empty): the AUROC of the labelled rows only
    const blank = new Set([idx[0]!, idx[1]!]); // the first two data rows
    const partial = ['path,label,note,score', ...idx.map((i) => `${paths[i]},${blank.has(i) ? '' : labels[i]},"a, b",${scores[i]}`)].join('\n') + '\n';
    await writeFile(join(dir, 'partial.csv'), partial);
    r = musc(['--scores', join(dir, 'partial.csv'), '--features', tokFile, '--out', join(dir, 'partial-out.csv')]);
    assert.equal(r.status, 0, r.stderr);
    const kept = idx.filter((i) => !blank.has(i));
    const a0 = rocAucScore(kept.map((i) => scores[i]!), kept.map((i) => labels[i]!));
    assert.match(r.stderr, new RegExp(`image AUROC over the 10 labelled rows: ${(100 * a0).toFixed(1).replace('.', '\\.')} \\(score\\) -> `));
    assert.deepEqual((await rscinCsv({ scoresFile: join(dir, 'partial.csv'), tokensFile: tokFile, kList: [1] })).labels, idx.map((i) => (blank.has(i) ? null : labels[i])));

    // errors: unknown path (exit 3, names it), missing column, tokens without paths, bad --k (exit 2)
    await writeFile(join(dir, 'bad.csv'), 'path,score\ngood/0.png,1\nnowhere/z.png,2\n');
    r = musc(['--scores', join(dir, 'bad.csv'), '--features', tokFile]);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /1 of 2 .* rows have no image token: nowhere\/z\.png/);
    r = musc(['--scores', join(dir, 'bad.csv'), '--features', tokFile, '--column', 'anomaly']);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /no 'anomaly' column/);
    await writeFile(join(dir, 'nometa.safetensors'), encodeSafetensors({ tokens: { dtype: 'F32', shape: [1, 3], data: new Float32Array(3) } }));
    r = musc(['--scores', join(dir, 'bad.csv'), '--features', join(dir, 'nometa.safetensors')]);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /nometa\.safetensors: __metadata__ has no 'paths'/);
    r = musc(['--scores', join(dir, 'bad.csv'), '--features', tokFile, '--k', 'x']);
    assert.equal(r.status, 2);
    assert.ok(encodeTokens(back).length > 0);
  } finally {
    await cleanup();
  }
});

test('musc tokens: one row per image in dataset order, paths as in scores.csv (resnet50 at 64 px)', async () => {
  const { dir, cleanup } = await tempDir('tokens-cli');
  try {
    const { writePng } = await import('./helpers/cli-env.js');
    await writePng(join(dir, 'ds', 'bottle', 'test', 'good', '000.png'), 40, 40, 30);
    await writePng(join(dir, 'ds', 'bottle', 'test', 'good', '001.png'), 40, 40, 200);
    await writePng(join(dir, 'ds', 'bottle', 'test', 'crack', '000.png'), 40, 40, 120);
    const out = join(dir, 'tokens.safetensors');
    const r = spawnSync(process.execPath, [cliMain, 'tokens', '--data', join(dir, 'ds'), '--out', out, '--image-size', '64', '--quiet'], { encoding: 'utf8', timeout: 110_000 });
    assert.equal(r.status, 0, r.stderr);
    const t = await readTokens(out);
    assert.deepEqual(t.paths, ['bottle/test/crack/000.png', 'bottle/test/good/000.png', 'bottle/test/good/001.png']);
    assert.equal(t.root, join(dir, 'ds'));
    assert.equal(t.backbone, 'resnet50');
    assert.equal(t.tokens.n, 3);
    assert.equal(t.tokens.d, 2048);
    // different images, different tokens; ReLU + average pool: non-negative
    const row = (i: number) => t.tokens.data.subarray(i * 2048, (i + 1) * 2048);
    assert.notDeepEqual(Array.from(row(1)), Array.from(row(2)));
    assert.ok(t.tokens.data.every((v) => v >= 0 && Number.isFinite(v)));
  } finally {
    await cleanup();
  }
});
