#!/usr/bin/env node
import { existsSync, realpathSync } from 'node:fs';
/**
 * The `musc` command line:
 *   musc run --data DIR --out DIR [options]   zero-shot anomaly detection on a dataset
 *   musc demo [--out DIR]                     the same on a generated synthetic set
 *   musc models ...                           backbone weights (src/cli/models.ts)
 *   musc report OUT / musc serve OUT          the HTML report (src/cli/report.ts)
 *   musc bank build|info / musc predict       banks and new images (src/cli/bank.ts, predict.ts)
 *   musc api --banks DIR                      the inspection service (src/cli/api.ts, src/service/)
 * Exit codes: see errors.ts (0 ok, 1 runtime, 2 usage/config, 3 data).
 */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { DEFAULT_BACKBONE, listBackbones, loadBackbone } from '../backbones/registry.js';
import { checkDevice, type Device } from '../compute/session.js';
import { shutdownCompute } from '../compute/worker.js';
import type { Settings, VisNorm } from '../config.js';
import { ConfigError, DEFAULT_SETTINGS, loadConfigFile, mergeSettings } from '../config.js';
import { MASK_RULES } from '../datasets/masks.js';
import { DATASET_KINDS, type DatasetKind } from '../datasets/types.js';
import { generateSynthetic } from '../demo/synthetic.js';
import { computeMetrics } from '../metrics/index.js';
import { writeReportOrWarn } from '../report/commit.js';
import { removeOwnTemporariesSync } from '../outputs/temp-files.js';
import { versions } from '../outputs/versions.js';
import { InterruptedError, interruptRequested, requestInterrupt } from '../pipeline/interrupt.js';
import { type DatasetRunResult, openOutputFolder, PartialRunError, runDataset } from '../pipeline/run-dataset.js';
import type { MetricsFn, Scorer } from '../pipeline/types.js';
import { apiCommand } from './api.js';
import {
  backboneOptions,
  decisionRuleArg,
  degreeOptions,
  deviceOption,
  maxPixelsOption,
  normExponentOption,
  densityExponentOption,
  densityScopeOption,
  projectOption,
  msmPrecisionOption,
  accuracyOptions,
  type ScoringFlags,
  intervalArg,
  intListArg,
  posIntArg,
  posNumberArg,
  scoreGridOption,
} from './args.js';
import { bankCommand } from './bank.js';
import { EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, exitCodeFor, formatError } from './errors.js';
import { DEMO_HELP, nextSteps, REQUIRED, RUN_HELP } from './help.js';
import { modelsCommand } from './models.js';
import { normOption, oldVisNormOption } from './norm.js';
import { addPaperCommands } from './paper-commands.js';
import { addClusterRunOptions, runOnCluster, type ClusterFlags } from './cluster-run.js';
import { workerCommand } from './worker.js';
import { cancelCommand, statusCommand } from './status.js';
import { predictCommand } from './predict.js';
import { createProgress } from './progress.js';
import { reportCommand, serveCommand } from './report.js';
import { localScorer } from '../pipeline/local-scorer.js';

interface RunFlags extends ScoringFlags {
  data?: string;
  out?: string;
  dataset?: DatasetKind;
  category?: string;
  divide?: number;
  maxMemory?: number;
  config?: string;
  norm?: VisNorm;
  visNorm?: VisNorm;
  heatmaps?: 'all' | 'anomalous' | 'none';
  maskRule?: 'reference' | 'nonzero';
  featureStorage?: 'float16' | 'float32';
  strict?: boolean;
  report?: boolean;
  cache?: boolean;
  cacheDir?: string;
  referenceDir?: string;
  mode?: 'musc' | 'musc-plus';
  decision?: string | true;
  repeatFilter?: 'on' | 'off';
}

type RunCommandFlags = RunFlags & ClusterFlags;

