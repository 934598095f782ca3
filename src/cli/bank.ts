/**
 * `musc bank build --data DIR --out NAME.bank`: a bank of an unlabeled folder of images of one
 * product (src/bank/), with its label-free calibration.
 * `musc bank info NAME.bank`: what a bank holds, after verifying it.
 */
import { resolve } from 'node:path';
import { Command } from 'commander';
import { isBackboneConfigError } from '../backbones/errors.js';
import { DEFAULT_BACKBONE, loadBackbone } from '../backbones/registry.js';
import type { Backbone } from '../backbones/types.js';
import { buildBank, DEFAULT_PROJECT_FOLDS, imagesOfFolder } from '../bank/build.js';
import { checkFalseAlarm, DEFAULT_FALSE_ALARM, thresholdsOf } from '../bank/calibration.js';
import { readBank } from '../bank/store.js';
import type { Bank } from '../bank/types.js';
import { ConfigError } from '../config.js';
import { DEFAULT_INTERVAL, degreesLabel } from '../core/defaults.js';
import { DatasetError } from '../datasets/types.js';
import type { ProgressSink } from '../pipeline/run-dataset.js';
import {
  accuracyOptions,
  accuracySettings,
  type ScoringFlags,
  backboneOptions,
  degreeOptions,
  deviceOption,
  intervalArg,
  intListArg,
  maxPixelsOption,
  msmPrecisionOption,
  projectOption,
  posIntArg,
  scoreGridOption,
  normExponentOption,
  densityExponentOption,
  densityScopeOption,
  wrapArg,
} from './args.js';
import { createProgress } from './progress.js';
import { checkBackbone } from './tokens.js';

export const falseAlarmArg = wrapArg((s) => checkFalseAlarm(Number(s)));

/** A progress callback (step, done, total) onto a bar; one line per step without a TTY unless quiet. */
export function stepProgress(bar: ProgressSink | undefined): (step: string, done: number, total: number) => void {
  return (step, done, total) => bar?.update(done, total, step);
}

interface BuildFlags extends ScoringFlags {
  data: string;
  out: string;
  falseAlarm?: number;
  projectFolds?: number;
  force?: boolean;
}

const mb = (bytes: number): number => bytes / 2 ** 20;
const pct = (a: number): string => `${+(a * 100).toPrecision(3)}%`;

/** A few lines describing a bank (info and build). */
export function describeBank(bank: Bank, sizeBytes?: number): string[] {
  const m = bank.manifest;
  const th = thresholdsOf(bank.calibration);
  const b = m.backbone,
    sc = m.scoring;
  const bytes = sizeBytes ?? m.files.reduce((a, f) => a + f.bytes, 0);
  return [
    `bank ${bank.path}: ${m.images.length} images${m.skipped.length ? ` (${m.skipped.length} inputs skipped)` : ''}, ` +
      `${mb(bytes).toFixed(1)} MB (${mb(bytes / m.images.length).toFixed(2)} MB per image)`,
    `  backbone ${b.name} at ${b.image_size} px${b.fuse_sizes?.length ? ` fused with ${b.fuse_sizes.join(', ')} px` : ''}, stages ${b.stages.join(',')}, weights sha256 ${b.weights_sha256.slice(0, 12)}...`,
    `  scoring: r ${degreesLabel({ rList: sc.r_list, ...(sc.stage_r_list ? { stageRList: sc.stage_r_list } : {}) })}${sc.stage_r_list ? ' (per stage)' : ''}${sc.score_grid !== undefined ? ` on a ${sc.score_grid} x ${sc.score_grid} grid` : ''}${sc.project !== undefined ? `, features projected to ${sc.project} channels` : ''}${sc.norm_exponent !== undefined ? `, norm exponent ${sc.norm_exponent}` : ''}${sc.density_exponent !== undefined ? `, density exponent ${[sc.density_exponent].flat().join('/')}${sc.density_scope ? ` (${sc.density_scope} scores only)` : ''}` : ''}, interval ${sc.interval.join(',')}, RsCIN k ${sc.k_list.join(',')}, ${sc.msm_precision}, ` +
      `features ${sc.feature_storage}; musc ${m.software.musc}, built ${m.created}`,
    `  calibration (leave-one-out${bank.calibration.project_folds ? `, projection bases held out in ${bank.calibration.project_folds} folds` : ''}${sc.density_exponent !== undefined ? ', densities held out' : ''}, false-alarm ${pct(th.falseAlarm)}): ` +
      `image threshold ${th.image.toPrecision(6)}, pixel threshold ${th.pixel.toPrecision(6)}`,
  ];
}

/** The scoring flags of `musc bank build` as buildBank's options. */
function scoringOptions(f: BuildFlags) {
  return {
    rList: f.rList,
    ...(f.stageRList ? { stageRList: f.stageRList } : {}),
    interval: f.interval,
    kList: f.kList,
    scoreGrid: f.scoreGrid,
    ...(f.project !== undefined ? { project: f.project } : {}),
    ...(f.projectFolds !== undefined ? { projectFolds: f.projectFolds } : {}),
    ...(f.normExponent !== undefined ? { normExponent: f.normExponent } : {}),
    ...(f.densityExponent !== undefined ? { densityExponent: f.densityExponent } : {}),
    ...(f.densityScope !== undefined ? { densityScope: f.densityScope } : {}),
  };
}

