/**
 * Robustness on bad and unusual inputs (issue 7): every case of the generated corpus
 * (test/helpers/corpus.ts) goes through the real CLI with the offline resnet50 at 64 px.
 * Checks the exit code, the message for each bad file, and that the readable images' results
 * are complete and equal to a run on a folder holding only those images.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync, readdirSync, truncateSync, copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/cli-env.js';
import { buildCorpus, buildClean, pngOf, type Corpus } from './helpers/corpus.js';
import { musc, noStack, walkFiles } from './helpers/robust-cli.js';
import { writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { randomTinyNet, torchTensors, TINY } from './helpers/resnet-tiny.js';
import { GOLDEN } from './helpers/paths.js';

let dir = '';
let cleanup: () => Promise<void> = async () => {};
let corpus: Corpus;
const FAST = ['--image-size', '64', '--batch-size', '4'];

before(async () => {
  ({ dir, cleanup } = await tempDir('robust'));
  corpus = await buildCorpus(join(dir, 'corpus'));
});
after(() => cleanup());

/** scores.csv rows: [path, defect, label, score, score_rscin] (RFC 4180 quotes handled) */
function readCsv(file: string): string[][] {
  const rows: string[][] = [];
  for (const line of readFileSync(file, 'utf8').trimEnd().split('\n')) {
    const cells: string[] = [];
    let cur = '';
    let q = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i]!;
      if (q) {
        if (ch === '"' && line[i + 1] === '"') {
          cur += '"';
          i++;
        } else if (ch === '"') q = false;
        else cur += ch;
      } else if (ch === '"') q = true;
      else if (ch === ',') {
        cells.push(cur);
        cur = '';
      } else cur += ch;
    }
    cells.push(cur);
    rows.push(cells);
  }
  return rows.slice(1);
}

const readJson = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

test('corpus through the CLI: bad files skipped with their reason, the rest scored exactly as without them', async (t) => {
  const out = join(dir, 'out-all');
  const r = musc(['run', '--data', corpus.root, '--out', out, ...FAST, '--heatmaps', 'all']);
  noStack(r.stderr);
  // 'single' (one image) cannot be scored: the others are written, then exit 3 naming it
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /1 of 4 categories could not be scored \(single\)/);
  assert.match(r.stderr, /category 'single' has only 1 readable image \(single\/test\/good\/a\.png\): mutual scoring needs at least 2/);
  assert.match(r.stderr, /warning: category 'empty': no images, skipped/);
  if (!corpus.rootReadsAnything) t.diagnostic('not root: the chmod 000 file must be skipped');
  else t.diagnostic('running as root: a chmod 000 file is readable, so it must be scored');

  const mixed = join(out, 'mixed');
  const rows = readCsv(join(mixed, 'scores.csv'));
  const runJson = readJson(join(mixed, 'run.json'));
  const metrics = readJson(join(mixed, 'metrics.json'));
  const mixedCases = corpus.cases.filter((c) => c.rel.startsWith('mixed/'));
  const scored = mixedCases.filter((c) => c.expect === 'scored').map((c) => c.rel);
  const skipped = mixedCases.filter((c) => c.expect === 'skipped');
  // every readable image has a row, in dataset order (sorted types, then names), and nothing else
  const order = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  assert.deepEqual(
    rows.map((x) => x[0]),
    [...scored].sort(order),
  );
  for (const row of rows) {
    assert.ok(Number.isFinite(Number(row[3])) && Number.isFinite(Number(row[4])), `non-finite score: ${row.join(',')}`);
  }
  // duplicates score the same
  const score = (name: string) => rows.find((x) => x[0] === `mixed/test/good/${name}`)![4];
  assert.equal(score('dup_a.png'), score('dup_b.png'));
  // each bad file: a warning line naming it with the reason, in run.json too
  assert.equal(metrics.n_skipped, skipped.length);
  assert.equal(metrics.n_images, scored.length);
  assert.equal(runJson.skipped.length, skipped.length);
  for (const c of skipped) {
    const line = r.stderr.split('\n').find((l) => l.startsWith(`warning: skipped ${c.rel}: `));
    assert.ok(line, `no warning for ${c.what} (${c.rel}) in:\n${r.stderr}`);
    assert.match(line, c.reason!, c.what);
    const rec = runJson.skipped.find((s: { path: string }) => s.path === c.rel);
    assert.ok(rec, `${c.rel} not in run.json skipped`);
    assert.match(rec.reason, c.reason!);
  }
  // mask warnings: the extra mask, the mask of the wrong size; pixel metrics still computed
  assert.match(r.stderr, /mixed\/scratch: 1 mask without an image, ignored: 999_mask\.png/);
  assert.match(r.stderr, /1 mask does not match the image size .*mixed\/test\/scratch\/001\.png is 48x48, its mask 96x96/);
  assert.equal(typeof metrics.pixel_auroc, 'number');
  // heatmaps for every scored image, odd ones included
  assert.equal(walkFiles(join(mixed, 'heatmaps')).length, scored.length);

  // N < 5: a warning, finite scores
  assert.match(r.stderr, /subset 1 of 'few' has 4 images: mutual scoring needs at least 5/);
  assert.ok(readCsv(join(out, 'few', 'scores.csv')).every((x) => Number.isFinite(Number(x[4]))));
  // a missing mask: a warning, no pixel metrics, image metrics still there
  assert.match(r.stderr, /nomask\/hole: 1 of 2 images have no mask/);
  const nm = readJson(join(out, 'nomask', 'metrics.json'));
  assert.equal(nm.pixel_auroc, null);
  assert.equal(typeof nm.image_auroc, 'number');
  // the summary counts the skipped files
  const summary = readJson(join(out, 'summary.json'));
  assert.deepEqual(
    summary.categories.map((c: { category: string }) => c.category),
    ['few', 'mixed', 'nomask'],
  );
  assert.equal(summary.categories.find((c: { category: string }) => c.category === 'mixed').n_skipped, skipped.length);
  assert.match(readFileSync(join(out, 'metrics.md'), 'utf8'), new RegExp(`\\| mixed \\|.*\\| ${scored.length} \\| ${skipped.length} \\|`));

  // the readable images alone give byte-identical scores and maps
  const clean = join(dir, 'clean');
  await buildClean(clean, corpus);
  const outClean = join(dir, 'out-clean');
  const rc = musc(['run', '--data', clean, '--out', outClean, ...FAST, '--heatmaps', 'none', '--no-cache']);
  assert.equal(rc.code, 0, rc.stderr);
  assert.equal(readFileSync(join(outClean, 'mixed', 'scores.csv'), 'utf8'), readFileSync(join(mixed, 'scores.csv'), 'utf8'));
  assert.deepEqual(readFileSync(join(outClean, 'mixed', 'maps.safetensors')), readFileSync(join(mixed, 'maps.safetensors')));
});

