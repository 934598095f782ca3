/**
 * Issue 13 item 7, "the first hour": help texts with required markers and examples, one flag for the
 * heatmap scale (--norm; the old --vis-norm / vis_norm still work with a deprecation note), -q on
 * the commands that print information lines.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Command } from 'commander';
import { nextSteps } from '../src/cli/help.js';
import { buildProgram } from '../src/cli/main.js';
import { modelsCommand } from '../src/cli/models.js';
import { startServe } from '../src/cli/report.js';
import { loadConfigFile } from '../src/config.js';
import { cliMain, tempDir, writePng } from './helpers/cli-env.js';

function musc(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cliMain, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, MUSC_DEBUG: '' },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** stderr lines written while f runs (in this process). */
async function stderrOf(f: () => Promise<unknown>): Promise<string> {
  const orig = process.stderr.write.bind(process.stderr);
  let text = '';
  process.stderr.write = ((s: string | Uint8Array) => {
    text += String(s);
    return true;
  }) as typeof process.stderr.write;
  try {
    await f();
  } finally {
    process.stderr.write = orig;
  }
  return text;
}

test('help: required options marked, examples shown (run, demo, report, serve, tokens, rscin, ablate, models, bank build, predict)', () => {
  const cases: [string[], string[]][] = [
    [['run'], ['--data', '--out']],
    [['demo'], []],
    [['report'], []],
    [['serve'], []],
    [['tokens'], ['--data', '--out']],
    [['rscin'], ['--scores', '--features']],
    [['ablate'], ['--data']],
    [['models'], []],
    [
      ['bank', 'build'],
      ['--data', '--out'],
    ],
    [['predict'], ['--bank', '--out']],
  ];
  for (const [cmd, required] of cases) {
    const h = musc([...cmd, '--help']);
    assert.equal(h.code, 0, cmd.join(' '));
    assert.match(h.stdout, /\nExamples?:\n {2}musc /, `${cmd.join(' ')} --help has no examples`);
    for (const flag of required)
      assert.match(h.stdout, new RegExp(`${flag} <[^>]+>\\s+\\(required\\)`), `${cmd.join(' ')}: ${flag} not marked required`);
  }
  const run = musc(['run', '--help']).stdout;
  assert.match(run, /--norm <scale>.*category.*image/s);
  assert.doesNotMatch(run, /--vis-norm/, 'the deprecated spelling is hidden');
  // a missing required option is still a usage error (exit 2)
  const r = musc(['run', '--out', '/tmp/x']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /required option '--data <dir>' not specified/);
});

/** The flags musc run's action receives for these arguments (the action replaced, nothing runs). */
async function runFlags(args: string[]): Promise<Record<string, unknown>> {
  const program = buildProgram();
  const run = program.commands.find((c: Command) => c.name() === 'run')!;
  let got: Record<string, unknown> = {};
  run.action((f: Record<string, unknown>) => {
    got = f;
  });
  await program.parseAsync(['node', 'musc', 'run', '--data', 'd', '--out', 'o', ...args]);
  return got;
}

test('--norm category|image on run and report; --vis-norm single|whole still works, hidden, with a one-line note', async () => {
  assert.equal((await runFlags(['--norm', 'image'])).norm, 'image');
  assert.equal((await runFlags([])).norm, undefined, 'no default on run (a config file may set it)');
  let f: Record<string, unknown> = {};
  const note = await stderrOf(async () => {
    f = await runFlags(['--vis-norm', 'whole']);
  });
  assert.equal(f.visNorm, 'category');
  assert.equal(note, 'musc: note: --vis-norm whole is deprecated; use --norm category\n');
  assert.equal((await runFlags(['--vis-norm', 'single'])).visNorm, 'image');
  for (const bad of [
    ['--norm', 'single'],
    ['--vis-norm', 'both'],
  ]) {
    const r = musc(['run', '--data', 'd', '--out', 'o', ...bad]);
    assert.equal(r.code, 2, bad.join(' '));
    assert.match(r.stderr, /Allowed choices are/);
  }
  assert.match(musc(['report', '--help']).stdout, /--norm <scale>.*category.*image/s);
  // the config key likewise: norm, and the old vis_norm with a note
  const { dir, cleanup } = await tempDir('norm-cfg');
  try {
    await writeFile(join(dir, 'new.yaml'), 'norm: image\n');
    assert.deepEqual(await loadConfigFile(join(dir, 'new.yaml')), { norm: 'image' });
    await writeFile(join(dir, 'old.yaml'), 'vis_norm: whole\n');
    let cfg: unknown;
    const msg = await stderrOf(async () => {
      cfg = await loadConfigFile(join(dir, 'old.yaml'));
    });
    assert.deepEqual(cfg, { norm: 'category' });
    assert.match(msg, /^musc: note: config file .*old\.yaml: 'vis_norm' is deprecated; use 'norm: category\|image'.*\n$/);
    await writeFile(join(dir, 'bad.yaml'), 'norm: whole\n');
    await assert.rejects(loadConfigFile(join(dir, 'bad.yaml')), /'norm' must be equal to one of the allowed values \(category, image\)/);
  } finally {
    await cleanup();
  }
});

