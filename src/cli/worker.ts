/**
 * `musc worker --redis URL [--concurrency N] [--store DIR]`: runs cluster jobs until Ctrl-C or
 * SIGTERM; then it takes no new jobs, gives the running ones STOP_GRACE_MS to finish, and exits 0.
 */
import { Command, InvalidArgumentError } from 'commander';
import { STOP_GRACE_MS, startWorker } from '../cluster/worker.js';
import { ConfigError } from '../config.js';
import { interruptRequested } from '../pipeline/interrupt.js';

export const STORE_DEFAULT_ENV = 'MUSC_STORE';

export const positiveInt = (s: string): number => {
  const v = Number(s);
  if (!/^\s*\d+\s*$/.test(s) || v < 1) throw new InvalidArgumentError(`expected a positive integer, got '${s}'`);
  return v;
};

/** --store, else MUSC_STORE; a clear error when neither is given. */
export function storeDir(flag: string | undefined): string {
  const dir = flag ?? process.env[STORE_DEFAULT_ENV];
  if (!dir) throw new ConfigError(`give --store DIR (the shared store every worker and the run mount) or set ${STORE_DEFAULT_ENV}`);
  return dir;
}

export function workerCommand(): Command {
  return new Command('worker')
    .description('run cluster jobs (feature extraction, MSM blocks) from Redis until stopped')
    .requiredOption('--redis <url>', 'Redis URL, e.g. redis://host:6379')
    .option('--store <dir>', `shared store folder (every worker and the run mount the same one; default: $${STORE_DEFAULT_ENV})`)
    .option('--concurrency <n>', 'jobs at a time, each in its own process (default: 1)', positiveInt)
    .option('--lock-duration <ms>', "ms before a silent worker's job is taken back (default: 30000)", positiveInt)
    .option('--stalled-interval <ms>', 'ms between checks for jobs of dead workers (default: the lock duration)', positiveInt)
    .option('--quiet', 'no information lines')
    .action(
      async (f: {
        redis: string;
        store?: string;
        concurrency?: number;
        lockDuration?: number;
        stalledInterval?: number;
        quiet?: boolean;
      }) => {
        const log = f.quiet ? undefined : (l: string) => process.stderr.write(`${l}\n`);
        const store = storeDir(f.store);
        const cw = startWorker({
          redis: f.redis,
          store,
          concurrency: f.concurrency ?? 1,
          log,
          ...(f.lockDuration !== undefined ? { lockDuration: f.lockDuration } : {}),
          ...(f.stalledInterval !== undefined ? { stalledInterval: f.stalledInterval } : {}),
        });
        log?.(`worker ${process.pid}: ${f.concurrency ?? 1} slot(s), Redis ${f.redis}, store ${store}`);
        while (!interruptRequested()) await new Promise((r) => setTimeout(r, 200));
        log?.(`worker ${process.pid}: stopping after the running jobs (at most ${STOP_GRACE_MS / 1000} s)`);
        if (await cw.stop(STOP_GRACE_MS)) return;
        // (BullMQ's connections keep retrying and its job processes stay attached: end here; the
        // job processes exit with this one, and BullMQ takes their jobs back after the lock expires)
        const n = cw.running();
        log?.(`worker ${process.pid}: stopped ${n ? `with ${n} job(s) unfinished: they go back to the queue` : '(Redis unreachable)'}`);
        process.exit(0);
      },
    );
}
