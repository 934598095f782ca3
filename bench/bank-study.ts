/**
 * Label-free verdicts of `musc bank build` + `musc predict` on one category, next to `musc run`'s
 * label-using result:
 *
 *   node dist/bench/bank-study.js --data ../shared/data --category glass --out /tmp/study [-- RUN FLAGS]
 *
 *   clean:  bank = the first half of the good test images (sorted by path); predicted = the other
 *           good images and every defective one
 *   mixed:  bank = the same good half plus defective images making --contamination (default 0.1)
 *           of the bank (unlabeled; spread evenly over the defective images sorted by path);
 *           predicted = the rest (those defective images are left out)
 *   run:    `musc run` on the whole category: recall and false alarms at its F1-optimal threshold
 *           (metrics.json f1_threshold, on scores.csv score_rscin), image and pixel AUROC
 *
 * Flags after `--` (e.g. --backbone, --image-size, --stages, --r-list, --msm-precision) go to both
 * `musc run` and `musc bank build`; predict takes the rest from the bank (--weights and --device
 * are passed on). Everything runs through the CLI (node dist/src/cli/main.js), one step at a time;
 * the images are linked, not copied, into OUT/links/. predict writes its maps (--save-maps) and
 * bank-eval.ts evaluates them. Writes OUT/study-<category>.json (and --json FILE) and prints
 * markdown rows.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DatasetItem } from '../src/datasets/types.js';
import { confusionAt } from '../src/metrics/confusion.js';
import { categoryFolder } from '../src/outputs/category.js';
import { parseScoresCsv } from '../src/outputs/scores.js';
import {
  categoryImages,
  type CliRun,
  linkFolder,
  machine,
  musc,
  predictFlags,
  spread,
  type StudyOptions,
  studyOptions,
  truthOfItems,
} from './bank-bench.js';
import { evaluatePredictions, type PredictEvaluation } from './bank-eval.js';

interface Options extends StudyOptions {
  contamination: number;
  skipRun: boolean;
}

function options(): Options {
  const { common, values: v } = studyOptions(
    'bank-study --data DIR --category NAME --out DIR [--contamination 0.1] [--skip-run] [--json FILE] [-- FLAGS]',
    { contamination: { type: 'string', default: '0.1' }, 'skip-run': { type: 'boolean', default: false } },
  );
  const contamination = Number(v.contamination);
  if (!(contamination >= 0 && contamination < 1)) throw new Error(`--contamination ${v.contamination}: a fraction in [0, 1)`);
  return { ...common, contamination, skipRun: v['skip-run'] === true };
}

interface BankRow {
  bank: { good: number; defective: number; defective_names: string[]; build_s: number; build_max_rss_mb: number | null };
  predicted: { good: number; defective: number; predict_s: number; predict_max_rss_mb: number | null };
  result: PredictEvaluation;
}

async function bankRow(o: Options, name: string, bankItems: DatasetItem[], predicted: DatasetItem[]): Promise<BankRow> {
  const links = join(o.out, 'links', name);
  await linkFolder(join(links, 'bank'), bankItems);
  await linkFolder(join(links, 'predict'), predicted);
  const bank = join(o.out, `${name}.bank`),
    pred = join(o.out, `predict-${name}`);
  const b: CliRun = musc(['bank', 'build', '--data', join(links, 'bank'), '--out', bank, '--force', '-q', ...o.flags]);
  const p = musc([
    'predict',
    '--bank',
    bank,
    join(links, 'predict'),
    '--out',
    pred,
    '--no-pictures',
    '--save-maps',
    '--no-report',
    '-q',
    ...predictFlags(o.flags),
  ]);
  const defective = bankItems.filter((it) => it.label === 1);
  return {
    bank: {
      good: bankItems.length - defective.length,
      defective: defective.length,
      defective_names: defective.map((it) => it.rel),
      build_s: b.seconds,
      build_max_rss_mb: b.maxRssMb,
    },
    predicted: {
      good: predicted.filter((it) => it.label === 0).length,
      defective: predicted.filter((it) => it.label === 1).length,
      predict_s: p.seconds,
      predict_max_rss_mb: p.maxRssMb,
    },
    result: await evaluatePredictions(pred, truthOfItems(predicted)),
  };
}

interface RunResult {
  seconds: number | null;
  images: number;
  good: number;
  defective: number;
  f1_threshold: number;
  recall: number;
  false_alarm: number;
  found: number;
  flagged: number;
  image_auroc: number | null;
  pixel_auroc: number | null;
}

/** `musc run` on the whole category (or, with --skip-run, the results already in OUT/run). */
async function runRow(o: Options): Promise<RunResult> {
  const out = join(o.out, 'run');
  const r = o.skipRun
    ? null
    : musc([
        'run',
        '--data',
        o.data,
        '--category',
        o.category,
        '--out',
        out,
        '--heatmaps',
        'none',
        '--no-report',
        '--no-cache',
        '-q',
        ...o.flags,
      ]);
  const dir = join(out, categoryFolder(o.category));
  const metrics = JSON.parse(await readFile(join(dir, 'metrics.json'), 'utf8')) as Record<string, number | null>;
  const rows = parseScoresCsv(await readFile(join(dir, 'scores.csv'), 'utf8'));
  const t = metrics.f1_threshold;
  if (typeof t !== 'number') throw new Error(`${dir}/metrics.json: no f1_threshold`);
  const c = confusionAt(
    rows.map((x) => x.score_rscin),
    rows.map((x) => x.label),
    t,
  );
  return {
    seconds: r?.seconds ?? null,
    images: rows.length,
    good: c.fp + c.tn,
    defective: c.tp + c.fn,
    f1_threshold: t,
    recall: c.tp / (c.tp + c.fn),
    false_alarm: c.fp / (c.fp + c.tn),
    found: c.tp,
    flagged: c.fp,
    image_auroc: metrics.image_auroc ?? null,
    pixel_auroc: metrics.pixel_auroc ?? null,
  };
}

