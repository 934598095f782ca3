/** Progress bars (cli-progress) on a TTY only; silent otherwise or with --quiet. */
import cliProgress from 'cli-progress';
import type { ProgressSink } from '../pipeline/run-dataset.js';

export function createProgress(enabled: boolean): ProgressSink | undefined {
  if (!enabled || !process.stderr.isTTY) return undefined;
  let bar: cliProgress.SingleBar | null = null;
  let label = '';
  return {
    start(l, total) {
      label = l;
      bar = new cliProgress.SingleBar(
        {
          format: '{label} {stage} [{bar}] {value}/{total} ETA {eta_formatted}',
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: true,
          // scoring reports fractions (per stage and r, within a batch): one decimal
          formatValue: (v: number | string, _o: unknown, type: string) =>
            type === 'value' && typeof v === 'number' && !Number.isInteger(v) ? v.toFixed(1) : String(v),
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0, { label, stage: 'extract' });
    },
    update(done, total, stage) {
      if (!bar) return;
      bar.setTotal(total);
      bar.update(done, { label, stage });
    },
    stop() {
      bar?.stop();
      bar = null;
    },
  };
}
