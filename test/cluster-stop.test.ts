/**
 * Stopping a `musc worker` (issue 15): SIGTERM ends it within STOP_GRACE_MS (plus a margin for
 * the process itself), Redis up or gone. A real redis-server on a free loopback port (one per
 * test: some tests kill it) and a real worker process. An idle worker exits at once; a running
 * job gets the grace to finish (then it is reported to Redis); a job still running after the
 * grace is given up and its job process ends with the worker. Everything is stopped by pid.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Queue } from 'bullmq';
import { redisOptions } from '../src/cluster/connection.js';
import { JOB_DELAY_ENV, QUEUE_NAME } from '../src/cluster/jobs.js';
import { contentKey } from '../src/cluster/store.js';
import { STOP_GRACE_MS } from '../src/cluster/worker.js';
import { tempDir } from './helpers/cli-env.js';
import { freePort, HAVE_REDIS, type Proc, startRedis, startWorker, stop, waitFor } from './helpers/cluster-env.js';

const skip = !HAVE_REDIS && 'redis-server is not installed (.ci/run installs it)';
/** the worker process's own start-up and exit, beyond the grace */
const MARGIN_MS = 3000;
let store = '';
let cleanup: () => Promise<void> = async () => {};
const procs: ChildProcess[] = [];
const queues: Queue[] = [];

before(async () => {
  if (!HAVE_REDIS) return;
  const t = await tempDir('cluster-stop');
  cleanup = t.cleanup;
  store = join(t.dir, 'store');
});

after(async () => {
  // (queues first, while their Redis still runs: a client left retrying would keep this file's process alive)
  for (const q of queues) await q.close();
  for (const p of procs) await stop(p);
  await cleanup();
});

interface Setup {
  redis: ChildProcess;
  queue: Queue;
  worker: Proc;
}

/** Redis, a queue client and one worker (one slot) that Redis lists as connected. */
async function setup(env: Record<string, string> = {}): Promise<Setup> {
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const redis = await startRedis(port);
  procs.push(redis);
  const queue = new Queue(QUEUE_NAME, { connection: redisOptions(url, { blocking: false }) });
  queue.on('error', () => undefined); // (Redis is killed under it)
  queues.push(queue);
  const worker = startWorker(url, store, env);
  procs.push(worker.child);
  let seen = 0;
  const ready = await waitFor(
    () => seen > 0,
    worker,
    30_000,
    async () => {
      seen = (await queue.getWorkers()).length;
    },
  );
  assert.ok(ready, `the worker did not connect:\n${worker.output()}`);
  return { redis, queue, worker };
}

/** A job the worker takes (its process sleeps `JOB_DELAY_ENV` ms, then fails: no such job kind); resolves with the job process's pid. */
async function runningJob(s: Setup): Promise<{ id: string; pid: number }> {
  const job = await s.queue.add('probe', { done: contentKey('probe', 'x') });
  let state = '';
  let pids: string[] = [];
  // (Redis holds the job as active a moment before the worker forks its job process)
  const started = await waitFor(
    () => state === 'active' && pids.length > 0,
    s.worker,
    30_000,
    async () => {
      state = await job.getState();
      pids = spawnSync('pgrep', ['-P', String(s.worker.child.pid)], { encoding: 'utf8' })
        .stdout.trim()
        .split(/\s+/)
        .filter(Boolean);
    },
  );
  assert.ok(started, `the job did not start (${state}, job processes '${pids.join(' ')}'):\n${s.worker.output()}`);
  assert.equal(pids.length, 1, `one job process under the worker, got '${pids.join(' ')}'`);
  return { id: job.id!, pid: Number(pids[0]) };
}

async function killRedis(s: Setup): Promise<void> {
  await s.queue.close();
  await stop(s.redis);
  // the worker has seen it (else SIGTERM would race its connections' own discovery)
  assert.ok(await waitFor(() => /worker: .*(ECONNREFUSED|Connection is closed)/.test(s.worker.output()), s.worker, 10_000));
}

/** SIGTERM; the exit code and the ms until the process ended. */
async function sigterm(w: Proc): Promise<{ code: number | null; ms: number; stderr: string }> {
  const t0 = Date.now();
  w.child.kill('SIGTERM');
  const r = await w.done;
  return { code: r.code, ms: Date.now() - t0, stderr: r.stderr };
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function ended(pid: number, ms: number): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; await new Promise((r) => setTimeout(r, 50))) if (!alive(pid)) return true;
  return !alive(pid);
}

test('SIGTERM ends an idle worker at once, Redis up or gone', { skip, timeout: 120_000 }, async (t) => {
  for (const gone of [false, true]) {
    const s = await setup();
    if (gone) await killRedis(s);
    const r = await sigterm(s.worker);
    t.diagnostic(`Redis ${gone ? 'gone' : 'up'}: exit ${r.code} after ${r.ms} ms`);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.ms < MARGIN_MS, `Redis ${gone ? 'gone' : 'up'}: an idle worker took ${r.ms} ms to stop:\n${r.stderr}`);
    if (gone) assert.match(r.stderr, /stopped \(Redis unreachable\)/);
    else await s.queue.close();
    await stop(s.redis);
  }
});

test('SIGTERM lets a running job finish (Redis up): the job is reported, then the worker exits 0', {
  skip,
  timeout: 120_000,
}, async (t) => {
  const s = await setup({ [JOB_DELAY_ENV]: '4000' });
  const job = await runningJob(s);
  const r = await sigterm(s.worker);
  t.diagnostic(`exit ${r.code} after ${r.ms} ms`);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.ms < STOP_GRACE_MS + MARGIN_MS, `took ${r.ms} ms`);
  assert.doesNotMatch(r.stderr, /unfinished/);
  const after = await s.queue.getJob(job.id);
  assert.equal(await after?.getState(), 'failed', 'the job ran to its end and was reported');
  assert.match(after!.failedReason, /unknown job 'probe'/);
  assert.ok(await ended(job.pid, 2000), 'the job process ended');
  await s.queue.close();
  await stop(s.redis);
});

test('SIGTERM with a job running past the grace: the worker exits 0 within the bound and its job process ends (Redis gone, Redis up)', {
  skip,
  timeout: 120_000,
}, async (t) => {
  for (const gone of [true, false]) {
    const s = await setup({ [JOB_DELAY_ENV]: '120000' });
    const job = await runningJob(s);
    if (gone) await killRedis(s);
    const r = await sigterm(s.worker);
    t.diagnostic(`Redis ${gone ? 'gone' : 'up'}: exit ${r.code} after ${r.ms} ms`);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.ms >= STOP_GRACE_MS - 500, `Redis ${gone ? 'gone' : 'up'}: the running job got only ${r.ms} ms`);
    assert.ok(r.ms < STOP_GRACE_MS + MARGIN_MS, `Redis ${gone ? 'gone' : 'up'}: the worker took ${r.ms} ms to stop:\n${r.stderr}`);
    assert.match(r.stderr, /stopped with 1 job\(s\) unfinished: they go back to the queue/);
    assert.ok(await ended(job.pid, 2000), `Redis ${gone ? 'gone' : 'up'}: the job process ${job.pid} outlived its worker`);
    if (!gone) {
      // BullMQ still holds it as active; its lock expires (--lock-duration 2000 in startWorker)
      assert.equal(await (await s.queue.getJob(job.id))?.getState(), 'active');
      await s.queue.close();
    }
    await stop(s.redis);
  }
});
