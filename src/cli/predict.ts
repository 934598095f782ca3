/**
 * `musc predict --bank NAME.bank IMAGES...|DIR --out OUT`: OK / NG, scores, defect regions, masks
 * and composites for new images, scored against a bank (src/bank/). Files: src/bank/outputs.ts.
 * Inputs are read and scored in batches (memory stays flat however many images); an unreadable
 * input is skipped with its reason; every output file is written atomically.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import { Command } from 'commander';
import { readThresholdArg, thresholdsOf } from '../bank/calibration.js';
import { type WrittenPrediction, writeMapFile, writePictures, writePredictTables } from '../bank/outputs.js';
import { calibrationFor, closeBank, DEFAULT_PREDICT_BATCH, predict } from '../bank/predict.js';
import { readBank } from '../bank/store.js';
import type { ImageInput, PredictOptions } from '../bank/types.js';
import type { MsmPrecision } from '../core/kernel.js';
import { relPosix } from '../datasets/paths.js';
import { DatasetError } from '../datasets/types.js';
import { writeReportOrWarn } from '../report/commit.js';
import { registerOutputDir, removeStaleTemporaries } from '../outputs/temp-files.js';
import { checkInterrupted } from '../pipeline/interrupt.js';
import { listReferenceImages } from '../features/references.js';
import { deviceOption, intListArg, maxPixelsOption, msmPrecisionOption, posIntArg } from './args.js';
import { describeBank, falseAlarmArg } from './bank.js';
import { createProgress } from './progress.js';

interface PredictFlags {
  bank: string;
  out: string;
  threshold?: string;
  falseAlarm?: number;
  backbone?: string;
  imageSize?: number;
  stages?: number[];
  weights?: string;
  kList?: number[];
  msmPrecision?: MsmPrecision;
  device?: 'cpu' | 'cuda';
  batchSize?: number;
  maxPixels?: number;
  pictures?: boolean;
  saveMaps?: boolean;
  report?: boolean;
  quiet?: boolean;
}

/** The input files: files as given (named by their base name), folders listed recursively (named by relative path). */
export async function predictInputs(args: string[]): Promise<{ name: string; path: string }[]> {
  const out: { name: string; path: string }[] = [];
  for (const a of args) {
    const p = resolve(a);
    const st = await stat(p).catch(() => null);
    if (!st) throw new DatasetError(`${a}: no such file or folder`);
    if (st.isDirectory()) out.push(...(await listReferenceImages(p)).map((f) => ({ name: relPosix(p, f), path: f })));
    else out.push({ name: basename(p), path: p });
  }
  const seen = new Map<string, number>();
  return out.map((o) => {
    const k = seen.get(o.name) ?? 0;
    seen.set(o.name, k + 1);
    return k === 0 ? o : { ...o, name: `${o.name.replace(/(\.[^.]+)?$/, `_${k}$1`)}` };
  });
}