function flagsToSettings(f: RunFlags): Partial<Settings> {
  const s: Partial<Settings> = {};
  if (f.dataset !== undefined) s.dataset = f.dataset;
  if (f.category !== undefined) s.category = f.category;
  if (f.backbone !== undefined) s.backbone = f.backbone;
  if (f.weights !== undefined) s.weights = resolve(f.weights);
  if (f.imageSize !== undefined) s.image_size = f.imageSize;
  if (f.stages !== undefined) s.stages = f.stages;
  if (f.rList !== undefined) s.r_list = f.rList;
  if (f.stageRList !== undefined) s.stage_r_list = f.stageRList;
  if (f.borderPad !== undefined) s.border_pad = f.borderPad;
  if (f.fuseSizes !== undefined) s.fuse_sizes = f.fuseSizes;
  if (f.imageScore !== undefined) s.image_score = f.imageScore;
  if (f.preset !== undefined) s.preset = f.preset;
  if (f.rscin !== undefined) s.rscin = f.rscin;
  if (f.repeatFilter !== undefined) s.repeat_filter = f.repeatFilter;
  if (f.scoreGrid !== undefined) s.score_grid = f.scoreGrid;
  if (f.project !== undefined) s.project = f.project;
  if (f.normExponent !== undefined) s.norm_exponent = f.normExponent;
  if (f.densityExponent !== undefined) s.density_exponent = f.densityExponent;
  if (f.densityScope !== undefined) s.density_scope = f.densityScope;
  if (f.divide !== undefined) s.divide_num = f.divide;
  if (f.maxMemory !== undefined) s.max_memory = f.maxMemory;
  if (f.kList !== undefined) s.k_list = f.kList;
  if (f.interval !== undefined) s.interval = f.interval;
  if (f.batchSize !== undefined) s.batch_size = f.batchSize;
  if (f.norm !== undefined || f.visNorm !== undefined) s.norm = f.norm ?? f.visNorm!;
  if (f.heatmaps !== undefined) s.heatmaps = f.heatmaps;
  if (f.maskRule !== undefined) s.mask_rule = f.maskRule;
  if (f.device !== undefined) s.device = f.device;
  if (f.msmPrecision !== undefined) s.msm_precision = f.msmPrecision;
  if (f.featureStorage !== undefined) s.feature_storage = f.featureStorage;
  if (f.strict) s.strict = true;
  if (f.cache === false) s.cache = false;
  if (f.cacheDir !== undefined) s.cache_dir = resolve(f.cacheDir);
  if (f.maxPixels !== undefined) s.max_pixels = f.maxPixels;
  if (f.referenceDir !== undefined) s.reference_dir = resolve(f.referenceDir);
  if (f.mode !== undefined) s.mode = f.mode;
  if (f.decision !== undefined) s.decision = f.decision === true ? 'mad' : f.decision;
  return s;
}

const scorer: Scorer = localScorer;

function checkBackboneName(name: string): void {
  const known = listBackbones().map((b) => b.name);
  if (name.endsWith('.safetensors') && !known.includes(name)) {
    // a ViT weight file given directly (registry.loadBackbone detects its family)
    if (!existsSync(name)) throw new ConfigError(`backbone weight file ${name} does not exist`);
    return;
  }
  if (known.length > 0 && !known.includes(name)) throw new ConfigError(`unknown backbone '${name}'; available: ${known.join(', ')}`);
}

/**
 * A run and its report under one lock of the output folder (checked and created first, before
 * the backbone). A run that ends with exit 3 (some categories not scored) still gets its report.
 */
async function execute(
  settings: Settings,
  data: string,
  out: string,
  quiet: boolean,
  report: boolean,
  cluster?: ClusterFlags,
): Promise<DatasetRunResult> {
  checkBackboneName(settings.backbone);
  const log = quiet ? undefined : (l: string) => void process.stderr.write(`${l}\n`);
  await checkDevice(settings.device); // before any work (and before the output folder is created)
  const folder = await openOutputFolder(out, data, log);
  try {
    const metrics: MetricsFn = computeMetrics;
    let res: DatasetRunResult;
    try {
      const o = {
        data,
        out: folder.out,
        settings,
        loadBackbone,
        scorer,
        metrics,
        ...(log ? { log } : {}),
        warn: (l: string) => void process.stderr.write(`warning: ${l}\n`),
        progress: createProgress(!quiet),
      };
      res = cluster?.redis ? await runOnCluster(cluster, o) : await runDataset(o);
    } catch (e) {
      if (e instanceof PartialRunError) await writeReport(e.result.out, report, quiet);
      throw e;
    }
    await writeReport(res.out, report, quiet);
    return res;
  } finally {
    await folder.release();
  }
}

