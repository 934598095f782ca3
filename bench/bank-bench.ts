/**
 * Helpers of the bank studies (bank-study.ts, bank-latency.ts): the category's images split by
 * label, folders of symbolic links (the data is never copied), the musc CLI as a child process
 * (timed, with its peak RSS from /usr/bin/time when present), the truth of predicted names.
 */
import { spawnSync } from 'node:child_process';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { existsSync } from 'node:fs';
import { mkdir, rm, symlink } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { openDataset } from '../src/datasets/index.js';
import type { DatasetItem } from '../src/datasets/types.js';
import type { Truth } from './bank-eval.js';

const cliMain = resolve(dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const TIME = '/usr/bin/time';

/** The options every bank study takes; `flags` = what follows `--` (passed to musc run / bank build). */
export interface StudyOptions {
  data: string;
  category: string;
  out: string;
  json?: string;
  flags: string[];
}

/**
 * Parses --data (default ../shared/data), --category, --out, --json and the study's own options
 * (`own`, returned raw in `values`); a missing --category or --out throws `usage`.
 */
export function studyOptions(
  usage: string,
  own: NonNullable<ParseArgsConfig['options']>,
): { common: StudyOptions; values: Record<string, string | boolean | undefined> } {
  const { values, positionals } = parseArgs({
    options: {
      data: { type: 'string', default: '../shared/data' },
      category: { type: 'string' },
      out: { type: 'string' },
      json: { type: 'string' },
      ...own,
    },
    allowPositionals: true,
  });
  const v = values as Record<string, string | boolean | undefined>;
  if (typeof v.category !== 'string' || typeof v.out !== 'string') throw new Error(`usage: ${usage}`);
  const common: StudyOptions = { data: resolve(String(v.data)), category: v.category, out: resolve(v.out), flags: positionals };
  if (typeof v.json === 'string') common.json = resolve(v.json);
  return { common, values: v };
}

/** A category's test images, good and defective, each sorted by path. */
export interface Split {
  root: string;
  good: DatasetItem[];
  defective: DatasetItem[];
}

export async function categoryImages(data: string, category: string): Promise<Split> {
  const ds = await openDataset(data);
  const cat = await ds.load(category);
  const byRel = (a: DatasetItem, b: DatasetItem): number => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0);
  const good = cat.items.filter((it) => it.label === 0).sort(byRel);
  const defective = cat.items.filter((it) => it.label === 1).sort(byRel);
  if (good.length === 0 || defective.length === 0) throw new Error(`${data} ${category}: needs good and defective test images`);
  return { root: cat.root, good, defective };
}

/** The name predict gives an image linked by linkFolder: '<defect>/<file>'. */
export const linkName = (it: DatasetItem): string => `${it.defect}/${basename(it.path)}`;

/** Replaces `dir` with <defect>/<file> links to the items' files. */
export async function linkFolder(dir: string, items: DatasetItem[]): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  for (const it of items) {
    await mkdir(join(dir, it.defect), { recursive: true });
    await symlink(it.path, join(dir, linkName(it)));
  }
}

/** n items spread evenly over `items` (the middle of each of n equal slices): deterministic. */
export function spread<T>(items: T[], n: number): T[] {
  return Array.from({ length: n }, (_, i) => items[Math.floor(((i + 0.5) * items.length) / n)]!);
}

/** The truth of predicted names (linkName of the items). */
export function truthOfItems(items: DatasetItem[]): (name: string) => Truth | undefined {
  const m = new Map(items.map((it) => [linkName(it), { label: it.label as 0 | 1, masks: it.masks }]));
  return (name) => m.get(name);
}

export interface CliRun {
  args: string[];
  seconds: number;
  /** peak resident memory of the process (MB), when /usr/bin/time is present */
  maxRssMb: number | null;
  stdout: string;
}

/** Runs `musc ARGS` (node dist/src/cli/main.js); throws with its stderr when it fails. */
export function musc(args: string[]): CliRun {
  const timed = existsSync(TIME);
  const cmd = timed ? TIME : process.execPath;
  const argv = timed ? ['-f', 'musc-max-rss-kb=%M', process.execPath, cliMain, ...args] : [cliMain, ...args];
  process.stderr.write(`$ musc ${args.join(' ')}\n`);
  const t0 = performance.now();
  const r = spawnSync(cmd, argv, { encoding: 'utf8', maxBuffer: 64 << 20 });
  const seconds = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`musc ${args.join(' ')} exited ${r.status}:\n${r.stderr}`);
  const rss = /musc-max-rss-kb=(\d+)/.exec(r.stderr ?? '');
  return { args, seconds, maxRssMb: rss ? Number(rss[1]) / 1024 : null, stdout: r.stdout };
}

/** The value of a flag in a pass-through flag list (`--weights X` or `--weights=X`). */
export function flagValue(flags: string[], name: string): string | undefined {
  for (let i = 0; i < flags.length; i++) {
    if (flags[i] === name) return flags[i + 1];
    if (flags[i]!.startsWith(`${name}=`)) return flags[i]!.slice(name.length + 1);
  }
  return undefined;
}

/** The pass-through flags predict also needs (the bank holds every other setting). */
export function predictFlags(flags: string[]): string[] {
  return ['--weights', '--device'].flatMap((f) => {
    const v = flagValue(flags, f);
    return v === undefined ? [] : [f, v];
  });
}

/** Machine facts printed with the results. */
export function machine(): { cpus: number; model: string; load_1min: number; node: string } {
  const c = cpus();
  return { cpus: c.length, model: c[0]?.model ?? '', load_1min: loadavg()[0]!, node: process.version };
}