test('-q: report, serve, models list and rscin print no information lines; without -q they do', async () => {
  const { dir, cleanup } = await tempDir('quiet');
  try {
    await mkdir(join(dir, 'c'));
    await writeFile(join(dir, 'c', 'scores.csv'), 'path,defect,label,score,score_rscin\nx.png,,,1,1\n');
    let r = musc(['report', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /report: .*report\.html/);
    r = musc(['report', dir, '-q']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout + r.stderr, '');
    assert.match(musc(['serve', '--help']).stdout, /-q, --quiet/);
    const said: string[] = [];
    for (const quiet of [true, false]) {
      const srv = await startServe(dir, { port: 0, host: '127.0.0.1', build: true, quiet }, (l) => said.push(l));
      await srv.close();
      assert.equal(said.length === 0, quiet, `serve ${quiet ? '-q' : ''}: ${said.join(' | ')}`);
    }
    assert.match(said.join('\n'), /serving /);
    const lines: string[] = [];
    const models = modelsCommand({ out: (t) => lines.push(t) }).exitOverride();
    await models.parseAsync(['node', 'models', 'list', '--cache-dir', dir]);
    assert.ok(lines.some((l) => l.startsWith('cache: ')));
    lines.length = 0;
    await models.parseAsync(['node', 'models', 'list', '--cache-dir', dir, '-q']);
    assert.ok(lines.length === 1 && lines[0]!.startsWith('NAME'), 'the table only');
    for (const cmd of ['run', 'demo', 'tokens', 'rscin', 'ablate', 'predict', 'report', 'serve'])
      assert.match(musc([cmd, '--help']).stdout, /-q, --quiet/, cmd);
    assert.match(musc(['bank', 'build', '--help']).stdout, /-q, --quiet/);
  } finally {
    await cleanup();
  }
});

test('musc run -q on a plain folder: only the result line; without -q information lines too', async () => {
  const { dir, cleanup } = await tempDir('quiet-run');
  try {
    for (let i = 0; i < 6; i++) await writePng(join(dir, 'imgs', `${i}.png`), 32, 32, i + 1);
    const args = ['run', '--data', join(dir, 'imgs'), '--image-size', '32', '--no-cache', '--heatmaps', 'none'];
    const loud = musc([...args, '--out', join(dir, 'o1')]);
    assert.equal(loud.code, 0, loud.stderr);
    assert.match(loud.stderr, /report: /);
    assert.match(loud.stdout, /\| /, 'the metrics table');
    const quiet = musc([...args, '--out', join(dir, 'o2'), '-q']);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, '');
    assert.match(quiet.stdout, /^musc: 1 category, 6 images scored, .*\n$/);
  } finally {
    await cleanup();
  }
});

test('the demo ends with how to open its report and what to try next', () => {
  const s = nextSteps('/tmp/demo/results');
  assert.match(s, /musc serve \/tmp\/demo\/results/);
  assert.match(s, /\/tmp\/demo\/results\/report\.html/);
  assert.match(s, /musc run --data DIR --out OUT/);
  assert.match(s, /musc bank build --data \S+ --out \S+/);
  assert.match(s, /musc predict --bank \S+ \S+ --out \S+/);
});

test('musc bank build / predict -q: no information lines (the bank description), the result line stays', async () => {
  const { dir, cleanup } = await tempDir('quiet-bank');
  try {
    for (let i = 0; i < 8; i++) await writePng(join(dir, 'good', `${i}.png`), 32, 32, 10 * i + 1);
    await writePng(join(dir, 'new', 'a.png'), 32, 32, 7);
    const bank = join(dir, 'b.bank');
    const b = musc(['bank', 'build', '--data', join(dir, 'good'), '--out', bank, '--image-size', '32', '-q']);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(b.stderr, '');
    const loud = musc(['predict', '--bank', bank, join(dir, 'new'), '--out', join(dir, 'p1')]);
    assert.equal(loud.code, 0, loud.stderr);
    assert.match(loud.stderr, /8 images/, 'the bank description');
    const quiet = musc(['predict', '--bank', bank, join(dir, 'new'), '--out', join(dir, 'p2'), '-q']);
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.equal(quiet.stderr, '');
    assert.match(quiet.stdout, /^musc predict: 1 images: .*\n$/);
  } finally {
    await cleanup();
  }
});