function buildCommand(): Command {
  const located = new Command('build')
    .description('extract and store the features of an unlabeled folder of images of one product, and calibrate label-free thresholds')
    .requiredOption('--data <dir>', '(required) folder of images (searched recursively; mostly good images of one product)')
    .requiredOption('--out <bank>', '(required) bank directory to write, e.g. bottle.bank');
  const cmd = scoreGridOption(
    accuracyOptions(
      degreeOptions(backboneOptions(located))
        .addOption(projectOption('the bank, saved in it for new images'))
        .option(
          '--project-folds <F>',
          `with --project: the calibration scores the bank in F folds, each on projection bases of the others, as predict scores new images on bases they did not shape (default: ${DEFAULT_PROJECT_FOLDS})`,
          posIntArg,
        )
        .addOption(normExponentOption())
        .addOption(densityExponentOption())
        .addOption(densityScopeOption()),
    ),
  )
    .option('--interval <lo,hi>', `MSM interval (default: ${DEFAULT_INTERVAL.join(',')})`, intervalArg)
    .option('--k-list <list>', 'RsCIN window sizes (default: 1,2,3); 0 disables', intListArg('--k-list'))
    .addOption(msmPrecisionOption())
    .addOption(deviceOption())
    .option('--false-alarm <rate>', `target false-alarm rate of the calibrated thresholds (default: ${DEFAULT_FALSE_ALARM})`, falseAlarmArg)
    .option('--batch-size <n>', 'images per backbone batch (default: 4)', posIntArg)
    .addOption(maxPixelsOption())
    .option('--force', 'replace an existing bank')
    .option('-q, --quiet', 'no progress bar or information lines')
    .addHelpText(
      'after',
      '\nExample:\n  musc bank build --data line7/recent-good --out bottle.bank\n  musc predict --bank bottle.bank new/*.png --out results',
    );
  cmd.action(async (f: BuildFlags) => {
    const name = f.backbone ?? DEFAULT_BACKBONE;
    if (!name.endsWith('.safetensors')) checkBackbone(name);
    const { inputs, excluded } = await imagesOfFolder(resolve(f.data));
    if (excluded.length > 0)
      process.stderr.write(`warning: ${excluded.length} images in mask folders left out of the bank (first: ${excluded[0]!.name})\n`);
    if (inputs.length === 0) throw new DatasetError(`${f.data}: no product images (only masks)`);
    const acc = accuracySettings(f);
    let backbone: Backbone;
    try {
      backbone = await loadBackbone(name, {
        ...(f.imageSize ? { imageSize: f.imageSize } : {}),
        ...(f.stages ? { stages: f.stages } : {}),
        ...(f.weights ? { weightsPath: resolve(f.weights) } : {}),
        ...(acc.borderPad !== undefined ? { borderPad: acc.borderPad } : {}),
        ...(acc.fuseSizes !== undefined ? { fuseSizes: acc.fuseSizes } : {}),
        device: f.device ?? 'cpu',
      });
    } catch (e) {
      if (isBackboneConfigError(e)) throw new ConfigError(`cannot load backbone '${name}': ${(e as Error).message}`);
      throw e;
    }
    const bar = createProgress(!f.quiet);
    try {
      bar?.start('bank', inputs.length);
      const res = await buildBank(inputs, {
        out: resolve(f.out),
        backbone,
        ...scoringOptions(f),
        rscin: acc.rscin,
        imageScore: acc.imageScore,
        precision: f.msmPrecision,
        device: f.device,
        falseAlarm: f.falseAlarm,
        batchSize: f.batchSize,
        maxPixels: f.maxPixels,
        force: f.force,
        onProgress: stepProgress(bar),
        ...(f.quiet ? {} : { log: (l: string) => void process.stderr.write(`${l}\n`) }),
      });
      bar?.stop();
      for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
      const bank = await readBank(res.path);
      process.stdout.write(`${describeBank(bank).join('\n')}\n`);
    } finally {
      bar?.stop();
      await backbone.dispose();
    }
  });
  return cmd;
}

function infoCommand(): Command {
  return new Command('info')
    .description('verify a bank (checksums, shapes) and print what it holds')
    .argument('<bank>', 'bank directory')
    .option('--json', 'print the manifest and calibration as JSON')
    .action(async (path: string, f: { json?: boolean }) => {
      const bank = await readBank(resolve(path));
      if (f.json) process.stdout.write(JSON.stringify({ manifest: bank.manifest, calibration: bank.calibration }, null, 2) + '\n');
      else
        process.stdout.write(
          `${describeBank(bank).join('\n')}\n  verified: manifest checksum and the sha256 of ${bank.manifest.files.length} files\n`,
        );
    });
}

export function bankCommand(): Command {
  return new Command('bank')
    .description('banks: saved, self-calibrated reference sets of one product for `musc predict`')
    .addCommand(buildCommand())
    .addCommand(infoCommand());
}
