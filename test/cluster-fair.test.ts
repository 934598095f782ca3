/**
 * Fair sharing between runs queued at once (issue 15): a real redis-server on a free loopback
 * port and one real `musc worker` (one slot, each job slowed by JOB_DELAY_ENV so that the order
 * is observable). Run A queues 15 block jobs; once one of them is done, run B queues 4. A job's
 * priority is its position within its run, so B's jobs go before A's later ones: B finishes
 * while most of A is still queued. (First come, first served would finish all of A first.)
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { putBank } from '../src/cluster/bank.js';
import { Coordinator } from '../src/cluster/coordinator.js';
import { type ClusterJob, JOB_DELAY_ENV } from '../src/cluster/jobs.js';
import { DirStore } from '../src/cluster/store.js';
import { lnamdTarget } from '../src/core/lnamd.js';
import { allPairs, tableBlocks } from '../src/core/msm.js';
import { mulberry32 } from '../src/demo/synthetic.js';
import { tempDir } from './helpers/cli-env.js';
import { blockJobData, freePort, HAVE_REDIS, type Proc, startRedis, startWorker, stop } from './helpers/cluster-env.js';

const skip = !HAVE_REDIS && 'redis-server is not installed (.ci/run installs it)';
let dir = '',
  redisUrl = '';
let cleanup: () => Promise<void> = async () => {};
let redis: ChildProcess | undefined;
let worker: Proc | undefined;

before(async () => {
  if (!HAVE_REDIS) return;
  ({ dir, cleanup } = await tempDir('cluster-fair'));
  const port = await freePort();
  redisUrl = `redis://127.0.0.1:${port}`;
  redis = await startRedis(port);
});

after(async () => {
  await stop(worker?.child);
  await stop(redis);
  await cleanup();
});

/** The block jobs (one image against one image) of a small random bank of n images. */
async function blockJobs(store: DirStore, run: string, n: number, seed: number): Promise<ClusterJob[]> {
  const rnd = mulberry32(seed);
  const stage = { n, h: 2, w: 2, c: 4, data: Float32Array.from({ length: n * 16 }, () => rnd()) };
  const bank = await putBank(store, stage);
  const target = lnamdTarget([stage]);
  return tableBlocks(n, 4, allPairs(n), { blockImages: 1, colImages: 1 }).map((block) => {
    return { name: 'block', data: blockJobData(run, bank, target, 1, block, 'fast') };
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** p, or a failure after ms (the timer is cleared: the test ends when p does) */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what} did not finish within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

test('two runs queued at once share one worker: the later run progresses before the earlier one completes', { skip }, async (t) => {
  const store = new DirStore(join(dir, 'store'));
  const jobsA = await blockJobs(store, 'runA', 6, 1); // 15 jobs
  const jobsB = await blockJobs(store, 'runB', 3, 2); // 3 jobs
  jobsB.push(...(await blockJobs(store, 'runB', 2, 3))); // + 1
  assert.equal(jobsA.length, 15);
  assert.equal(jobsB.length, 4);
  const doneCount = async (jobs: ClusterJob[]): Promise<number> => {
    let k = 0;
    for (const j of jobs) if (await store.has(j.data.done)) k++;
    return k;
  };
  worker = startWorker(redisUrl, join(dir, 'store'), { [JOB_DELAY_ENV]: '300' });
  const a = await Coordinator.open({ redis: redisUrl, store, run: 'runA', label: 'run A' });
  const b = await Coordinator.open({ redis: redisUrl, store, run: 'runB', label: 'run B' });
  try {
    let aEnded = false;
    const pa = a.runJobs(jobsA, 'run A').finally(() => (aEnded = true));
    const t0 = Date.now();
    while ((await doneCount(jobsA)) < 1) {
      assert.ok(Date.now() - t0 < 60_000 && !aEnded, 'run A did not start within 60 s');
      await sleep(20);
    }
    const aAtSubmit = await doneCount(jobsA);
    const t1 = Date.now();
    await within(b.runJobs(jobsB, 'run B'), 60_000, 'run B');
    const aAtB = await doneCount(jobsA);
    t.diagnostic(`A's first job after ${t1 - t0} ms; B done after ${Date.now() - t1} ms with A at ${aAtSubmit} -> ${aAtB}`);
    // while B's 4 jobs ran, A ran the job it held at B's submission, its jobs at positions tied
    // with B's (A first at equal priority: at most 2), and perhaps one that ended while B was being
    // submitted: at most 4. First come, first served would run all of A (14) first.
    assert.ok(!aEnded && aAtB < jobsA.length, `run A completed (${aAtB}/${jobsA.length}) before run B`);
    assert.ok(aAtB - aAtSubmit <= 4, `run A ran ${aAtB - aAtSubmit} jobs while run B ran its 4 (submitted at A ${aAtSubmit}/15)`);
    await within(pa, 90_000, 'run A');
    assert.equal(await doneCount(jobsA), jobsA.length);
    t.diagnostic(`A done after ${Date.now() - t1} ms`);
  } finally {
    await a.close();
    await b.close();
  }
});
