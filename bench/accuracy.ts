/**
 * The accuracy cost of a faster or more compact setting on real data, next to the exact one:
 *   node dist/bench/accuracy.js precision [categories...]   MSM precision: exact vs fast
 *   node dist/bench/accuracy.js storage [categories...]     feature storage: float32 vs float16
 *   node dist/bench/accuracy.js int8 [categories...]        MSM precision: fast vs int8
 *   node dist/bench/accuracy.js repeats [categories...]     repeated-anomaly filter: off vs on (its cost: scoring time)
 * (default categories: bottle glass magnetic_tile of ../shared/data). Runs the whole pipeline
 * (default settings, resnet50, no feature cache) once per value and category, and prints the
 * metrics of both, their difference in points and the scoring times; writes bench/<study>.json.
 */
import { resolve, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { runDataset } from '../src/pipeline/run-dataset.js';
import { DEFAULT_SETTINGS, type Settings } from '../src/config.js';
import { loadBackbone } from '../src/backbones/registry.js';
import { computeMetrics } from '../src/metrics/index.js';
import { shutdownCompute } from '../src/compute/worker.js';
import type { Scorer } from '../src/pipeline/types.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { localScorer } from '../src/pipeline/local-scorer.js';

const STUDIES = {
  precision: { key: 'msm_precision', exact: 'exact', other: 'fast' },
  storage: { key: 'feature_storage', exact: 'float32', other: 'float16' },
  int8: { key: 'msm_precision', exact: 'fast', other: 'int8' },
  repeats: { key: 'repeat_filter', exact: 'off', other: 'on' },
} as const;

const study = process.argv[2] as keyof typeof STUDIES;
if (!(study in STUDIES)) {
  console.error(`usage: node dist/bench/accuracy.js ${Object.keys(STUDIES).join('|')} [categories...]`);
  process.exit(2);
}
const { key, exact, other } = STUDIES[study];
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const data = join(process.env.MUSC_SHARED ?? resolve(root, '../shared'), 'data');
const cats = process.argv.slice(3).length ? process.argv.slice(3) : ['bottle', 'glass', 'magnetic_tile'];
const KEYS = ['image_auroc', 'image_f1max', 'image_ap', 'pixel_auroc', 'pixel_f1max', 'pixel_ap', 'pixel_pro', 'aupro'] as const;

const scorer: Scorer = localScorer;

const rows: Record<string, unknown>[] = [];
for (const cat of cats) {
  const res: Record<string, { metrics: Record<string, number | null>; scoring_ms: number; peak_rss_mb?: number }> = {};
  for (const value of [exact, other]) {
    const out = mkdtempSync(join(tmpdir(), 'musc-acc-'));
    try {
      const settings: Settings = { ...DEFAULT_SETTINGS, category: cat, heatmaps: 'none', cache: false, [key]: value };
      const r = await runDataset({ data, out, settings, loadBackbone, scorer, metrics: computeMetrics });
      const c = r.results[0]!;
      res[value] = {
        metrics: Object.fromEntries(KEYS.map((k) => [k, (c.metrics as unknown as Record<string, number | null>)?.[k] ?? null])),
        scoring_ms: c.timings.scoring,
      };
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }
  const diff = Object.fromEntries(
    KEYS.map((k) => {
      const a = res[exact]!.metrics[k],
        b = res[other]!.metrics[k];
      return [k, a === null || b === null ? null : Math.round(100 * (b - a) * 1e4) / 1e4];
    }),
  );
  const line = (m: Record<string, number | null>) => KEYS.map((k) => (m[k] === null ? '-' : (100 * m[k]!).toFixed(2))).join(' | ');
  console.log(`${cat} (${KEYS.join(' | ')})`);
  for (const v of [exact, other])
    console.log(`  ${v.padEnd(7)} | ${line(res[v]!.metrics)} | scoring ${(res[v]!.scoring_ms / 1000).toFixed(1)} s`);
  console.log(`  diff (points): ${JSON.stringify(diff)}`);
  rows.push({ category: cat, ...res, diff_points: diff });
}
await shutdownCompute();
await writeFileAtomic(
  resolve(root, 'bench', `${study}.json`),
  JSON.stringify({ study, setting: key, values: [exact, other], keys: KEYS, rows }, null, 2) + '\n',
);
