/**
 * The cluster (issue 15): a real redis-server on a free loopback port (no persistence) and three
 * real `musc worker` processes. The cluster run's scores.csv, metrics.json and maps are byte-
 * identical to the one-process run: with one worker SIGKILLed mid-run, with another block split,
 * and after Redis stopped mid-run (the run fails with a clear error; the same command resumes).
 * Status lists runs and failed jobs with their error; a run can be cancelled; a job delivered
 * twice writes the same bytes. The runs have the repeated-anomaly filter (its links jobs). Redis
 * and the workers are stopped by pid in `after`.
 */

import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { putBank } from '../src/cluster/bank.js';
import { runBlockJob } from '../src/cluster/block.js';
import { Coordinator } from '../src/cluster/coordinator.js';
import { JOB_DELAY_ENV } from '../src/cluster/jobs.js';
import { clusterStatus } from '../src/cluster/status.js';
import { DirStore } from '../src/cluster/store.js';
import { lnamdTarget } from '../src/core/lnamd.js';
import { generateSynthetic } from '../src/demo/synthetic.js';
import { cliMain, tempDir } from './helpers/cli-env.js';
import {
  blockJobData,
  freePort,
  HAVE_REDIS,
  type Proc,
  startMusc,
  startRedis,
  startWorker,
  stop,
  storeCount,
  waitFor,
} from './helpers/cluster-env.js';

const skip = !HAVE_REDIS && 'redis-server is not installed (.ci/run installs it)';
let dir = '',
  data = '',
  store = '',
  redisUrl = '',
  port = 0;
let cleanup: () => Promise<void> = async () => {};
let redis: ChildProcess | undefined;
const workers: Proc[] = [];
const running: Proc[] = [];

// interval 0,0.5: with 14 images the repeated-anomaly filter runs (K = 6 nearest), so its links jobs are part of every run
const SETTINGS = [
  '--image-size',
  '64',
  '--r-list',
  '1,3',
  '--interval',
  '0,0.5',
  '--batch-size',
  '1',
  '--heatmaps',
  'none',
  '--no-report',
  '--quiet',
];
const FILES = ['surface/scores.csv', 'surface/metrics.json', 'surface/maps.safetensors', 'summary.json'];
const clusterArgs = (out: string, split: [number, number], extra: string[] = []) => [
  'run',
  '--data',
  data,
  '--out',
  join(dir, out),
  ...SETTINGS,
  '--redis',
  redisUrl,
  '--store',
  store,
  '--block-images',
  String(split[0]),
  '--col-images',
  String(split[1]),
  ...extra,
];
function run(args: string[]): Proc {
  const p = startMusc(args);
  running.push(p);
  return p;
}
function sameAsOneProcess(out: string, one = 'one'): void {
  for (const f of FILES)
    assert.deepEqual(readFileSync(join(dir, out, f)), readFileSync(join(dir, one, f)), `${out}/${f} differs from the one-process run`);
}

before(async () => {
  if (!HAVE_REDIS) return;
  ({ dir, cleanup } = await tempDir('cluster'));
  data = (await generateSynthetic(join(dir, 'data'), { good: 10, defective: 4, size: 96 })).root;
  store = join(dir, 'store');
  port = await freePort();
  redisUrl = `redis://127.0.0.1:${port}`;
  redis = await startRedis(port);
});

after(async () => {
  for (const p of [...running, ...workers]) await stop(p.child);
  await stop(redis);
  await cleanup();
});