function addRunOptions(cmd: Command): Command {
  const located = cmd
    .addOption(new Option('--dataset <layout>', 'dataset layout (default: detected)').choices([...DATASET_KINDS]))
    .option('--category <name>', "category name, comma-separated names, or 'all' (default: all)");
  return scoreGridOption(
    accuracyOptions(
      degreeOptions(backboneOptions(located))
        .addOption(projectOption('the batch'))
        .addOption(normExponentOption())
        .addOption(densityExponentOption())
        .addOption(densityScopeOption()),
    ),
  )
    .option('--divide <n>', 'subsets mutual scoring runs within (reference divide_num; default: 1)', posIntArg)
    .option('--max-memory <MB>', 'divide automatically so one subset fits in about this many MB', posNumberArg)
    .option('--k-list <list>', 'RsCIN window sizes (default: visa 1,8,9; others 1,2,3); 0 disables', intListArg('--k-list'))
    .option('--interval <lo,hi>', 'MSM interval of the sorted scores (default: 0,0.3)', intervalArg)
    .addOption(
      new Option(
        '--repeat-filter <mode>',
        'image scores without the images that share a repeated defect (CoDeGraph-like; zero-shot only; default: on)',
      ).choices(['on', 'off']),
    )
    .option('--batch-size <n>', `images per backbone batch (default: ${DEFAULT_SETTINGS.batch_size})`, posIntArg)
    .option('--config <file>', 'YAML or JSON settings file (flags override it)')
    .addOption(normOption())
    .addOption(oldVisNormOption())
    .addOption(new Option('--heatmaps <which>', 'heatmap PNGs to write (default: anomalous)').choices(['all', 'anomalous', 'none']))
    .addOption(new Option('--mask-rule <rule>', 'mask binarisation (default: reference)').choices([...MASK_RULES]))
    .addOption(deviceOption())
    .addOption(msmPrecisionOption())
    .addOption(
      new Option(
        '--feature-storage <type>',
        `stage features kept until scoring and cached as float16 (half the memory) or float32; ` +
          `computation is float32 (default: ${DEFAULT_SETTINGS.feature_storage})`,
      ).choices(['float16', 'float32']),
    )
    .option('--strict', 'fail on the first unreadable image instead of skipping it')
    .option('--no-report', 'do not write report.html')
    .option('--no-cache', 'do not cache backbone features (default: cached, so that a re-run resumes)')
    .option('--cache-dir <dir>', 'feature cache folder (default: <out>/.cache/features)')
    .addOption(maxPixelsOption())
    .option('-q, --quiet', 'no progress bars or information lines')
    .option('--reference-dir <dir>', 'few-shot: known-good reference images (DIR/<category>/train/good, DIR/<category> or DIR)')
    .addOption(
      new Option('--mode <mode>', 'musc: references join the pool; musc-plus: score by the references alone (default: musc)').choices([
        'musc',
        'musc-plus',
      ]),
    )
    .option(
      '--decision [rule]',
      'label-free OK/NG column in scores.csv: mad (median + 3 MAD), mad:K or otsu (default rule: mad)',
      decisionRuleArg,
    );
}

/** The HTML report after a run; a failure only warns (the results are already written). */
function writeReport(out: string, enabled: boolean, quiet: boolean): Promise<void> {
  return enabled ? writeReportOrWarn(out, (l) => !quiet && process.stderr.write(`${l}\n`)) : Promise.resolve();
}

function printResult(res: DatasetRunResult, quiet: boolean): void {
  if (!quiet) process.stdout.write(`\n${res.markdown}\n`);
  const n = res.entries.reduce((a, e) => a + e.metrics.n_images, 0);
  const sk = res.entries.reduce((a, e) => a + e.metrics.n_skipped, 0);
  const ng = res.results.reduce((a, r) => a + (r.decisions?.ng ?? 0), 0);
  const how = [...new Set(res.results.map((r) => r.decisions?.method).filter((m) => m))].join('/');
  process.stdout.write(
    `musc: ${res.entries.length} ${res.entries.length === 1 ? 'category' : 'categories'}, ` +
      `${n} images scored, ${ng} NG (${how} threshold; decision column of scores.csv)` +
      `${sk ? `, ${sk} skipped (unreadable; listed above and in run.json)` : ''}` +
      `; outputs in ${res.out} (table: ${join(res.out, 'metrics.md')})\n`,
  );
}