test('--strict fails on the first unreadable file, before writing anything; --max-pixels skips large images', () => {
  const out = join(dir, 'out-strict');
  const r = musc(['run', '--data', corpus.root, '--category', 'mixed', '--out', out, ...FAST, '--strict']);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /^musc: error: .*mixed\/test\/good\/.*: .* \(--strict\)$/m);
  noStack(r.stderr);
  assert.ok(!existsSync(join(out, 'mixed', 'scores.csv')));

  const out2 = join(dir, 'out-pixels');
  const p = musc(['run', '--data', corpus.root, '--category', 'few', '--out', out2, ...FAST, '--max-pixels', '2000']);
  assert.equal(p.code, 3, p.stderr);
  assert.match(
    p.stderr,
    /none of the 4 images could be read \(first: few\/test\/dent\/0\.png: image is 48x48 = 2304 pixels, over the limit of 2000/,
  );
  noStack(p.stderr);
  const bad = musc(['run', '--data', corpus.root, '--out', out2, '--max-pixels', '-5']);
  assert.equal(bad.code, 2);
});

test('bad weight files fail fast with exit 2 and a message naming the file', async () => {
  const wdir = join(dir, 'weights');
  mkdirSync(wdir, { recursive: true });
  const tiny = torchTensors(randomTinyNet(TINY, 3, false));
  const good = join(wdir, 'tiny.safetensors');
  await writeSafetensors(good, tiny);
  // truncated
  const trunc = join(wdir, 'truncated.safetensors');
  copyFileSync(good, trunc);
  truncateSync(trunc, Math.floor(readFileSync(good).length / 2));
  // wrong dtype: conv1.weight as I32
  const wrongDtype = join(wdir, 'wrong-dtype.safetensors');
  const c1 = tiny['conv1.weight']!;
  await writeSafetensors(wrongDtype, {
    ...tiny,
    'conv1.weight': {
      dtype: 'I32',
      shape: c1.shape,
      data: Int32Array.from(c1.data as Float32Array, (v) => Math.round(v * 100)),
    } as TensorToWrite,
  });
  // another architecture: ViT tensor names
  const vit = join(wdir, 'vit.safetensors');
  await writeSafetensors(vit, {
    'patch_embed.proj.weight': { dtype: 'F32', shape: [8, 3, 14, 14], data: new Float32Array(8 * 3 * 14 * 14) },
  });
  // not a safetensors file at all, and a broken tfjs model.json
  const text = join(wdir, 'text.safetensors');
  writeFileSync(text, 'hello');
  const json = join(wdir, 'model.json');
  writeFileSync(json, '{"format": "layers-model", "modelTopology": {}');

  const cases: [string[], RegExp][] = [
    [
      ['--backbone', 'wide-resnet50', '--weights', trunc],
      new RegExp(
        `${/truncated\.safetensors: tensor '.*' extends past the end of the file \(file truncated\?\)/.source}|` +
          /truncated\.safetensors: not a safetensors file/.source,
      ),
    ],
    [
      ['--backbone', 'wide-resnet50', '--weights', wrongDtype],
      /wrong-dtype\.safetensors: tensor 'conv1\.weight' has dtype I32, expected a float type/,
    ],
    [['--backbone', 'wide-resnet50', '--weights', vit], /vit\.safetensors.*not a torchvision\/timm ResNet/],
    [['--backbone', 'wide-resnet50', '--weights', good], /tiny\.safetensors.*(wide|width|architecture|blocks)/i],
    [['--backbone', 'wide-resnet50', '--weights', text], /text\.safetensors: not a safetensors file/],
    [['--backbone', 'resnet50', '--weights', json], /model\.json: cannot read model\.json/],
    [['--backbone', 'resnet50', '--weights', join(wdir, 'nope.json')], /nope\.json.*does not exist/],
    [['--backbone', trunc], /truncated\.safetensors/],
    [['--backbone', 'resnet50', '--image-size', '50'], /image size must be a multiple of 32/],
  ];
  for (const [args, re] of cases) {
    const out = join(dir, 'out-weights');
    const r = musc(['run', '--data', corpus.root, '--category', 'few', '--out', out, ...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, /^musc: error: /m);
    assert.match(r.stderr, re, args.join(' '));
    noStack(r.stderr);
    // failed before any work: no category output
    assert.ok(!existsSync(join(out, 'few')), `${args.join(' ')}: wrote outputs`);
  }
});

test('a corrupt cached ONNX graph is rebuilt: same results', {
  skip: !existsSync(join(GOLDEN, 'dinov2_tiny.dinov2.safetensors')) && 'golden tiny DINOv2 weights not found',
}, () => {
  const cacheHome = join(dir, 'musc-cache');
  const weights = join(GOLDEN, 'dinov2_tiny.dinov2.safetensors');
  const args = (out: string) => [
    'run',
    '--data',
    corpus.root,
    '--category',
    'nomask',
    '--out',
    out,
    '--backbone',
    weights,
    '--no-cache',
    '--heatmaps',
    'none',
  ];
  const a = musc(args(join(dir, 'g1')), { MUSC_CACHE: cacheHome });
  assert.equal(a.code, 0, a.stderr);
  const graphs = join(cacheHome, 'graphs');
  const onnx = readdirSync(graphs).filter((f) => f.endsWith('.onnx'));
  assert.equal(onnx.length, 1);
  const p = join(graphs, onnx[0]!);
  const bytes = readFileSync(p);
  bytes[bytes.length >> 1]! ^= 0xff;
  writeFileSync(p, bytes.subarray(0, bytes.length - 100)); // flipped and truncated
  const b = musc(args(join(dir, 'g2')), { MUSC_CACHE: cacheHome });
  assert.equal(b.code, 0, b.stderr);
  noStack(b.stderr);
  assert.equal(
    readFileSync(join(dir, 'g2', 'nomask', 'scores.csv'), 'utf8'),
    readFileSync(join(dir, 'g1', 'nomask', 'scores.csv'), 'utf8'),
  );
  // its metadata file garbled too
  const meta = join(graphs, onnx[0]!.replace(/\.onnx$/, '.json'));
  writeFileSync(meta, '{not json');
  const c = musc(args(join(dir, 'g3')), { MUSC_CACHE: cacheHome });
  assert.equal(c.code, 0, c.stderr);
  assert.equal(
    readFileSync(join(dir, 'g3', 'nomask', 'scores.csv'), 'utf8'),
    readFileSync(join(dir, 'g1', 'nomask', 'scores.csv'), 'utf8'),
  );
});

test('determinism: identical runs give byte-identical scores.csv and metrics.json, with and without the feature cache', async () => {
  const data = join(dir, 'det');
  mkdirSync(join(data, 'cat', 'test', 'good'), { recursive: true });
  mkdirSync(join(data, 'cat', 'test', 'bad'), { recursive: true });
  for (let i = 0; i < 6; i++) writeFileSync(join(data, 'cat', 'test', 'good', `${i}.png`), await pngOf(40 + 4 * i, 48, 100 + i));
  writeFileSync(join(data, 'cat', 'test', 'bad', '0.png'), await pngOf(48, 48, 200, true));
  const runs = [
    ['--no-cache'],
    [], // computes and caches
    [], // same out: all from the cache
    ['--cache-dir', join(dir, 'det-out1', '.cache', 'features')], // another out, the same cache
  ];
  const outs = ['det-out0', 'det-out1', 'det-out1', 'det-out2'].map((o) => join(dir, o));
  const files: string[][] = [];
  for (let i = 0; i < runs.length; i++) {
    const r = musc(['run', '--data', data, '--out', outs[i]!, ...FAST, ...runs[i]!]);
    assert.equal(r.code, 0, r.stderr);
    if (i === 2 || i === 3) assert.match(r.stderr, /cat: features of 7 images from the cache, 0 computed/);
    files.push(['scores.csv', 'metrics.json', 'maps.safetensors'].map((f) => readFileSync(join(outs[i]!, 'cat', f), 'latin1')));
  }
  for (let i = 1; i < files.length; i++) assert.deepEqual(files[i], files[0], `run ${i} differs`);
});
