/**
 * `musc worker`: takes jobs from the run queue and runs them, `concurrency` at a time, each in its
 * own child process (processor.ts). A killed worker loses nothing: its jobs' locks expire and
 * BullMQ's stalled-job check (any live worker) puts them back in the queue; the job writes its
 * content-addressed result again.
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

export function startWorker(o: WorkerOptions): Worker {
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
  let lastError = '';
  w.on('error', (e) => {
    // (Redis gone: repeated connection errors; log each distinct one once)
    if (e.message !== lastError) o.log?.(`worker: ${e.message}`);
    lastError = e.message;
  });
  w.on('ready', () => {
    if (lastError) o.log?.('worker: connected to Redis');
    lastError = '';
  });
  w.on('failed', (job: Job | undefined, e: Error) => o.log?.(`worker: job ${job?.id ?? '?'} failed: ${e.message}`));
  return w;
}
