/**
 * Issue 16, outputs as a transaction: staging + switch, recovery of a killed switch, the
 * per-folder lock (stale after SIGKILL or pid reuse), output folder checks before any work,
 * ENOSPC naming the file, exit 3 still writing report.html, a killed `musc report`.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers/cli-env.js';
import { pngOf } from './helpers/corpus.js';
import { musc, noStack, runAndSignal, walkFiles } from './helpers/robust-cli.js';
import { OutputTransaction, recoverOutputs, JOURNAL_FILE } from '../src/outputs/transaction.js';
import { acquireOutputLock, LOCK_FILE, processStartTime } from '../src/outputs/lock.js';
import { prepareOutputFolder } from '../src/outputs/out-dir.js';
import { writeFileAtomic, OutputWriteError } from '../src/io/atomic.js';
import { ConfigError } from '../src/config.js';
import { hostname } from 'node:os';

let dir = '';
let data = '';
let cleanup: () => Promise<void> = async () => {};

before(async () => {
  ({ dir, cleanup } = await tempDir('tx'));
  data = join(dir, 'data');
  for (const [cat, n] of [
    ['part', 14],
    ['tiny', 1],
  ] as const) {
    mkdirSync(join(data, cat, 'test', 'good'), { recursive: true });
    mkdirSync(join(data, cat, 'test', 'dent'), { recursive: true });
    for (let i = 0; i < n; i++) writeFileSync(join(data, cat, 'test', 'good', `${i}.png`), await pngOf(40, 40, 100 + i));
    if (n > 1) for (let i = 0; i < 3; i++) writeFileSync(join(data, cat, 'test', 'dent', `${i}.png`), await pngOf(40, 40, 200 + i, true));
  }
});
after(() => cleanup());

const args = (out: string, extra: string[] = []) => [
  'run',
  '--data',
  data,
  '--out',
  out,
  '--category',
  'part',
  '--image-size',
  '64',
  '--batch-size',
  '1',
  '--r-list',
  '1',
  '--quiet',
  ...extra,
];

/** sha256 of every file below `d` except the feature cache and hidden bookkeeping. */
function snapshot(d: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of walkFiles(d))
    if (!f.startsWith('.'))
      out[f] = createHash('sha256')
        .update(readFileSync(join(d, f)))
        .digest('hex');
  return out;
}

test('transaction: staged entries switch in; a commit killed midway is finished by recoverOutputs; no commit = old set', async () => {
  const out = join(dir, 'unit');
  mkdirSync(join(out, 'a'), { recursive: true });
  writeFileSync(join(out, 'a', 'x.txt'), 'old a');
  writeFileSync(join(out, 'summary.json'), 'old summary');
  // not committed: the old set stays, the staging folder is removed by recovery
  const t1 = await OutputTransaction.begin(out);
  mkdirSync(join(t1.dir, 'a'));
  writeFileSync(join(t1.dir, 'a', 'x.txt'), 'new a');
  assert.match((await recoverOutputs(out)) ?? '', /removed 1 unfinished staging folder/);
  assert.equal(readFileSync(join(out, 'a', 'x.txt'), 'utf8'), 'old a');
  assert.deepEqual(readdirSync(out).sort(), ['a', 'summary.json']);
  // a commit interrupted after its journal and the first switch: recovery completes it
  const t2 = await OutputTransaction.begin(out);
  mkdirSync(join(t2.dir, 'a'));
  writeFileSync(join(t2.dir, 'a', 'x.txt'), 'new a');
  writeFileSync(join(t2.dir, 'summary.json'), 'new summary');
  writeFileSync(
    join(out, JOURNAL_FILE),
    JSON.stringify({ staging: t2.dir.slice(out.length + 1), entries: ['a', 'summary.json'], remove: ['report.html'] }),
  );
  writeFileSync(join(out, 'report.html'), 'old report');
  // (simulate the kill after the old 'a' was moved aside)
  mkdirSync(join(t2.dir, '.replaced'));
  (await import('node:fs')).renameSync(join(out, 'a'), join(t2.dir, '.replaced', 'a'));
  assert.match((await recoverOutputs(out)) ?? '', /finished switching in/);
  assert.equal(readFileSync(join(out, 'a', 'x.txt'), 'utf8'), 'new a');
  assert.equal(readFileSync(join(out, 'summary.json'), 'utf8'), 'new summary');
  assert.deepEqual(readdirSync(out).sort(), ['a', 'summary.json']);
  // a normal commit
  const t3 = await OutputTransaction.begin(out);
  writeFileSync(join(t3.dir, 'summary.json'), 'third');
  await t3.commit(['summary.json']);
  assert.equal(readFileSync(join(out, 'summary.json'), 'utf8'), 'third');
  assert.deepEqual(readdirSync(out).sort(), ['a', 'summary.json']);
});

