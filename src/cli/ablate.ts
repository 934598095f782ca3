/**
 * `musc ablate --data DIR [--category NAME] [--study r|msm|rscin|divide|shots|all] [--quick]`:
 * the paper's ablation tables on one category. Backbone features are extracted once; one set of
 * MSM distance tables (per stage and r) serves every row (src/ablate/passes.ts), and each row
 * gets its own reduction, maps, RsCIN and metrics. Prints a markdown table; with --out also writes
 * ablate.md and ablate.json there.
 */
import type { Device } from '../compute/session.js';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command, Option } from 'commander';
import { writeFileAtomic } from '../io/atomic.js';
import { prepareOutputFolder } from '../outputs/out-dir.js';
import { openDataset, selectCategories, defaultKList } from '../datasets/index.js';
import { rscinWindows } from '../config.js';
import { type Category, DATASET_KINDS, DatasetError, type DatasetItem, type DatasetKind } from '../datasets/types.js';
import { loadMask, MASK_RULES, type MaskRule } from '../datasets/masks.js';
import { DEFAULT_BACKBONE, loadBackbone } from '../backbones/registry.js';
import { defaultDegrees, resolveNormExponent } from '../core/defaults.js';
import { DEFAULT_MSM_PRECISION } from '../core/kernel.js';
import { inputSizesLabel } from '../backbones/types.js';
import { computeMetrics } from '../metrics/index.js';
import { extractReferences, listReferenceImages, referenceFolder, excludeTestImages } from '../features/references.js';
import { ablationMarkdown, runAblation } from '../ablate/run.js';
import { parseStudies, studyRows, SHOT_COUNTS, type StudyName } from '../ablate/studies.js';
import type { MetricsFn } from '../pipeline/types.js';
import { checkBackbone } from './tokens.js';
import {
  accuracyOptions,
  accuracySettings,
  type AccuracyFlags,
  backboneOptions,
  deviceOption,
  intListArg,
  posIntArg,
  wrapArg,
} from './args.js';
import { parseImageScoreRule } from '../core/maps.js';
import { ABLATE_HELP, REQUIRED } from './help.js';

/** --quick keeps at most this many test images */
export const QUICK_IMAGES = 32;

interface AblateFlags extends AccuracyFlags {
  data: string;
  category?: string;
  dataset?: DatasetKind;
  study: StudyName[];
  quick?: boolean;
  referenceDir?: string;
  shots?: number[];
  kList?: number[];
  backbone?: string;
  weights?: string;
  imageSize?: number;
  batchSize?: number;
  maskRule?: MaskRule;
  imageOnly?: boolean;
  device?: Device;
  out?: string;
  quiet?: boolean;
}

/** `count` items evenly spaced over the dataset order (which groups the defect types), order kept. */
export function evenlySpaced<T>(items: T[], count: number): T[] {
  if (items.length <= count) return items;
  return Array.from({ length: count }, (_, k) => items[Math.floor((k * items.length) / count)]!);
}

export function ablateCommand(): Command {
  const located = new Command('ablate')
    .description("the paper's ablation studies on one category (features extracted once), printed as a table")
    .requiredOption('--data <dir>', REQUIRED + 'data folder (labelled layouts: mvtec, btad, mpdd, visa, loco)')
    .option('--category <name>', 'the category (required when the data holds several)')
    .addOption(new Option('--dataset <layout>', 'dataset layout (default: detected)').choices([...DATASET_KINDS]));
  const cmd = accuracyOptions(backboneOptions(located, false))
    .option(
      '--study <names>',
      'r, msm, rscin, divide, shots, all, or a comma list (default: all)',
      wrapArg(parseStudies),
      parseStudies('all'),
    )
    .option('--quick', `at most ${QUICK_IMAGES} test images (evenly spaced) and image metrics only`)
    .option('--reference-dir <dir>', 'shots study: reference images (default: the last good test images, held out)')
    .option('--shots <list>', `shots study: reference counts (default: ${SHOT_COUNTS.join(',')})`, intListArg('--shots'))
    .option('--k-list <list>', 'RsCIN windows of the baseline (default: visa 1,8,9, others 1,2,3)', intListArg('--k-list'))
    .option('--batch-size <n>', 'images per backbone batch (default: 4)', posIntArg)
    .addOption(new Option('--mask-rule <rule>', 'mask binarisation (default: reference)').choices([...MASK_RULES]))
    .option('--image-only', 'image metrics only (no pixel metrics)')
    .addOption(deviceOption())
    .option('--out <dir>', 'also write ablate.md and ablate.json here')
    .option('-q, --quiet', 'no information lines')
    .addHelpText('after', ABLATE_HELP);
  cmd.action(runAblateCommand);
  return cmd;
}