/** The one-process run of the same data and settings (plus `extra`) into dir/`out`; it must succeed. */
function oneProcess(out: string, extra: string[] = []): void {
  const one = spawnSync(process.execPath, [cliMain, 'run', '--data', data, '--out', join(dir, out), ...SETTINGS, ...extra, '--no-cache'], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(one.status, 0, one.stderr);
}

/** A worker to run the next cluster run's jobs, started when none is alive (an earlier test may have stopped them). */
function workerAlive(): void {
  if (!workers.some((w) => w.child.exitCode === null)) workers.push(startWorker(redisUrl, store));
}

test('cluster run = one-process run, byte for byte: a worker SIGKILLed mid-run, another block split', { skip }, async (t) => {
  oneProcess('one');

  // one worker (each of its jobs waits 3 s first: fault injection) takes the run's first job and
  // is SIGKILLed mid-job; Redis still holds that job as active
  const a = run(clusterArgs('a', [2, 3]));
  workers.push(startWorker(redisUrl, store, { [JOB_DELAY_ENV]: '3000' }));
  let active = 0;
  const mid = await waitFor(
    () => active > 0,
    a,
    120_000,
    async () => {
      active = (await clusterStatus(redisUrl).catch(() => [])).reduce((n, r) => n + r.active, 0);
    },
  );
  if (!mid) assert.fail(`the run ended before a job was taken:\n${(await a.done).stderr}`);
  await stop(workers[0]!.child);
  const atKill = storeCount(store, 'features');
  const held = await clusterStatus(redisUrl);
  t.diagnostic(`killed with ${atKill} of 14 images' features stored: ${JSON.stringify(held)}`);
  assert.equal(
    held.reduce((n, r) => n + r.active, 0),
    1,
    'no job held by the killed worker',
  );
  // two more workers: after the dead worker's lock expires, its job is taken back and run again
  for (let i = 0; i < 2; i++) workers.push(startWorker(redisUrl, store));
  const ra = await a.done;
  assert.equal(ra.code, 0, ra.stderr);
  assert.ok(atKill < 14, 'the kill came after the extraction');
  sameAsOneProcess('a');
  assert.ok(storeCount(store, 'links') > 0, 'no links job of the repeated-anomaly filter ran');

  // another split: other blocks, the same tables
  const rb = await run(clusterArgs('b', [5, 7])).done;
  assert.equal(rb.code, 0, rb.stderr);
  sameAsOneProcess('b');
});

test('--msm-precision int8 on the cluster (scale jobs, then block jobs) = the one-process int8 run, byte for byte', { skip }, async () => {
  const int8 = ['--msm-precision', 'int8'];
  oneProcess('one8', int8);
  assert.notDeepEqual(readFileSync(join(dir, 'one8', FILES[0]!)), readFileSync(join(dir, 'one', FILES[0]!)), 'int8 = fast scores');
  workerAlive();
  const r = await run(clusterArgs('e', [3, 5], int8).filter((a) => a !== '--quiet')).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /int8 scale of 14 images: 10 jobs/); // 2 stages x ceil(14 / 3) chunks
  sameAsOneProcess('e', 'one8');
});

test('--stage-r-list on the cluster (block jobs of each stage own r list) = the one-process run, byte for byte', { skip }, async () => {
  const per = ['--stage-r-list', '3/1,3'];
  oneProcess('one-sr', per);
  assert.notDeepEqual(readFileSync(join(dir, 'one-sr', FILES[0]!)), readFileSync(join(dir, 'one', FILES[0]!)), 'per-stage lists = r 1,3');
  workerAlive();
  const r = await run(clusterArgs('sr', [3, 5], per).filter((a) => a !== '--quiet')).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /x 3 \(stage, r\) passes/); // stage 0 at r = 3, stage 1 at r = 1, 3
  sameAsOneProcess('sr', 'one-sr');
});

