/**
 * `musc predict` latency per image vs bank size and MSM precision, with the accuracy at each size
 * where the category has enough good images, and the memory of a bank per image:
 *
 *   node dist/bench/bank-latency.js --data ../shared/data --category magnetic_tile --out /tmp/lat \
 *     [--sizes 8,16,32,64] [--precisions fast,int8] [--projects none,128] [--min-predicted-good 20] [--latency-images 6] [-- BANK FLAGS]
 *
 *   accuracy sizes (size <= good - min-predicted-good): bank = the first `size` good test images
 *     (sorted by path); predicted = one fixed set for every such size: the good images after the
 *     largest of these banks and every defective image
 *   latency-only sizes: bank = the first `size` images of good (all) then defective (from the end);
 *     predicted = the first --latency-images defective images (never in the bank)
 *
 * Each bank is built once (`musc bank build` with the flags after `--`, default precision) and
 * predicted with each precision (`musc predict --msm-precision P`; the thresholds are the bank's
 * calibration, made at the bank's precision, also for int8 rows) one image per call (`--batch-size 1`)
 * in one process: latency = median over the images after the first of decode + backbone +
 * scoring + post-processing (predictions.json timings; the first call also aggregates the bank).
 * With --projects, each size gets one bank per value (`--project K` at build; none = all channels),
 * each predicted with each precision: columns `fast`, `fast p128`, ...
 * Sizes, banks and precisions alternate in one run, so their ratios are measured under the same load.
 * Where accuracy is measured: z_good_median and z_defective_median (bank-eval.ts calibrationZ),
 * where the predicted images fall against the bank's calibration.
 * Memory: the bank directory's bytes per image; in RAM, the bank's float16 features and float32
 * tokens plus the float32 LNAMD features predict keeps per (stage, r) (computed from the shapes);
 * and the predict process's peak RSS (/usr/bin/time). Writes OUT/latency-<category>.json.
 */
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BankManifest } from '../src/bank/types.js';
import type { DatasetItem } from '../src/datasets/types.js';
import {
  categoryImages,
  linkFolder,
  machine,
  musc,
  predictFlags,
  type Split,
  type StudyOptions,
  studyOptions,
  truthOfItems,
} from './bank-bench.js';
import { calibrationZ, evaluatePredictions } from './bank-eval.js';

interface Options extends StudyOptions {
  sizes: number[];
  precisions: string[];
  /** 'none' or K of `--project K` */
  projects: string[];
  minPredictedGood: number;
  latencyImages: number;
}

const intList = (s: string): number[] => s.split(',').map((x) => Number.parseInt(x, 10));

function options(): Options {
  const { common, values: v } = studyOptions('bank-latency --data DIR --category NAME --out DIR [--sizes ...] [-- FLAGS]', {
    sizes: { type: 'string', default: '8,16,32,64' },
    precisions: { type: 'string', default: 'fast,int8' },
    projects: { type: 'string', default: 'none' },
    'min-predicted-good': { type: 'string', default: '20' },
    'latency-images': { type: 'string', default: '6' },
  });
  return {
    ...common,
    sizes: intList(String(v.sizes)),
    precisions: String(v.precisions).split(','),
    projects: String(v.projects).split(','),
    minPredictedGood: Number(v['min-predicted-good']),
    latencyImages: Number(v['latency-images']),
  };
}

interface Plan {
  size: number;
  accuracy: boolean;
  bank: DatasetItem[];
  predicted: DatasetItem[];
}

