/** `musc status` and `musc cancel`: what the queue holds, per run; cancelling a run. */
import { type Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { ClusterError, clientReady, openRedis, redisOptions } from './connection.js';
import { cancelKey, closeQueue, RUNS_KEY, type RunInfo } from './coordinator.js';
import { QUEUE_NAME } from './jobs.js';

export interface RunStatus {
  run: string;
  info: RunInfo | null;
  queued: number;
  active: number;
  failed: { id: string; name: string; attempts: number; error: string }[];
}

const QUEUED = ['waiting', 'prioritized', 'delayed'] as const;

async function withQueue<T>(redis: string, f: (q: Queue, client: Redis) => Promise<T>): Promise<T> {
  const q = new Queue(QUEUE_NAME, { connection: redisOptions(redis, { blocking: false }) });
  q.on('error', () => undefined);
  const client = openRedis(redis);
  try {
    await Promise.race([
      q.waitUntilReady(),
      new Promise((_, rej) => setTimeout(() => rej(new Error('no answer in 5000 ms')), 5000).unref()),
    ]);
    await clientReady(client, redis);
    return await f(q, client);
  } catch (e) {
    if (e instanceof ClusterError) throw e;
    throw new ClusterError(`Redis at ${redis}: ${(e as Error).message}`);
  } finally {
    await closeQueue(q);
    client.disconnect();
  }
}

const runOf = (j: Job | undefined): string => (j?.data as { run?: string } | undefined)?.run ?? '?';

/** Every run Redis knows (registered, or with jobs in the queue), with its queued/active/failed jobs. */
export function clusterStatus(redis: string): Promise<RunStatus[]> {
  return withQueue(redis, async (q, client) => {
    const runs = new Map<string, RunStatus>();
    const get = (run: string): RunStatus => {
      const r = runs.get(run) ?? { run, info: null, queued: 0, active: 0, failed: [] };
      runs.set(run, r);
      return r;
    };
    for (const [run, json] of Object.entries(await client.hgetall(RUNS_KEY))) get(run).info = JSON.parse(json as string) as RunInfo;
    for (const j of await q.getJobs([...QUEUED])) if (j) get(runOf(j)).queued++;
    for (const j of await q.getJobs(['active'])) if (j) get(runOf(j)).active++;
    for (const j of await q.getJobs(['failed'])) {
      if (j) get(runOf(j)).failed.push({ id: j.id ?? '?', name: j.name, attempts: j.attemptsMade, error: j.failedReason });
    }
    return [...runs.values()].sort((a, b) => (a.info?.started ?? '').localeCompare(b.info?.started ?? ''));
  });
}

/** Cancels a run: its coordinator stops, its queued jobs are removed (running ones finish). */
export function cancelRun(redis: string, run: string): Promise<number> {
  return withQueue(redis, async (q, client) => {
    const known = (await client.hexists(RUNS_KEY, run)) === 1;
    const jobs = (await q.getJobs([...QUEUED])).filter((j) => j && runOf(j) === run);
    if (!known && jobs.length === 0) throw new ClusterError(`no run '${run}' in Redis at ${redis} (see musc status)`);
    await client.set(cancelKey(run), '1', 'EX', 86_400);
    let removed = 0;
    for (const j of jobs) {
      try {
        await j.remove();
        removed++;
      } catch {
        // taken by a worker meanwhile
      }
    }
    return removed;
  });
}

/** The status as text lines. */
export function formatStatus(runs: RunStatus[]): string {
  if (runs.length === 0) return 'no runs\n';
  const lines: string[] = [];
  for (const r of runs) {
    const i = r.info;
    lines.push(
      `run ${r.run}${i ? ` (${i.state}, ${i.done}/${i.total} jobs of the current step done, started ${i.started}): ${i.label}` : ''}`,
    );
    lines.push(`  queued ${r.queued}, active ${r.active}, failed ${r.failed.length}`);
    for (const f of r.failed) lines.push(`  failed ${f.name} job ${f.id} after ${f.attempts} attempts: ${f.error}`);
  }
  return lines.join('\n') + '\n';
}