test('--density-exponent on the cluster (indexed block jobs, density jobs, merge jobs) = the one-process run, byte for byte', {
  skip,
}, async () => {
  const dens = ['--density-exponent', '0.5'];
  oneProcess('one-d', dens);
  assert.notDeepEqual(readFileSync(join(dir, 'one-d', FILES[0]!)), readFileSync(join(dir, 'one', FILES[0]!)), 'density = MSM scores');
  workerAlive();
  const r = await run(clusterArgs('d5', [3, 5], dens).filter((a) => a !== '--quiet')).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /reference densities: 20 jobs/); // 2 stages x r 1,3 x ceil(14 / 3) row blocks
  sameAsOneProcess('d5', 'one-d');
  // --density-scope image (14 images: no filter, so one more variant): the maps are MSM's, the image scores normalised
  const scoped = [...dens, '--density-scope', 'image'];
  oneProcess('one-di', scoped);
  const maps = 'surface/maps.safetensors';
  assert.deepEqual(readFileSync(join(dir, 'one-di', maps)), readFileSync(join(dir, 'one', maps)), "scope image: the maps are MSM's");
  assert.notDeepEqual(
    readFileSync(join(dir, 'one-di', FILES[0]!)),
    readFileSync(join(dir, 'one', FILES[0]!)),
    'scope image: the image scores normalised',
  );
  workerAlive();
  const ri = await run(clusterArgs('di', [3, 5], scoped)).done;
  assert.equal(ri.code, 0, ri.stderr);
  sameAsOneProcess('di', 'one-di');
});

/** Two CSV files with the same cells, numbers within `tol`: the count of numbers that differ at all. */
function sameCsv(a: string, b: string, tol: number): number {
  const rows = (f: string) =>
    readFileSync(f, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(','));
  const ra = rows(a),
    rb = rows(b);
  assert.equal(ra.length, rb.length);
  let differ = 0;
  ra.forEach((row, i) =>
    row.forEach((cell, j) => {
      const other = rb[i]![j]!;
      const x = Number(cell),
        y = Number(other);
      if (cell === '' || Number.isNaN(x)) return assert.equal(cell, other, `${a}: row ${i} column ${j}`);
      assert.ok(Math.abs(x - y) <= tol, `${a}: row ${i} column ${j}: ${cell} vs ${other}`);
      if (x !== y) differ++;
    }),
  );
  return differ;
}

test('--project on the cluster (basis jobs, then block jobs) = the one-process --project run, scores within 1e-5', { skip }, async () => {
  const project = ['--project', '48'];
  oneProcess('one-p', project);
  assert.notDeepEqual(readFileSync(join(dir, 'one-p', FILES[0]!)), readFileSync(join(dir, 'one', FILES[0]!)), '--project = all channels');
  workerAlive();
  const r = await run(clusterArgs('p', [3, 5], project).filter((a) => a !== '--quiet')).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /projection bases \(K = 48\) of 14 images: 4 jobs/); // 2 stages x r 1,3
  const differ = sameCsv(join(dir, 'p', FILES[0]!), join(dir, 'one-p', FILES[0]!), 1e-5);
  console.log(`--project on the cluster: ${differ} numbers of scores.csv differ from the one-process run (all within 1e-5)`);
  const settings = (f: string) =>
    (JSON.parse(readFileSync(join(dir, f, 'surface/run.json'), 'utf8')) as { settings: { project?: number } }).settings;
  assert.equal(settings('p').project, 48);
  assert.equal(settings('one-p').project, 48);
});

test('Redis stopping mid-run ends the run with a clear error; the same command resumes from the store', { skip }, async () => {
  const args = clusterArgs('c', [3, 4], ['--redis-timeout', '2']);
  const before = storeCount(store, 'block');
  const c = run(args);
  assert.ok(await waitFor(() => storeCount(store, 'block') >= before + 2, c), 'the run ended before Redis was stopped');
  await stop(redis);
  const rc = await c.done;
  assert.equal(rc.code, 1, rc.stderr);
  assert.match(rc.stderr, /musc: error: lost the connection to Redis at redis:\/\/127\.0\.0\.1:\d+ .*run the same command again to resume/);
  assert.doesNotMatch(rc.stderr, /\n\s+at .+:\d+:\d+/);

  redis = await startRedis(port); // empty: no persistence
  const again = await run(args.filter((a) => a !== '--quiet')).done;
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /scoring 14 images: .*: [1-9]\d* of \d+ jobs done already/);
  // the merge held one query block's rows (3 images), not the whole table (14 images)
  const merge = /merge: \d+ jobs, row blocks of 3 images, at most (\d+) table rows held by each .*the whole table: (\d+) rows/.exec(
    again.stderr,
  );
  assert.ok(merge, again.stderr);
  assert.equal(Number(merge[1]) * 14, Number(merge[2]) * 3);
  sameAsOneProcess('c');
});

