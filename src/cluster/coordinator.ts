/**
 * The coordinator side of a cluster run (`musc run --redis`): puts jobs on the queue, waits until
 * every job's result is in the store, and shows aggregated progress.
 *
 * - Done = the job's content key exists in the store (not a Redis state), so results survive Redis.
 * - A resumed run (the same command again) submits only the jobs whose results are missing.
 * - Fairness: a job's priority is its position in its run, so the queues of several runs
 *   (categories, products, coordinators) interleave instead of running one after the other.
 * - Redis unreachable for `redisTimeoutMs` ends the run with a ClusterError; jobs that vanish
 *   from Redis (a restarted Redis without persistence) are submitted again.
 * - `musc cancel RUN` sets the run's cancel key: the coordinator stops with a ClusterError.
 */
import { type Job, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { checkInterrupted } from '../pipeline/interrupt.js';
import { CancelledRunError, ClusterError, clientReady, openRedis, redisOptions } from './connection.js';
import { type ClusterJob, jobId, QUEUE_NAME } from './jobs.js';
import type { SharedStore } from './store.js';

export const RUNS_KEY = 'musc:runs';
export const cancelKey = (run: string): string => `musc:cancel:${run}`;
const MAX_PRIORITY = 2_097_152;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface CoordinatorOptions {
  redis: string;
  store: SharedStore;
  run: string;
  /** what the run is, for `musc status` */
  label: string;
  /** ms without Redis before the run fails (default 15000) */
  redisTimeoutMs?: number;
  /** job attempts before a job (and the run) fails (default 3) */
  attempts?: number;
  log?: (line: string) => void;
}

export interface RunInfo {
  label: string;
  state: 'running' | 'done' | 'failed' | 'cancelled';
  started: string;
  updated: string;
  done: number;
  total: number;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms))),
  ]).finally(() => clearTimeout(t));
}

/** Closes a queue; when Redis is gone (close would wait for it), drops the connection instead. */
export async function closeQueue(q: Queue): Promise<void> {
  try {
    await withTimeout(q.close(), 2000, 'closing the queue');
  } catch {
    await withTimeout(q.disconnect(), 1000, 'disconnecting').catch(() => undefined);
  }
}

export class Coordinator {
  private lastOk = Date.now();
  private info: RunInfo;

  private constructor(
    readonly o: CoordinatorOptions,
    readonly queue: Queue,
    readonly client: Redis,
  ) {
    const now = new Date().toISOString();
    this.info = { label: o.label, state: 'running', started: now, updated: now, done: 0, total: 0 };
  }

  /** Connects (a clear error when Redis cannot be reached) and clears an old cancel of this run. */
  static async open(o: CoordinatorOptions): Promise<Coordinator> {
    const queue = new Queue(QUEUE_NAME, { connection: redisOptions(o.redis, { blocking: false }) });
    queue.on('error', () => undefined); // reported through the failing calls
    const c = new Coordinator(o, queue, openRedis(o.redis));
    try {
      await clientReady(c.client, o.redis);
      await withTimeout(queue.waitUntilReady(), 5000, 'connecting');
      await withTimeout(c.client.del(cancelKey(o.run)), 5000, 'connecting');
    } catch (e) {
      await c.close();
      if (e instanceof ClusterError) throw e;
      throw new ClusterError(`cannot reach Redis at ${o.redis}: ${(e as Error).message}`);
    }
    await c.report({});
    return c;
  }

  get timeoutMs(): number {
    return this.o.redisTimeoutMs ?? 15_000;
  }

  /** One Redis call; failures count against the timeout, then end the run with a clear error. */
  private async redis<T>(what: string, f: () => Promise<T>): Promise<T | undefined> {
    try {
      const v = await withTimeout(f(), Math.min(5000, this.timeoutMs), what);
      this.lastOk = Date.now();
      return v;
    } catch (e) {
      if (Date.now() - this.lastOk > this.timeoutMs) {
        throw new ClusterError(
          `lost the connection to Redis at ${this.o.redis} (${(e as Error).message}); ` +
            `finished work is kept in the store ${this.o.store.location}: run the same command again to resume`,
        );
      }
      return undefined;
    }
  }

  private async report(p: Partial<RunInfo>): Promise<void> {
    this.info = { ...this.info, ...p, updated: new Date().toISOString() };
    await this.redis('run info', () => this.client.hset(RUNS_KEY, this.o.run, JSON.stringify(this.info)));
  }