interface AblationCategory {
  ds: Awaited<ReturnType<typeof openDataset>>;
  cat: Category;
  items: DatasetItem[];
  refFiles: string[];
}

/** The one labelled category, its (quick) items, the study rows and the reference images. */
async function ablationCategory(f: AblateFlags): Promise<AblationCategory> {
  const ds = await openDataset(resolve(f.data), f.dataset);
  if (ds.kind === 'folder') throw new DatasetError(`${ds.root}: ablations need labels (a layout like MVTec AD), not a plain folder`);
  const cats = selectCategories(ds, f.category);
  if (cats.length !== 1)
    throw new DatasetError(`${ds.root} holds ${cats.length} categories: choose one with --category (${cats.join(', ')})`);
  const cat = await ds.load(cats[0]!);
  let items: DatasetItem[] = cat.items;
  if (items.length < 3) throw new DatasetError(`category '${cat.name}': ${items.length} images, an ablation needs at least 3`);
  if (f.quick) items = evenlySpaced(items, QUICK_IMAGES);
  if (items.some((it) => it.label === null)) throw new DatasetError(`category '${cat.name}': images without labels; ablations need labels`);
  let refFiles: string[] = [];
  if (f.referenceDir && f.study.includes('shots')) {
    const listed = await listReferenceImages(await referenceFolder(resolve(f.referenceDir), cat.name));
    refFiles = (await excludeTestImages(listed, items)).files;
    if (refFiles.length === 0) throw new DatasetError('every reference image is also a test image');
  }
  return { ds, cat, items, refFiles };
}

/** Masks [N, S, S] when pixel metrics are wanted and every defective image has one. */
async function ablationMasks(f: AblateFlags, a: AblationCategory, S: number): Promise<Uint8Array | null> {
  const { items } = a;
  const pixel = !f.quick && !f.imageOnly && items.every((it) => it.label === 0 || it.masks);
  if (!pixel) return null;
  const masks = new Uint8Array(items.length * S * S);
  for (const [k, it] of items.entries()) masks.set(await loadMask(it.masks, S, f.maskRule ?? 'reference', a.ds.kind), k * S * S);
  return masks;
}