async function readInputs(files: { name: string; path: string }[], skipped: { name: string; reason: string }[]): Promise<ImageInput[]> {
  const out: ImageInput[] = [];
  for (const f of files) {
    try {
      out.push({ name: f.name, bytes: await readFile(f.path) });
    } catch (e) {
      skipped.push({ name: f.name, reason: `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
    }
  }
  return out;
}

async function run(images: string[], f: PredictFlags): Promise<void> {
  const bank = await readBank(resolve(f.bank));
  const out = resolve(f.out);
  const log = (l: string): void => void (f.quiet ? undefined : process.stderr.write(`${l}\n`));
  const files = await predictInputs(images);
  if (files.length === 0) throw new DatasetError(`no images found in ${images.join(', ')}`);
  const thr = f.threshold !== undefined ? await readThresholdArg(f.threshold) : undefined;
  const opts: PredictOptions = {
    maps: f.pictures !== false || f.saveMaps === true,
    falseAlarm: f.falseAlarm,
    threshold: thr?.image,
    pixelThreshold: thr?.pixel,
    expect: { backbone: f.backbone, imageSize: f.imageSize, stages: f.stages },
    weightsPath: f.weights ? resolve(f.weights) : undefined,
    kList: f.kList,
    precision: f.msmPrecision,
    device: f.device,
    maxPixels: f.maxPixels,
  };
  const th = thresholdsOf(calibrationFor(bank, f.kList), f.falseAlarm, { image: thr?.image, pixel: thr?.pixel });
  log(describeBank(bank).join('\n'));
  registerOutputDir(out);
  await removeStaleTemporaries(out);
  const bar = createProgress(!f.quiet);
  const written: WrittenPrediction[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const bs = f.batchSize ?? DEFAULT_PREDICT_BATCH;
  try {
    bar?.start('predict', files.length);
    for (let b = 0; b < files.length; b += bs) {
      checkInterrupted();
      const inputs = await readInputs(files.slice(b, b + bs), skipped);
      if (inputs.length === 0) continue;
      const res = await predict(bank, inputs, { ...opts, onProgress: (step, d) => bar?.update(b + d, files.length, step) });
      skipped.push(...res.skipped);
      for (const p of res.predictions) {
        const w = await writePictures(out, inputs.find((i) => i.name === p.name)!, p, f.pictures !== false);
        written.push(f.saveMaps ? { ...w, map_file: await writeMapFile(out, p) } : w);
        bar?.update(written.length + skipped.length, files.length, 'write');
      }
    }
  } finally {
    bar?.stop();
    await closeBank(bank);
  }
  for (const s of skipped) process.stderr.write(`warning: skipped ${s.name}: ${s.reason}\n`);
  for (const p of written) for (const w of p.warnings) process.stderr.write(`warning: ${w}\n`);
  if (written.length === 0)
    throw new DatasetError(`none of the ${files.length} inputs could be read (first: ${skipped[0]?.name}: ${skipped[0]?.reason})`);
  const source = f.threshold !== undefined ? `--threshold ${f.threshold}` : `bank ${bank.path} calibration, false-alarm ${th.falseAlarm}`;
  await writePredictTables(out, {
    bank,
    thresholds: { image: th.image, pixel: th.pixel, falseAlarm: f.threshold !== undefined ? null : th.falseAlarm, source },
    predictions: written,
    skipped,
  });
  const ng = written.filter((p) => p.verdict === 'NG').length;
  process.stdout.write(
    `musc predict: ${written.length} images: ${ng} NG, ${written.length - ng} OK${skipped.length ? `, ${skipped.length} skipped` : ''} ` +
      `(image threshold ${th.image.toPrecision(6)}, ${source}); ` +
      `outputs in ${out} (predictions.csv, regions.csv${f.pictures !== false ? ', masks/, composites/' : ''}` +
      `${f.saveMaps ? ', maps/' : ''}` +
      `${f.report !== false ? ', report.html' : ''})\n`,
  );
  if (f.report !== false) await writeReportOrWarn(out, log);
}

export function predictCommand(): Command {
  const cmd = new Command('predict')
    .description('OK / NG, scores and defect regions for new images, scored against a bank (musc bank build)')
    .argument('<images...>', 'image files and/or folders (searched recursively)')
    .requiredOption('--bank <bank>', '(required) bank directory (musc bank build)')
    .requiredOption('--out <dir>', '(required) output folder')
    .option(
      '--threshold <value|file>',
      'image threshold on the score: a number, or a threshold.json written by predict (default: the bank calibration)',
    )
    .option('--false-alarm <rate>', "target false-alarm rate of the calibrated thresholds (default: the bank's, 0.01)", falseAlarmArg)
    .option('--backbone <name>', "must be the bank's (checked; default: the bank's)")
    .option('--image-size <px>', "must be the bank's (checked)", posIntArg)
    .option('--stages <list>', "must be the bank's (checked)", intListArg('--stages'))
    .option('--weights <file>', "the weight file the bank was built with, if not the registry's")
    .option('--k-list <list>', "RsCIN window sizes (default: the bank's); 0 disables", intListArg('--k-list'))
    .addOption(msmPrecisionOption("the bank's"))
    .addOption(deviceOption())
    .option('--batch-size <n>', `images scored per batch (default: ${DEFAULT_PREDICT_BATCH})`, posIntArg)
    .addOption(maxPixelsOption())
    .option('--no-pictures', 'no masks/ and composites/ (tables only)')
    .option('--save-maps', "also write maps/<name>.safetensors: the anomaly map at the original size (F32 'map' [height, width])")
    .option('--no-report', 'do not write report.html (musc report OUT writes it later)')
    .option('-q, --quiet', 'no progress bar or information lines')
    .addHelpText(
      'after',
      '\nExamples:\n  musc predict --bank bottle.bank new/ --out results\n' +
        '  musc predict --bank bottle.bank a.png b.png --out results --false-alarm 0.001\n' +
        '  musc predict --bank bottle.bank new/ --out results --threshold results/threshold.json',
    );
  cmd.action(async (images: string[], f: PredictFlags) => run(images, f));
  return cmd;
}