  /** Runs the jobs (those not done yet) on the workers and waits for all of them. */
  async runJobs(jobs: ClusterJob[], what: string): Promise<void> {
    const store = this.o.store;
    const remaining = new Map<string, ClusterJob>();
    for (const j of jobs) if (!(await store.has(j.data.done))) remaining.set(jobId(j), j);
    const total = jobs.length;
    if (remaining.size < total) this.o.log?.(`${what}: ${total - remaining.size} of ${total} jobs done already (store ${store.location})`);
    if (remaining.size === 0) return;
    await this.clearFailed(remaining);
    await this.submit([...remaining.entries()]);
    let lastLog = 0,
      lastSync = Date.now(),
      lastFailed = 0;
    for (;;) {
      checkInterrupted();
      for (const [id, j] of remaining) if (await store.has(j.data.done)) remaining.delete(id);
      const done = total - remaining.size;
      if (remaining.size === 0) break;
      if (await this.redis('cancel check', () => this.client.get(cancelKey(this.o.run)))) {
        await this.report({ state: 'cancelled' });
        throw new CancelledRunError(`run ${this.o.run} was cancelled (musc cancel); finished work is kept in the store ${store.location}`);
      }
      const now = Date.now();
      if (now - lastFailed > 1000) {
        lastFailed = now;
        await this.checkFailed(remaining);
      }
      if (now - lastSync > 5000) {
        lastSync = now;
        await this.resubmitLost(remaining);
      }
      if (now - lastLog > 2000) {
        lastLog = now;
        const counts = await this.redis('counts', () => this.queue.getJobCounts('active', 'waiting', 'prioritized'));
        const queued = counts ? (counts.waiting ?? 0) + (counts.prioritized ?? 0) : '?';
        this.o.log?.(`${what}: ${done}/${total} jobs done (queue: ${counts?.active ?? '?'} running, ${queued} waiting)`);
        await this.report({ done, total });
      }
      await sleep(100);
    }
    this.o.log?.(`${what}: ${total}/${total} jobs done`);
    await this.report({ done: total, total });
  }

  private async submit(entries: [string, ClusterJob][]): Promise<void> {
    for (let k = 0; k < entries.length; k += 500) {
      const part = entries.slice(k, k + 500).map(([id, j], i) => ({
        name: j.name,
        data: j.data,
        opts: {
          jobId: id,
          priority: Math.min(MAX_PRIORITY, k + i + 1),
          attempts: this.o.attempts ?? 3,
          backoff: { type: 'fixed', delay: 500 },
          removeOnComplete: true,
          removeOnFail: false,
        },
      }));
      const ok = await this.redis('submitting jobs', () => this.queue.addBulk(part));
      if (!ok) throw new ClusterError(`could not submit jobs to Redis at ${this.o.redis}`);
    }
  }

  /** failed jobs of an earlier attempt of this run are removed, so that they run again */
  private async clearFailed(remaining: Map<string, ClusterJob>): Promise<void> {
    const failed = (await this.redis('failed jobs', () => this.queue.getJobs(['failed']))) ?? [];
    for (const j of failed) if (j?.id && remaining.has(j.id)) await this.redis('removing a failed job', () => j.remove());
  }

  private async checkFailed(remaining: Map<string, ClusterJob>): Promise<void> {
    const failed = (await this.redis('failed jobs', () => this.queue.getJobs(['failed']))) ?? [];
    const mine = failed.find((j: Job | undefined) => j?.id && remaining.has(j.id));
    if (mine) {
      await this.report({ state: 'failed' });
      throw new ClusterError(`job ${mine.id} failed after ${mine.attemptsMade} attempts: ${mine.failedReason}`);
    }
  }

  /** jobs Redis no longer knows (it restarted without persistence) are submitted again */
  private async resubmitLost(remaining: Map<string, ClusterJob>): Promise<void> {
    const known = await this.redis('job list', () =>
      this.queue.getJobs(['waiting', 'prioritized', 'delayed', 'active', 'failed', 'completed']),
    );
    if (!known) return;
    const ids = new Set(known.map((j) => j?.id));
    const lost: [string, ClusterJob][] = [];
    for (const [id, j] of remaining) if (!ids.has(id) && !(await this.o.store.has(j.data.done))) lost.push([id, j]);
    if (lost.length > 0) {
      this.o.log?.(`${lost.length} jobs were lost by Redis: submitted again`);
      await this.submit(lost);
    }
  }

  async finish(state: RunInfo['state']): Promise<void> {
    await this.report({ state }).catch(() => undefined);
  }

  async close(): Promise<void> {
    await closeQueue(this.queue);
    this.client.disconnect();
  }
}