test('SIGKILL of a second run into a full output folder: the previous results stay complete, then the re-run replaces them', async () => {
  const out = join(dir, 'kill');
  const first = musc(args(out, ['--heatmaps', 'all']));
  assert.equal(first.code, 0, first.stderr);
  assert.ok(existsSync(join(out, 'report.html')));
  const before1 = snapshot(out);
  // the second run differs (other --r-list): killed once its staging folder holds a category file
  const staged = (): boolean =>
    readdirSync(out).some((e) => e.startsWith('.musc-staging-') && existsSync(join(out, e, 'part', 'scores.csv')));
  const r = await runAndSignal(args(out, ['--heatmaps', 'all', '--r-list', '3', '--no-cache']), staged, 'SIGKILL', () => true);
  assert.equal(r.signal, 'SIGKILL', `the run ended before the kill (exit ${r.code}):\n${r.stderr}`);
  assert.deepEqual(snapshot(out), before1, 'the previous results changed');
  const again = musc(args(out, ['--heatmaps', 'all', '--r-list', '3']));
  assert.equal(again.code, 0, again.stderr);
  const after1 = snapshot(out);
  assert.notEqual(after1['part/scores.csv'], before1['part/scores.csv']);
  assert.ok(after1['report.html'] && after1['part/run.json'] && after1['summary.json']);
  assert.match(readFileSync(join(out, 'part', 'run.json'), 'utf8'), /"r_list": \[\s*3\s*\]/);
  assert.deepEqual(
    readdirSync(out).filter((e) => e.startsWith('.musc-')),
    [],
  );
});

test('lock: a second run into a locked folder exits with a clear error; stale locks (dead pid, reused pid) are taken over', async () => {
  const out = join(dir, 'locked');
  mkdirSync(out);
  const release = await acquireOutputLock(out);
  try {
    const r = musc(args(out));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`output folder .*locked is in use by another musc process \\(pid ${process.pid}`));
    noStack(r.stderr);
    assert.ok(!existsSync(join(out, 'part')));
  } finally {
    await release();
  }
  assert.ok(!existsSync(join(out, LOCK_FILE)));
  // a dead process's lock
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  writeFileSync(
    join(out, LOCK_FILE),
    JSON.stringify({ pid: Number(dead.stdout), start: null, host: hostname(), command: 'musc run', since: '' }),
  );
  const rel2 = await acquireOutputLock(out);
  await rel2();
  // a live pid whose start time differs: the pid was reused by another process
  const start = processStartTime(process.ppid);
  if (start !== null) {
    writeFileSync(
      join(out, LOCK_FILE),
      JSON.stringify({ pid: process.ppid, start: `${start}1`, host: hostname(), command: 'musc run', since: '' }),
    );
    const rel3 = await acquireOutputLock(out);
    await rel3();
  }
});

test('output folder checked before any work: empty, a file, /dev/null, /proc, inside --data, unwritable', async (t) => {
  const file = join(dir, 'afile');
  writeFileSync(file, 'x');
  const cases: [string, RegExp][] = [
    ['', /--out is empty/],
    [file, /exists and is not a folder \(a file\)/],
    ['/dev/null', /under \/dev, a system folder/],
    ['/proc/musc-out', /under \/proc, a system folder/],
    [join(data, 'results'), /is inside --data .*: a second run would score its own heatmaps/],
    [data, /is the data folder itself/],
  ];
  for (const [out, re] of cases) {
    const t0 = Date.now();
    const r = musc(args(out), {}, 30_000);
    assert.equal(r.code, 2, `--out '${out}': exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, re);
    noStack(r.stderr);
    assert.ok(Date.now() - t0 < 20_000, `--out '${out}' took ${Date.now() - t0} ms`);
  }
  assert.ok(!existsSync(join(data, 'results')));
  // the same checks for the other commands that write: musc tokens --out FILE, musc ablate --out DIR
  for (const [cmd, re] of [
    [['tokens', '--data', data, '--out', dir, '--category', 'part'], /--out .* exists and is not a file \(a folder\)/],
    [['ablate', '--data', data, '--category', 'part', '--study', 'r', '--out', file], /--out .*afile exists and is not a folder/],
  ] as const) {
    const r = musc([...cmd], {}, 30_000);
    assert.equal(r.code, 2, `${cmd.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, re);
  }
  assert.equal(
    await prepareOutputFolder(join(data, '.musc-out'), data),
    join(data, '.musc-out'),
    'a hidden folder inside the data is not listed: allowed',
  );
  await assert.rejects(
    prepareOutputFolder(join(file, 'sub')),
    (e: unknown) =>
      e instanceof ConfigError && /cannot create the output folder .*afile\/sub: a part of the path is a file/.test(e.message),
  );
  if (process.getuid?.() === 0) {
    t.diagnostic('unwritable --out not tested: running as root, which ignores folder permissions');
  } else {
    const ro = join(dir, 'readonly');
    mkdirSync(ro);
    chmodSync(ro, 0o555);
    const r = musc(args(join(ro, 'out')));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /cannot create the output folder .*readonly\/out: permission denied/);
    chmodSync(ro, 0o755);
  }
});

