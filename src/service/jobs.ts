/**
 * Bank build jobs: one runs at a time, a few may wait (more are refused with 429). A job builds
 * into a temporary name in the banks folder and renames it into place when complete, so a
 * half-built bank never carries a bank's name; with `load` the new bank is then loaded (a
 * hot swap when the name is already loaded). Finished jobs are kept for GET (the last 100).
 * cancel() (the service stopping) stops the running build at its next step and fails the jobs
 * still queued; their error starts with 'cancelled'.
 */
import { randomUUID } from 'node:crypto';
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tempPathFor } from '../io/atomic.js';
import { temporaryOwner } from '../outputs/temp-files.js';
import type { BankRegistry } from './banks.js';
import type { ServiceEngine } from './engine.js';
import { QueueFullError } from './queue.js';

export type JobState = 'queued' | 'running' | 'done' | 'failed';

export interface JobView {
  id: string;
  bank: string;
  state: JobState;
  progress: { done: number; total: number; label: string };
  createdAt: string;
  finishedAt?: string;
  error?: string;
  /** images skipped with the reason, a small bank */
  warnings?: string[];
  version?: number;
}

export interface JobSpec {
  bank: string;
  /** folder of images (validated) */
  images: string;
  /** removed when the job ends (uploads) */
  cleanup?: string;
  load: boolean;
}

const KEEP = 100;
/** the error of a job stopped by cancel() */
export const CANCELLED = 'cancelled: the service is stopping';

export class JobManager {
  private readonly jobs = new Map<string, JobView>();
  private tail: Promise<unknown> = Promise.resolve();
  private pending = 0;
  /** set by cancel(): aborts the running build; queued jobs fail without starting */
  private readonly stop = new AbortController();

  constructor(
    private readonly engine: ServiceEngine,
    private readonly registry: BankRegistry,
    private readonly maxPending: number,
    private readonly maxPixels: number,
    private readonly onEnd?: (job: Readonly<JobView>) => void,
  ) {}

  get(id: string): JobView | undefined {
    return this.jobs.get(id);
  }

  /** jobs not finished yet */
  get active(): number {
    return this.pending;
  }

  submit(spec: JobSpec): JobView {
    if (this.pending >= this.maxPending + 1) throw new QueueFullError(60, 'build job queue');
    const job: JobView = {
      id: randomUUID(),
      bank: spec.bank,
      state: 'queued',
      progress: { done: 0, total: 0, label: 'queued' },
      createdAt: new Date().toISOString(),
    };
    this.jobs.set(job.id, job);
    for (const old of [...this.jobs.keys()].slice(0, Math.max(0, this.jobs.size - KEEP)))
      if (this.jobs.get(old)!.finishedAt) this.jobs.delete(old);
    this.pending++;
    const run = (): Promise<void> => this.run(job, spec);
    this.tail = this.tail.then(run, run);
    return job;
  }

  private async run(job: JobView, spec: JobSpec): Promise<void> {
    const target = this.registry.pathOf(spec.bank);
    const tmp = tempPathFor(target);
    try {
      this.stop.signal.throwIfAborted();
      job.state = 'running';
      job.progress = { done: 0, total: 0, label: 'starting' };
      const built = await this.engine.build({
        images: spec.images,
        out: tmp,
        maxPixels: this.maxPixels,
        onProgress: (done, total, label) => {
          job.progress = { done, total, label: label ?? '' };
        },
        signal: this.stop.signal,
      });
      job.warnings = built.warnings;
      await replace(tmp, target);
      if (spec.load) job.version = (await this.registry.load(spec.bank)).version;
      job.state = 'done';
    } catch (e) {
      const p = job.progress;
      const at = job.state === 'running' ? ` (stopped at ${p.label} ${Math.round(p.done * 100) / 100}/${p.total})` : ' (not started)';
      job.error = this.stop.signal.aborted ? CANCELLED + at : (e as Error).message;
      job.state = 'failed';
      await rm(tmp, { recursive: true, force: true });
    } finally {
      if (spec.cleanup) await rm(spec.cleanup, { recursive: true, force: true });
      job.finishedAt = new Date().toISOString();
      this.pending--;
      this.onEnd?.(job);
    }
  }

  /** Stops the running build at its next step (its scoring at the next check) and fails the queued jobs. */
  cancel(): void {
    this.stop.abort(new Error(CANCELLED));
    this.engine.cancelCompute();
  }

  /** resolves when every submitted job has ended */
  async idle(): Promise<void> {
    while (this.pending > 0) await this.tail;
  }
}

/** Removes half-built or replaced banks left in the banks folder by a process that is gone (killed mid-build). */
export async function removeStaleBuilds(banksDir: string): Promise<number> {
  let n = 0;
  for (const name of await readdir(banksDir).catch(() => [] as string[])) {
    const pid = temporaryOwner(name);
    if (pid === null || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
      continue; // its process still runs
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EPERM') continue;
    }
    await rm(join(banksDir, name), { recursive: true, force: true });
    n++;
  }
  return n;
}

/** Moves `tmp` to `target`, replacing a file or folder there (the old one is removed after). */
async function replace(tmp: string, target: string): Promise<void> {
  const old = tempPathFor(target);
  const had = await rename(target, old).then(
    () => true,
    (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return false;
      throw e;
    },
  );
  await rename(tmp, target);
  if (had) await rm(old, { recursive: true, force: true });
}