export function buildProgram(): Command {
  const program = new Command('musc')
    .description('Zero-shot industrial anomaly classification and segmentation (MuSc, ICLR 2024) on ONNX Runtime')
    .version(versions().musc, '-V, --version')
    .exitOverride()
    .showSuggestionAfterError(true);

  const run = addClusterRunOptions(
    addRunOptions(
      program
        .command('run')
        .description('score every image of a dataset by mutual scoring; write scores, maps, heatmaps and metrics')
        .requiredOption('--data <dir>', `${REQUIRED}data folder (MVTec AD, BTAD, MPDD, VisA, MVTec LOCO, or a plain folder of images)`)
        .requiredOption('--out <dir>', `${REQUIRED}output folder`),
    ),
  ).addHelpText('after', RUN_HELP);
  run.action(async (f: RunCommandFlags) => {
    const file = f.config ? await loadConfigFile(f.config) : {};
    const settings = mergeSettings(file, flagsToSettings(f));
    const res = await execute(settings, resolve(f.data!), f.out!, !!f.quiet, f.report !== false, f);
    printResult(res, !!f.quiet);
  });

  const demo = program
    .command('demo')
    .description('generate a small synthetic inspection set (24 images) and run MuSc on it')
    .option('--out <dir>', 'output folder (default: a new temporary folder); data goes to <out>/data, results to <out>/results')
    .option('--backbone <name>', `feature extractor (default: ${DEFAULT_BACKBONE})`)
    .addOption(new Option('--heatmaps <which>', 'heatmap PNGs to write (default: anomalous)').choices(['all', 'anomalous', 'none']))
    .addOption(deviceOption())
    .option('-q, --quiet', 'no progress bars or information lines')
    .addHelpText('after', DEMO_HELP);
  demo.action(async (f: { out?: string; backbone?: string; heatmaps?: 'all' | 'anomalous' | 'none'; device?: Device; quiet?: boolean }) => {
    const out = f.out ? resolve(f.out) : await mkdtemp(join(tmpdir(), 'musc-demo-'));
    const set = await generateSynthetic(join(out, 'data'));
    if (!f.quiet) process.stderr.write(`demo: ${set.images} synthetic images (${set.defective} defective) in ${set.root}\n`);
    const settings = mergeSettings(
      {},
      {
        dataset: 'mvtec',
        ...(f.backbone ? { backbone: f.backbone } : {}),
        ...(f.heatmaps ? { heatmaps: f.heatmaps } : {}),
        ...(f.device ? { device: f.device } : {}),
      },
    );
    const res = await execute(settings, set.root, join(out, 'results'), !!f.quiet, true);
    process.stdout.write(`\n${res.markdown}\n`);
    printResult(res, true);
    if (!f.quiet) process.stdout.write(nextSteps(res.out));
  });
  program.addCommand(modelsCommand());
  program.addCommand(reportCommand());
  program.addCommand(serveCommand());
  program.addCommand(bankCommand());
  program.addCommand(predictCommand());
  program.addCommand(apiCommand());
  program.addCommand(workerCommand());
  program.addCommand(statusCommand());
  program.addCommand(cancelCommand());
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  addPaperCommands(program);
  // every level (musc bank build too): a usage error throws, so that it exits EXIT_USAGE
  const override = (c: Command): void => {
    c.exitOverride();
    c.commands.forEach(override);
  };
  program.commands.forEach(override);
  try {
    if (argv.length <= 2) {
      program.outputHelp();
      return EXIT_USAGE;
    }
    await program.parseAsync(argv);
    return EXIT_OK;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its message
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help') return EXIT_OK;
      return EXIT_USAGE;
    }
    if (e instanceof InterruptedError || (e as Error | undefined)?.name === 'InterruptedError') {
      // (from the pipeline, or from scoring cancelled inside the compute worker)
      const n = removeOwnTemporariesSync();
      process.stderr.write(interruptedMessage(n));
      const sig = e instanceof InterruptedError ? e.signal : interruptRequested();
      return sig === 'SIGTERM' ? EXIT_TERMINATED : EXIT_INTERRUPTED;
    }
    process.stderr.write(`musc: error: ${formatError(e)}\n`);
    return exitCodeFor(e);
  } finally {
    await shutdownCompute().catch(() => undefined);
  }
}

const EXIT_TERMINATED = 143;

function interruptedMessage(removed: number): string {
  return (
    `musc: interrupted${removed ? ` (removed ${removed} temporary file${removed > 1 ? 's' : ''})` : ''}` +
    `; completed outputs and cached features are kept: run the same command again to resume\n`
  );
}

/** Immediate exit on a second signal: temporaries removed, exit 130 (143 for SIGTERM). */
function exitInterrupted(sig: NodeJS.Signals): never {
  process.stderr.write(interruptedMessage(removeOwnTemporariesSync()));
  process.exit(sig === 'SIGTERM' ? EXIT_TERMINATED : EXIT_INTERRUPTED);
}

// run when executed directly (not when imported by tests)
function invokedDirectly(): boolean {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}
if (invokedDirectly()) {
  // Ctrl-C / SIGTERM: the pipeline stops at its next step (InterruptedError, see main()); a
  // second signal, or a step still running after 20 s, exits at once
  const onSignal = (sig: NodeJS.Signals) => () => {
    if (interruptRequested()) exitInterrupted(sig);
    requestInterrupt(sig);
    process.stderr.write(`\nmusc: stopping after the current step (${sig}; again to stop at once)\n`);
    setTimeout(() => exitInterrupted(sig), 20_000).unref();
  };
  // (`musc api` drains on its own signal handlers: requests in flight complete)
  if (process.argv[2] !== 'api') {
    process.on('SIGINT', onSignal('SIGINT'));
    process.on('SIGTERM', onSignal('SIGTERM'));
  }
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
