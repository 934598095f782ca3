/**
 * Interruptions (issue 7): a run killed with SIGKILL mid-way leaves no partial output, and the
 * re-run resumes from the feature cache and gives byte-identical results to an uninterrupted
 * run; Ctrl-C (SIGINT) stops with exit 130 and no temporaries left.
 * The kill is sent as soon as the first feature-cache file appears (polled every 5 ms), while
 * the images are still going through the backbone.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/cli-env.js';
import { pngOf } from './helpers/corpus.js';
import { cacheFiles, musc, noStack, runAndSignal, walkFiles } from './helpers/robust-cli.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { TEMP_MARKER } from '../src/io/atomic.js';

const N_GOOD = 50;
const N_BAD = 10;
let dir = '';
let data = '';
let cleanup: () => Promise<void> = async () => {};

before(async () => {
  ({ dir, cleanup } = await tempDir('resume'));
  data = join(dir, 'data');
  mkdirSync(join(data, 'part', 'test', 'good'), { recursive: true });
  mkdirSync(join(data, 'part', 'test', 'dent'), { recursive: true });
  for (let i = 0; i < N_GOOD; i++) writeFileSync(join(data, 'part', 'test', 'good', `${String(i).padStart(3, '0')}.png`), await pngOf(48, 48, 1000 + i));
  for (let i = 0; i < N_BAD; i++) writeFileSync(join(data, 'part', 'test', 'dent', `${String(i).padStart(3, '0')}.png`), await pngOf(48, 48, 2000 + i, true));
});
after(() => cleanup());

// batch size 1: one cache file per backbone call, so the kill lands early in a long extraction
const args = (out: string, extra: string[] = []) => ['run', '--data', data, '--out', out, '--image-size', '64', '--batch-size', '1', '--heatmaps', 'none', '--r-list', '1', ...extra];
const OUTPUTS = ['summary.json', 'metrics.md', 'part/scores.csv', 'part/metrics.json', 'part/maps.safetensors', 'part/run.json'];

test('SIGKILL mid-way: no partial output; the re-run resumes from the cache and matches an uninterrupted run', async (t) => {
  const out = join(dir, 'killed');
  const cache = join(out, '.cache', 'features');
  const r = await runAndSignal(args(out), () => cacheFiles(cache).length > 0, 'SIGKILL', () => cacheFiles(cache).length);
  assert.equal(r.signal, 'SIGKILL', `the run ended before the kill (exit ${r.code}):\n${r.stderr}`);
  t.diagnostic(`killed with ${r.snap} cache files written`);
  // nothing but the cache (and perhaps a temporary of the file being written) exists
  const left = walkFiles(out);
  for (const f of OUTPUTS) assert.ok(!left.includes(f), `${f} exists after the kill`);
  // (and the dead run's lock, which the re-run takes over: its pid is gone)
  assert.ok(left.every((f) => f.startsWith('.cache/features/') || f === '.musc-lock'), `unexpected files: ${left.join(', ')}`);
  // every complete cache file is readable; the kill came mid-way
  const cached = cacheFiles(cache);
  assert.ok(cached.length > 0 && cached.length < N_GOOD + N_BAD, `${cached.length} cache files`);
  for (const f of cached) SafetensorsFile.open(join(cache, f)).close();

  // re-run: resumes (the cached images are not recomputed), no temporaries left
  const again = musc(args(out));
  assert.equal(again.code, 0, again.stderr);
  const m = /part: features of (\d+) images from the cache, (\d+) computed/.exec(again.stderr);
  assert.ok(m, again.stderr);
  assert.equal(Number(m[1]), cached.length);
  assert.equal(Number(m[2]), N_GOOD + N_BAD - cached.length);
  assert.deepEqual(walkFiles(out).filter((f) => f.includes(TEMP_MARKER) || f.startsWith('.musc-')), []);

  // the same bytes as a run that was never interrupted (and never cached)
  const clean = join(dir, 'uninterrupted');
  const u = musc(args(clean, ['--no-cache']));
  assert.equal(u.code, 0, u.stderr);
  for (const f of ['part/scores.csv', 'part/metrics.json', 'part/maps.safetensors', 'summary.json', 'metrics.md']) {
    assert.deepEqual(readFileSync(join(out, f)), readFileSync(join(clean, f)), `${f} differs`);
  }
});

test('Ctrl-C (SIGINT): exit 130, a message, no temporaries, no partial output', async () => {
  const out = join(dir, 'interrupted');
  const cache = join(out, '.cache', 'features');
  const r = await runAndSignal(args(out), () => cacheFiles(cache).length > 0, 'SIGINT', () => true);
  assert.equal(r.code, 130, `exit ${r.code} signal ${r.signal}\n${r.stderr}`);
  assert.match(r.stderr, /musc: interrupted/);
  noStack(r.stderr);
  const left = walkFiles(out);
  assert.deepEqual(left.filter((f) => f.includes(TEMP_MARKER)), []);
  for (const f of OUTPUTS) assert.ok(!existsSync(join(out, f)), `${f} exists after Ctrl-C`);
});
