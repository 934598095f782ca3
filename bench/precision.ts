/**
 * The accuracy cost of the fast MSM precision on real data, next to the exact mode:
 *   node dist/bench/precision.js [categories...]   (default: bottle glass magnetic_tile)
 * Runs the whole pipeline (default settings, resnet50) twice per category of ../shared/data and
 * prints the metrics of both modes, their difference in points, and the scoring times.
 */
import { resolve, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { runDataset } from '../src/pipeline/run-dataset.js';
import { DEFAULT_SETTINGS } from '../src/config.js';
import { loadBackbone } from '../src/backbones/registry.js';
import * as core from '../src/core/musc.js';
import { computeMetrics } from '../src/metrics/index.js';
import { shutdownCompute } from '../src/compute/worker.js';
import type { Scorer } from '../src/pipeline/types.js';
import { writeFileAtomic } from '../src/io/atomic.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const data = join(process.env.MUSC_SHARED ?? resolve(root, '../shared'), 'data');
const cats = process.argv.slice(2).length ? process.argv.slice(2) : ['bottle', 'glass', 'magnetic_tile'];
const KEYS = ['image_auroc', 'image_f1max', 'image_ap', 'pixel_auroc', 'pixel_f1max', 'pixel_ap', 'pixel_pro', 'aupro'] as const;

const scorer = (precision: 'exact' | 'fast'): Scorer => ({
  scorePatches: (st, o) => core.scorePatches(st, { ...o, precision }),
  upsampleMaps: core.upsampleMaps,
  imageScoresFromMaps: core.imageScoresFromMaps,
  rscin: core.rscin,
});

const rows: Record<string, unknown>[] = [];
for (const cat of cats) {
  const res: Record<string, { metrics: Record<string, number | null>; scoring_ms: number }> = {};
  for (const precision of ['exact', 'fast'] as const) {
    const out = mkdtempSync(join(tmpdir(), 'musc-prec-'));
    try {
      const r = await runDataset({
        data, out, settings: { ...DEFAULT_SETTINGS, category: cat, heatmaps: 'none' },
        loadBackbone, scorer: scorer(precision), metrics: computeMetrics,
      });
      const c = r.results[0];
      res[precision] = { metrics: Object.fromEntries(KEYS.map((k) => [k, (c.metrics as unknown as Record<string, number | null>)?.[k] ?? null])), scoring_ms: c.timings.scoring };
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }
  const diff = Object.fromEntries(KEYS.map((k) => {
    const a = res.exact.metrics[k], b = res.fast.metrics[k];
    return [k, a === null || b === null ? null : Math.round(100 * (b - a) * 1e4) / 1e4];
  }));
  const line = (m: Record<string, number | null>) => KEYS.map((k) => (m[k] === null ? '-' : (100 * m[k]!).toFixed(2))).join(' | ');
  console.log(`${cat}\n  exact | ${line(res.exact.metrics)} | scoring ${(res.exact.scoring_ms / 1000).toFixed(1)} s`);
  console.log(`  fast  | ${line(res.fast.metrics)} | scoring ${(res.fast.scoring_ms / 1000).toFixed(1)} s`);
  console.log(`  diff (points): ${JSON.stringify(diff)}`);
  rows.push({ category: cat, ...res, diff_points: diff });
}
await shutdownCompute();
await writeFileAtomic(resolve(root, 'bench', 'precision.json'), JSON.stringify({ keys: KEYS, rows }, null, 2) + '\n');