test('status lists runs and failed jobs with their error; a run can be cancelled', { skip }, async () => {
  // a job that cannot succeed (its bank is not in the store): it fails on every attempt
  const dstore = new DirStore(store);
  const target = { gridH: 2, gridW: 2, channels: 4 };
  const bank = { key: `bank/${'0'.repeat(64)}`, n: 4, h: 2, w: 2, c: 4, dtype: 'float32' as const };
  const block = { i0: 0, i1: 1, j0: 1, j1: 4 };
  const bad = blockJobData('badrun', bank, target, 1, block, 'fast');
  const co = await Coordinator.open({ redis: redisUrl, store: dstore, run: 'badrun', label: 'a failing job' });
  try {
    await assert.rejects(co.runJobs([{ name: 'block', data: bad }], 'bad'), /job block-\S+ failed after 3 attempts: .*no such file|ENOENT/);
  } finally {
    await co.close();
  }
  const st = await clusterStatus(redisUrl);
  const badRun = st.find((r) => r.run === 'badrun');
  assert.equal(badRun?.failed.length, 1);
  assert.match(badRun!.failed[0]!.error, /ENOENT/);
  const text = spawnSync(process.execPath, [cliMain, 'status', '--redis', redisUrl], { encoding: 'utf8' });
  assert.equal(text.status, 0, text.stderr);
  assert.match(
    text.stdout,
    /run badrun \(failed.*\n\s+queued 0, active 0, failed 1\n\s+failed block job block-\S+ after 3 attempts: .*ENOENT/,
  );

  // cancel a running run
  const d = run(clusterArgs('d', [1, 2]).filter((a) => a !== '--quiet'));
  const runIdOf = (): string => /cluster run ([0-9a-f]{12})/.exec(d.output())?.[1] ?? '';
  assert.ok(await waitFor(() => runIdOf() !== '' && /scoring 14 images/.test(d.output()), d));
  const id = runIdOf();
  const cancel = spawnSync(process.execPath, [cliMain, 'cancel', id, '--redis', redisUrl], { encoding: 'utf8' });
  assert.equal(cancel.status, 0, cancel.stderr);
  assert.match(cancel.stdout, new RegExp(`run ${id} cancelled: \\d+ queued jobs? removed`));
  const rd = await d.done;
  assert.equal(rd.code, 1, rd.stderr);
  assert.match(rd.stderr, new RegExp(`musc: error: run ${id} was cancelled`));
  const after = (await clusterStatus(redisUrl)).find((r) => r.run === id);
  assert.equal(after?.info?.state, 'cancelled');
  assert.equal(after?.queued, 0);
});

test('a block job delivered twice writes the same bytes under the same key', { skip }, async () => {
  const dstore = new DirStore(join(dir, 'dup-store'));
  const n = 5,
    h = 3,
    w = 3,
    c = 8;
  const feats = Float32Array.from({ length: n * h * w * c }, (_, i) => Math.sin(i * 0.37) + (i % 5) * 0.1);
  const stage = { n, h, w, c, data: feats };
  const bank = await putBank(dstore, stage);
  const target = lnamdTarget([stage]);
  const block = { i0: 0, i1: 2, j0: 1, j1: 5 };
  const job = blockJobData('dup', bank, target, 3, block, 'exact');
  await runBlockJob(dstore, job);
  const first = await dstore.get(job.done);
  await runBlockJob(dstore, job);
  assert.ok(first && first.length === 2 * 2 * 4 * 9 * 4);
  assert.deepEqual(await dstore.get(job.done), first);
});