const enospcTitle =
  'ENOSPC on a small tmpfs: the error names the file and the byte count; nothing half-written; a read-only folder is refused';
test(enospcTitle, async (t) => {
  const mnt = join(dir, 'tmpfs');
  mkdirSync(mnt);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { encoding: 'utf8' });
  if (m.status !== 0) {
    t.skip(`cannot mount a tmpfs here (${(m.stderr || m.error?.message || 'mount failed').trim()})`);
    return;
  }
  try {
    const target = join(mnt, 'sub', 'maps.safetensors');
    await assert.rejects(writeFileAtomic(target, new Uint8Array(1 << 20)), (e: unknown) => {
      assert.ok(e instanceof OutputWriteError, String(e));
      assert.equal(e.code, 'ENOSPC');
      assert.match(e.message, new RegExp(`cannot write ${target} \\(1048576 bytes\\): no space left on the device`));
      return true;
    });
    assert.deepEqual(walkFiles(mnt), []);
    const r = musc(args(join(mnt, 'out'), ['--heatmaps', 'all', '--no-cache']));
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cannot write .*out\/\.musc-staging-[^ ]+ \(\d+ bytes\): no space left on the device/);
    assert.deepEqual(
      walkFiles(join(mnt, 'out')).filter((f) => !f.startsWith('.musc-lock')),
      [],
      'a failed run leaves no partial outputs',
    );
  } finally {
    spawnSync('umount', [mnt]);
  }
  // an unwritable output folder (a read-only mount: also for root), refused before any work
  const ro = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,ro', 'tmpfs', mnt], { encoding: 'utf8' });
  if (ro.status !== 0) return t.diagnostic(`read-only mount not possible: ${ro.stderr.trim()}`);
  try {
    const r = musc(args(join(mnt, 'out')));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /cannot create the output folder .*tmpfs\/out: read-only file system/);
    noStack(r.stderr);
  } finally {
    spawnSync('umount', [mnt]);
  }
});

test('exit 3 (one category cannot be scored) still writes report.html for the categories that ran', () => {
  const out = join(dir, 'partial');
  const r = musc(['run', '--data', data, '--out', out, '--image-size', '64', '--r-list', '1', '--quiet']);
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, /1 of 2 categories could not be scored \(tiny\)/);
  assert.ok(existsSync(join(out, 'part', 'scores.csv')));
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /part/);
});

test('musc report killed while writing: the previous report and every image it shows stay in place', async () => {
  const out = join(dir, 'report');
  const first = musc(args(out, ['--heatmaps', 'none']));
  assert.equal(first.code, 0, first.stderr);
  const before1 = snapshot(out);
  const staged = (): boolean => readdirSync(out).some((e) => e.startsWith('.musc-staging-') && walkFiles(join(out, e)).length > 3);
  const r = await runAndSignal(['report', out, '--thumb-size', '1024'], staged, 'SIGKILL', () => true);
  if (r.signal === 'SIGKILL') assert.deepEqual(snapshot(out), before1, 'the previous report changed');
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.ok(existsSync(join(out, 'part', 'report')), 'report images present');
  assert.ok(html.length > 0);
  const again = musc(['report', out, '--quiet']);
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(
    readdirSync(out).filter((e) => e.startsWith('.musc-staging-')),
    [],
  );
});
