/** `musc status --redis URL [--cancel RUN]` and `musc cancel RUN --redis URL`. */
import { Command } from 'commander';
import { cancelRun, clusterStatus, formatStatus } from '../cluster/status.js';

async function cancel(redis: string, run: string): Promise<void> {
  const n = await cancelRun(redis, run);
  process.stdout.write(`run ${run} cancelled: ${n} queued job${n === 1 ? '' : 's'} removed (running jobs finish; the run stops)\n`);
}

export function statusCommand(): Command {
  return new Command('status')
    .description('cluster runs: queued, active and failed jobs per run (failed jobs with their error)')
    .requiredOption('--redis <url>', 'Redis URL, e.g. redis://host:6379')
    .option('--cancel <run>', 'cancel this run')
    .option('--json', 'as JSON')
    .action(async (f: { redis: string; cancel?: string; json?: boolean }) => {
      if (f.cancel) return cancel(f.redis, f.cancel);
      const runs = await clusterStatus(f.redis);
      process.stdout.write(f.json ? JSON.stringify(runs, null, 2) + '\n' : formatStatus(runs));
    });
}

export function cancelCommand(): Command {
  return new Command('cancel')
    .description('cancel a cluster run (see musc status)')
    .argument('<run>', 'run id')
    .requiredOption('--redis <url>', 'Redis URL, e.g. redis://host:6379')
    .action((run: string, f: { redis: string }) => cancel(f.redis, run));
}