async function runAblateCommand(f: AblateFlags): Promise<void> {
  const log = (s: string): void => {
    if (!f.quiet) process.stderr.write(`${s}\n`);
  };
  const name = f.backbone ?? DEFAULT_BACKBONE;
  checkBackbone(name);
  const a = await ablationCategory(f);
  const { cat, items, refFiles } = a;
  if (f.out) await prepareOutputFolder(f.out, f.data); // before the backbone
  const acc = accuracySettings(f);
  const bb = await loadBackbone(name, {
    ...(f.imageSize ? { imageSize: f.imageSize } : {}),
    ...(acc.borderPad !== undefined ? { borderPad: acc.borderPad } : {}),
    fuseSizes: acc.fuseSizes ?? 'auto', // as musc run
    ...(f.weights ? { weightsPath: resolve(f.weights) } : {}),
    device: f.device ?? 'cpu',
  });
  const S = bb.imageSize;
  // RsCIN auto: by the loaded backbone's family (as runs and banks)
  const kList = rscinWindows({ ...(f.kList ? { k_list: f.kList } : {}), rscin: acc.rscin }, defaultKList(a.ds.kind), bb.info.family);
  // the rscin study measures the dataset's windows (or --k-list) even when the baseline has RsCIN off
  // the r study also measures the backbone's per-stage default degrees (core/defaults.ts), when it has them
  const stageDefault = defaultDegrees(bb).stageRList;
  const rows = studyRows(f.study, kList, f.shots ?? SHOT_COUNTS, f.kList ?? defaultKList(a.ds.kind), stageDefault ? [stageDefault] : []);
  let t0 = performance.now();
  let feats: Awaited<ReturnType<typeof extractReferences>>;
  try {
    const refs = refFiles.length ? ` + ${refFiles.length} references` : '';
    log(`ablate: ${cat.name}, ${items.length} images${refs}, ${name} at ${inputSizesLabel(bb)}: extracting features once`);
    feats = await extractReferences([...items.map((it) => it.path), ...refFiles], bb, { batchSize: f.batchSize ?? 4 });
  } finally {
    await bb.dispose();
  }
  const tExtract = performance.now() - t0;
  const masks = await ablationMasks(f, a, S);
  t0 = performance.now();
  const metrics: MetricsFn = (m) => computeMetrics(m);
  const input = { items, stages: feats.stages, tokens: feats.tokens, external: refFiles.length, masks, size: S, rows, metrics };
  // the features of musc run: its norm exponent for the loaded backbone (core/defaults.ts)
  const normExponent = resolveNormExponent(bb, undefined, DEFAULT_MSM_PRECISION);
  const res = await runAblation({ ...input, imageScore: parseImageScoreRule(acc.imageScore), device: f.device ?? 'cpu', normExponent });
  const tRows = performance.now() - t0;
  for (const w of res.warnings) process.stderr.write(`warning: ${w}\n`);
  const held = `references: the last ${res.references.length} good test images, held out in the shots rows`;
  const refNote = res.references.length ? (refFiles.length ? `references from ${f.referenceDir}` : held) : '';
  const title = `MuSc ablations: ${a.ds.kind}/${cat.name}, ${name} at ${inputSizesLabel(bb)}${f.quick ? ' (quick)' : ''}`;
  const md = ablationMarkdown(title, res.rows) + (refNote ? `\n${refNote}\n` : '');
  process.stdout.write(`\n${md}\n`);
  log(`features ${(tExtract / 1000).toFixed(1)} s (once), MSM tables + ${res.rows.length} rows ${(tRows / 1000).toFixed(1)} s`);
  if (f.out) {
    await writeAblationOutputs(resolve(f.out), md, { name, S, quick: !!f.quick, normExponent }, a, res);
    log(`ablate: written to ${resolve(f.out)}`);
  }
}

/** ablate.md and ablate.json. */
async function writeAblationOutputs(
  out: string,
  md: string,
  run: { name: string; S: number; quick: boolean; normExponent: number },
  a: AblationCategory,
  res: Awaited<ReturnType<typeof runAblation>>,
): Promise<void> {
  const { items, refFiles } = a;
  await writeFileAtomic(join(out, 'ablate.md'), md);
  const json = {
    dataset: a.ds.kind,
    category: a.cat.name,
    backbone: run.name,
    image_size: run.S,
    norm_exponent: run.normExponent,
    quick: run.quick,
    n_images: items.length,
    references: res.references.map((i) => (i < items.length ? items[i]!.rel : refFiles[i - items.length]!)),
    rows: res.rows.map((r) => ({
      study: r.study,
      setting: r.setting,
      r_list: r.rList,
      ...(r.stageRList ? { stage_r_list: r.stageRList } : {}),
      reduce: r.reduce,
      k_list: r.kList,
      divide: r.divide,
      shots: r.shots,
      mode: r.mode,
      n_test: r.nTest,
      n_ref: r.nRef,
      ...r.metrics,
    })),
  };
  await writeFileAtomic(join(out, 'ablate.json'), JSON.stringify(json, null, 2) + '\n');
}