function plans(o: Options, s: Split): Plan[] {
  const acc = o.sizes.filter((n) => n <= s.good.length - o.minPredictedGood);
  const fixed = [...s.good.slice(Math.max(0, ...acc)), ...s.defective];
  return o.sizes.map((size) => {
    if (acc.includes(size)) return { size, accuracy: true, bank: s.good.slice(0, size), predicted: fixed };
    const extra = Math.max(0, size - s.good.length);
    if (extra + o.latencyImages > s.defective.length) throw new Error(`bank size ${size}: not enough images in ${o.category}`);
    const bank = [...s.good.slice(0, size), ...s.defective.slice(s.defective.length - extra)];
    return { size, accuracy: false, bank, predicted: s.defective.slice(0, o.latencyImages) };
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Timing {
  decodeMs: number;
  backboneMs: number;
  scoringMs: number;
  postMs: number;
}

/** Latency of one-image calls from predictions.json (the first call also aggregates the bank: reported apart). */
async function latency(dir: string): Promise<Record<string, number>> {
  const ps = (JSON.parse(await readFile(join(dir, 'predictions.json'), 'utf8')) as { predictions: { timings: Timing }[] }).predictions;
  const warm = ps.slice(1).map((p) => p.timings);
  const total = (t: Timing): number => t.decodeMs + t.backboneMs + t.scoringMs + t.postMs;
  return {
    images: ps.length,
    per_image_ms: median(warm.map(total)),
    scoring_ms: median(warm.map((t) => t.scoringMs)),
    backbone_ms: median(warm.map((t) => t.backboneMs)),
    decode_post_ms: median(warm.map((t) => t.decodeMs + t.postMs)),
    first_image_ms: total(ps[0]!.timings),
  };
}

/** Bytes of the bank per image: on disk (its files), and in RAM (from the shapes). */
async function bankMemory(bank: string): Promise<Record<string, number>> {
  const files = await readdir(bank);
  let disk = 0;
  for (const f of files) disk += (await stat(join(bank, f))).size;
  const m = JSON.parse(await readFile(join(bank, 'manifest.json'), 'utf8')) as BankManifest;
  const n = m.images.length,
    st = m.features.stages;
  const features = st.reduce((a, s) => a + s.h * s.w * s.c * 2, 0) + m.features.token_dim * 4;
  const lnamd = st.length * m.scoring.r_list.length * st[0]!.h * st[0]!.w * st[0]!.c * 4; // Z [P, C] float32 per (stage, r)
  return { images: n, disk_bytes: disk, disk_bytes_per_image: disk / n, ram_features_per_image: features, ram_lnamd_per_image: lnamd };
}

/** The column of a precision with a bank's projection: 'fast', 'fast p128'. */
const column = (prec: string, project: string): string => (project === 'none' ? prec : `${prec} p${project}`);
const columns = (o: Options): string[] => o.projects.flatMap((pj) => o.precisions.map((prec) => column(prec, pj)));

async function measure(o: Options, p: Plan): Promise<Record<string, unknown>> {
  const links = join(o.out, 'links', `bank-${p.size}`);
  await linkFolder(join(links, 'bank'), p.bank);
  await linkFolder(join(links, 'predict'), p.predicted);
  const row: Record<string, unknown> = {
    size: p.size,
    accuracy_measured: p.accuracy,
    bank_defective: p.bank.filter((it) => it.label === 1).length,
  };
  for (const pj of o.projects) {
    const bank = join(o.out, `bank-${p.size}${pj === 'none' ? '' : `-p${pj}`}.bank`);
    const project = pj === 'none' ? [] : ['--project', pj];
    const b = musc(['bank', 'build', '--data', join(links, 'bank'), '--out', bank, '--force', '-q', ...project, ...o.flags]);
    // build time and memory per bank: `banks[K or none]`; the first bank's also as the row's build_s and memory
    row.banks ??= {};
    const banks = row.banks as Record<string, unknown>;
    banks[pj] = { build_s: b.seconds, memory: await bankMemory(bank) };
    if (!('build_s' in row)) Object.assign(row, banks[pj]);
    for (const prec of o.precisions) row[column(prec, pj)] = await predictRow(o, p, links, bank, prec, column(prec, pj));
  }
  return row;
}

/** One bank predicted at one precision, one image per call: latency, memory and (where measured) accuracy. */
async function predictRow(o: Options, p: Plan, links: string, bank: string, prec: string, label: string): Promise<Record<string, unknown>> {
  const out = join(o.out, `predict-${p.size}-${label.replace(' ', '-')}`);
  const args = ['predict', '--bank', bank, join(links, 'predict'), '--out', out, '--batch-size', '1', '--msm-precision', prec];
  const r = musc([...args, '--no-pictures', '--no-report', '-q', ...predictFlags(o.flags)]);
  const e = p.accuracy ? await evaluatePredictions(out, truthOfItems(p.predicted)) : null;
  const z = p.accuracy ? await calibrationZ(out, bank, truthOfItems(p.predicted)) : null;
  return {
    predict_s: r.seconds,
    predict_max_rss_mb: r.maxRssMb,
    latency: await latency(out),
    ...(e ? { image_auroc: e.image_auroc, recall: e.recall, false_alarm: e.false_alarm, found: e.found, flagged: e.flagged } : {}),
    ...(e ? { predicted_good: e.good, predicted_defective: e.defective } : {}),
    ...(z ?? {}),
  };
}

function markdown(o: Options, rows: Record<string, unknown>[]): string {
  const f = (x: unknown, d = 3): string => (typeof x === 'number' ? x.toFixed(d) : '-');
  const cols = columns(o);
  const head = `| bank images | build | ${cols.map((p) => `${p}: ms per image (scoring) | ${p}: AUROC, recall, false alarms`).join(' | ')} |`;
  const lines = rows.map((r) => {
    const cells = cols.map((p) => {
      const x = r[p] as {
        latency: Record<string, number>;
        image_auroc?: number;
        found?: number;
        flagged?: number;
        predicted_good?: number;
        predicted_defective?: number;
      };
      const acc =
        x.image_auroc === undefined
          ? 'latency only'
          : `${f(x.image_auroc)}, ${x.found}/${x.predicted_defective}, ${x.flagged}/${x.predicted_good}`;
      return `${f(x.latency.per_image_ms, 0)} (${f(x.latency.scoring_ms, 0)}) | ${acc}`;
    });
    return `| ${r.size} | ${f(r.build_s, 1)} s | ${cells.join(' | ')} |`;
  });
  return [head, `|${'---|'.repeat(2 + 2 * cols.length)}`, ...lines].join('\n');
}

async function main(): Promise<void> {
  const o = options();
  const split = await categoryImages(o.data, o.category);
  const started = new Date().toISOString();
  const load = machine();
  const rows: Record<string, unknown>[] = [];
  for (const p of plans(o, split)) rows.push(await measure(o, p));
  const result = {
    study: 'bank-latency',
    category: o.category,
    data: o.data,
    flags: o.flags,
    started,
    machine: { ...load, load_1min_end: machine().load_1min },
    rows,
  };
  const text = JSON.stringify(result, null, 2) + '\n';
  await writeFile(join(o.out, `latency-${o.category}.json`), text);
  if (o.json) await writeFile(o.json, text);
  process.stdout.write(markdown(o, rows) + '\n');
}

main().catch((e: Error) => {
  process.stderr.write(`${e.message}\n`);
  process.exitCode = 1;
});
