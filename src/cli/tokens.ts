/**
 * `musc tokens --data DIR --out tokens.safetensors [--backbone NAME]`: the image-level tokens of
 * every image of a dataset or folder (same layouts and paths as `musc run`), for `musc rscin`.
 */

import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { DEFAULT_BACKBONE, listBackbones, loadBackbone } from '../backbones/registry.js';
import type { Device } from '../compute/session.js';
import { ConfigError } from '../config.js';
import { openDataset, selectCategories } from '../datasets/index.js';
import { DATASET_KINDS, DatasetError, type DatasetItem, type DatasetKind } from '../datasets/types.js';
import { prepareOutputFile } from '../outputs/out-dir.js';
import { computeImageTokens, normalizeTokens, writeTokens } from '../rscin-plugin.js';
import { posIntArg } from './args.js';
import { REQUIRED, TOKENS_HELP } from './help.js';
import { createProgress } from './progress.js';

interface TokensFlags {
  data: string;
  out: string;
  dataset?: DatasetKind;
  category?: string;
  backbone?: string;
  weights?: string;
  imageSize?: number;
  batchSize?: number;
  device?: Device;
  normalize?: boolean;
  quiet?: boolean;
}

/** Every item of the selected categories, in dataset order. */
export async function datasetItems(
  data: string,
  kind?: DatasetKind,
  category?: string,
): Promise<{ root: string; kind: DatasetKind; items: DatasetItem[] }> {
  const ds = await openDataset(data, kind);
  const items: DatasetItem[] = [];
  for (const name of selectCategories(ds, category)) items.push(...(await ds.load(name)).items);
  if (items.length === 0) throw new DatasetError(`no images found in ${ds.root} (layout ${ds.kind})`);
  return { root: ds.root, kind: ds.kind, items };
}

export function checkBackbone(name: string): void {
  const known = listBackbones().map((b) => b.name);
  if (!known.includes(name)) throw new ConfigError(`unknown backbone '${name}'; available: ${known.join(', ')}`);
}

export function tokensCommand(): Command {
  const cmd = new Command('tokens')
    .description('image-level tokens of every image (for `musc rscin`): F32 [N, D] "tokens", paths in __metadata__')
    .requiredOption('--data <dir>', REQUIRED + 'data folder (any layout `musc run` reads, or a plain folder of images)')
    .requiredOption('--out <file>', REQUIRED + 'output file, e.g. tokens.safetensors')
    .addOption(new Option('--dataset <layout>', 'dataset layout (default: detected)').choices([...DATASET_KINDS]))
    .option('--category <name>', "category name, comma-separated names, or 'all' (default: all)")
    .option('--backbone <name>', `feature extractor (default: ${DEFAULT_BACKBONE})`)
    .option('--weights <file>', 'weight file for the backbone')
    .option('--image-size <px>', "input size (default: the backbone's)", posIntArg)
    .option('--batch-size <n>', 'images per backbone batch (default: 4)', posIntArg)
    .addOption(new Option('--device <device>', 'compute device (default: cpu)').choices(['cpu', 'cuda']))
    .option('--normalize', 'scale every token to unit length (recommended for ResNet tokens, see docs/fewshot.md)')
    .option('-q, --quiet', 'no progress bar or information lines')
    .addHelpText('after', TOKENS_HELP);
  cmd.action(async (f: TokensFlags) => {
    const name = f.backbone ?? DEFAULT_BACKBONE;
    checkBackbone(name);
    const { root, items } = await datasetItems(resolve(f.data), f.dataset, f.category);
    await prepareOutputFile(f.out); // before the backbone
    const bb = await loadBackbone(name, {
      ...(f.imageSize ? { imageSize: f.imageSize } : {}),
      ...(f.weights ? { weightsPath: resolve(f.weights) } : {}),
      device: f.device ?? 'cpu',
    });
    const progress = createProgress(!f.quiet);
    try {
      progress?.start('tokens', items.length);
      const raw = await computeImageTokens(
        items.map((it) => it.path),
        bb,
        {
          batchSize: f.batchSize ?? 4,
          onProgress: (d, t) => progress?.update(d, t, 'extract'),
        },
      );
      progress?.stop();
      const tokens = f.normalize ? normalizeTokens(raw) : raw;
      await writeTokens(resolve(f.out), { paths: items.map((it) => it.rel), root, backbone: name, imageSize: bb.imageSize, tokens });
      process.stdout.write(
        `musc: ${tokens.n} image tokens of dimension ${tokens.d} (${name} at ${bb.imageSize} px) written to ${resolve(f.out)}\n`,
      );
    } finally {
      progress?.stop();
      await bb.dispose();
    }
  });
  return cmd;
}
