import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { mkdir, writeFile } from 'node:fs/promises';
import { cliMain, tempDir, writePng } from './helpers/cli-env.js';

function musc(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliMain, ...args], { encoding: 'utf8', timeout: 60_000, env: { ...process.env, MUSC_DEBUG: '' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const noStack = (s: string): void => assert.doesNotMatch(s, /\n\s+at .+:\d+:\d+/, `stack trace in:\n${s}`);

test('no arguments: help on stdout, exit 2; --help exit 0', () => {
  const r = musc([]);
  assert.equal(r.code, 2);
  assert.match(r.stdout + r.stderr, /Usage: musc/);
  const h = musc(['run', '--help']);
  assert.equal(h.code, 0);
  for (const flag of [
    '--data',
    '--out',
    '--dataset',
    '--category',
    '--backbone',
    '--image-size',
    '--stages',
    '--r-list',
    '--divide',
    '--max-memory',
    '--k-list',
    '--interval',
    '--batch-size',
    '--config',
    '--norm',
    '--heatmaps',
    '--mask-rule',
    '--device',
    '--strict',
    '--quiet',
  ]) {
    assert.ok(h.stdout.includes(flag), `help lacks ${flag}`);
  }
});

test('data errors: missing folder, unknown category, no images -> exit 3 with a message', async () => {
  const { dir, cleanup } = await tempDir('clierr');
  try {
    let r = musc(['run', '--data', join(dir, 'nope'), '--out', join(dir, 'out')]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /data folder not found: .*nope/);
    noStack(r.stderr);

    await writePng(join(dir, 'ds', 'bottle', 'test', 'good', '000.png'), 8, 8, 1);
    r = musc(['run', '--data', join(dir, 'ds'), '--category', 'cable', '--out', join(dir, 'out')]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /unknown category 'cable'.*available: bottle/);
    noStack(r.stderr);

    await mkdir(join(dir, 'ds', 'empty', 'test', 'good'), { recursive: true });
    await writeFile(join(dir, 'ds', 'empty', 'test', 'good', 'readme.txt'), 'x');
    r = musc(['run', '--data', join(dir, 'ds'), '--category', 'empty', '--out', join(dir, 'out')]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /category 'empty': no images/);
    noStack(r.stderr);

    await mkdir(join(dir, 'blank'));
    r = musc(['run', '--data', join(dir, 'blank'), '--out', join(dir, 'out')]);
    assert.equal(r.code, 3);
    assert.match(r.stderr, /no images found/);
  } finally {
    await cleanup();
  }
});

test('usage errors: bad flag values, unknown options, missing --out, bad config -> exit 2', async () => {
  const { dir, cleanup } = await tempDir('cliusage');
  try {
    const cases: [string[], RegExp][] = [
      [['run', '--data', dir, '--out', dir, '--batch-size', 'abc'], /--batch-size.*'abc' is invalid/],
      [['run', '--data', dir, '--out', dir, '--batch-size', '0'], /--batch-size.*positive integer/],
      [['run', '--data', dir, '--out', dir, '--r-list', '1,x'], /--r-list/],
      [['run', '--data', dir, '--out', dir, '--interval', '0.5,0.1'], /--interval.*lo < hi <= 1/],
      [['run', '--data', dir, '--out', dir, '--r-list', '2'], /--r-list must be odd integers/],
      [['run', '--data', dir, '--out', dir, '--interval', '0,2'], /--interval must be lo,hi with 0 <= lo < hi <= 1/],
      [['run', '--data', dir, '--out', dir, '--fuse-sizes', '300'], /--fuse-sizes: sizes are multiples of 32 \(or none\), got '300'/],
      [['bank', 'build', '--data', dir, '--out', join(dir, 'b'), '--fuse-sizes', 'x'], /--fuse-sizes: expected a list/],
      [['run', '--data', dir, '--out', dir, '--vis-norm', 'both'], /--vis-norm.*Allowed choices are single, whole/],
      [['run', '--data', dir, '--out', dir, '--dataset', 'coco'], /--dataset/],
      [['run', '--data', dir, '--out', dir, '--bogus'], /unknown option '--bogus'/],
      [['run', '--data', dir], /required option '--out <dir>' not specified/],
      [['frobnicate'], /unknown command 'frobnicate'/],
    ];
    for (const [args, re] of cases) {
      const r = musc(args);
      assert.equal(r.code, 2, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
      assert.match(r.stderr, re);
      noStack(r.stderr);
    }
    const cfg = join(dir, 'c.yaml');
    await writeFile(cfg, 'r_list: one\n');
    const r = musc(['run', '--data', dir, '--out', dir, '--config', cfg]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /c\.yaml: 'r_list' must be array/);
    noStack(r.stderr);
  } finally {
    await cleanup();
  }
});
