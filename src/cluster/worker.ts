/**
 * `musc worker`: takes jobs from the run queue and runs them, `concurrency` at a time, each in its
 * own child process (processor.ts). A killed worker loses nothing: its jobs' locks expire and
 * BullMQ's stalled-job check (any live worker) puts them back in the queue; the job writes its
 * content-addressed result again.
 *
 * Stopping (`ClusterWorker.stop`, SIGTERM/Ctrl-C of `musc worker`): no new jobs; running jobs get
 * STOP_GRACE_MS to finish, then the worker gives up on them. BullMQ's own close() cannot be the
 * bound: while Redis is unreachable it never resolves (its blocking connection, parked in
 * ioredis' `reconnecting` state, never emits the `end` it waits for: taskforcesh/bullmq#4656),
 * and its connections keep retrying, so the caller ends the process when stop() gives up.
 */

import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Job, Worker } from 'bullmq';
import { redisOptions } from './connection.js';
import { QUEUE_NAME, STORE_ENV } from './jobs.js';

export interface WorkerOptions {
  redis: string;
  store: string;
  concurrency: number;
  /** ms a job's lock lasts without renewal (a dead worker's job is taken back after this) */
  lockDuration?: number;
  /** ms between stalled-job checks */
  stalledInterval?: number;
  log?: (line: string) => void;
}

const PROCESSOR = fileURLToPath(new URL('./processor.js', import.meta.url));

export const DEFAULT_LOCK_MS = 30_000;

/** ms SIGTERM gives the running jobs to finish before the worker stops without them */
export const STOP_GRACE_MS = 10_000;

export interface ClusterWorker {
  readonly worker: Worker;
  /** jobs taken and not yet reported to Redis as completed or failed */
  running(): number;
  /**
   * Takes no new jobs and waits until the running ones are reported and the connections closed:
   * true. False when that takes over `graceMs`, or at once when no job runs and Redis is
   * unreachable (nothing to wait for); the caller then ends the process, whose job processes
   * exit with it (processor.ts) and whose unreported jobs BullMQ takes back after their lock expires.
   */
  stop(graceMs?: number): Promise<boolean>;
}

export function startWorker(o: WorkerOptions): ClusterWorker {
  process.env[STORE_ENV] = resolve(o.store); // the child processes inherit it
  const lockDuration = o.lockDuration ?? DEFAULT_LOCK_MS;
  const w = new Worker(QUEUE_NAME, PROCESSOR, {
    connection: redisOptions(o.redis, { blocking: true }),
    concurrency: o.concurrency,
    lockDuration,
    stalledInterval: o.stalledInterval ?? lockDuration,
    maxStalledCount: 3,
    removeOnComplete: { count: 0 },
    removeOnFail: { count: 10_000 },
  });
  logEvents(w, o.log);
  const running = new Set<string>();
  w.on('active', (job: Job) => running.add(job.id ?? ''));
  w.on('completed', (job: Job) => running.delete(job.id ?? ''));
  w.on('failed', (job: Job | undefined) => running.delete(job?.id ?? ''));
  // (the main connection once made: it retries while Redis is unreachable; 'end' after close)
  let client: { status: string } | undefined;
  w.getBackend()
    .client.then((c) => (client = c))
    .catch(() => undefined);
  const redisGone = (): boolean => !client || client.status === 'reconnecting' || client.status === 'connecting';
  return {
    worker: w,
    running: () => running.size,
    stop: (graceMs = STOP_GRACE_MS) => closeWithin(w, graceMs, () => running.size === 0 && redisGone()),
  };
}

/** w.close() within `graceMs` (true), or false: at the deadline, or as soon as `pointless()` holds. */
async function closeWithin(w: Worker, graceMs: number, pointless: () => boolean): Promise<boolean> {
  let closed = false;
  w.close().then(
    () => (closed = true),
    () => (closed = true), // (its errors were emitted as 'error' events)
  );
  const deadline = Date.now() + graceMs;
  while (!closed && Date.now() < deadline && !pointless()) await new Promise((r) => setTimeout(r, 50));
  return closed;
}

function logEvents(w: Worker, log: ((line: string) => void) | undefined): void {
  let lastError = '';
  w.on('error', (e) => {
    // (Redis gone: repeated connection errors; log each distinct one once)
    if (e.message !== lastError) log?.(`worker: ${e.message}`);
    lastError = e.message;
  });
  w.on('ready', () => {
    if (lastError) log?.('worker: connected to Redis');
    lastError = '';
  });
  w.on('failed', (job: Job | undefined, e: Error) => log?.(`worker: job ${job?.id ?? '?'} failed: ${e.message}`));
}