const f3 = (x: number | null | undefined): string => (x === null || x === undefined ? '-' : x.toFixed(3));

function markdown(category: string, rows: Record<string, BankRow>, run: RunResult): string {
  const lines = Object.entries(rows).map(([, r]) => {
    const e = r.result,
      px = e.pixel;
    const bank = `${r.bank.good} good${r.bank.defective ? ` + ${r.bank.defective} defective` : ''}`;
    return (
      `| ${category} | ${bank} | ${e.defective} def + ${e.good} good | ${e.found}/${e.defective} (${f3(e.recall)}) | ` +
      `${e.flagged}/${e.good} (${f3(e.false_alarm)}) | ${f3(e.image_auroc)} | ${f3(px?.pixel_auroc)} | ` +
      `${f3(px?.mask_precision)} / ${f3(px?.mask_recall)} / ${f3(px?.mask_iou)} |`
    );
  });
  lines.push(
    `| ${category} | musc run, F1-optimal (labels) | all ${run.images} | ${run.found}/${run.defective} (${f3(run.recall)}) | ` +
      `${run.flagged}/${run.good} (${f3(run.false_alarm)}) | ${f3(run.image_auroc)} | ${f3(run.pixel_auroc)} | - |`,
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const o = options();
  const split = await categoryImages(o.data, o.category);
  const half = split.good.slice(0, Math.floor(split.good.length / 2));
  const restGood = split.good.slice(half.length);
  const nMixed = o.contamination > 0 ? Math.max(1, Math.round((o.contamination * half.length) / (1 - o.contamination))) : 0;
  const mixedIn = spread(split.defective, nMixed);
  const restDefective = split.defective.filter((it) => !mixedIn.includes(it));
  const started = new Date().toISOString();
  const load = machine();
  const rows: Record<string, BankRow> = { clean: await bankRow(o, 'clean', half, [...restGood, ...split.defective]) };
  if (nMixed > 0) rows.mixed = await bankRow(o, 'mixed', [...half, ...mixedIn], [...restGood, ...restDefective]);
  const run = await runRow(o);
  const result = {
    study: 'bank-study',
    category: o.category,
    data: o.data,
    flags: o.flags,
    contamination: o.contamination,
    started,
    machine: { ...load, load_1min_end: machine().load_1min },
    rows,
    run,
  };
  const text = JSON.stringify(result, null, 2) + '\n';
  await writeFile(join(o.out, `study-${o.category}.json`), text);
  if (o.json) await writeFile(o.json, text);
  process.stdout.write(
    '| category | bank | predicted | defective found (recall) | good flagged (false alarms) | image AUROC | pixel AUROC | ' +
      'mask pixel precision / recall / IoU |\n|---|---|---|---|---|---|---|---|\n' +
      markdown(o.category, rows, run) +
      '\n',
  );
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exitCode = 1;
});
