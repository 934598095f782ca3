/**
 * A small `musc run` output folder for the report tests, without a backbone: synthetic images
 * (src/demo/synthetic.ts, MVTec layout with masks) and fabricated maps (a blurred mask plus
 * noise for defective images, noise plus a weak random bump for good ones), written with the
 * real output writers (writeCategoryOutputs, summary.json).
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { generateSynthetic, mulberry32 } from '../../src/demo/synthetic.js';
import { openDataset } from '../../src/datasets/index.js';
import { loadMask } from '../../src/datasets/masks.js';
import { writeCategoryOutputs, type WriteOptions } from '../../src/outputs/category.js';
import { summaryJson, type SummaryEntry } from '../../src/outputs/summary.js';
import { writeFileAtomic } from '../../src/io/atomic.js';
import { evaluateImages } from '../../src/metrics/evaluator.js';
import type { CategoryResult } from '../../src/pipeline/types.js';

/** compiled tests live two levels below the repo root (dist/test or .build/NAME/test) */
export const buildRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const repoRoot = ((): string => {
  let d = buildRoot;
  while (!existsSync(join(d, 'package.json')) && dirname(d) !== d) d = dirname(d);
  return d;
})();
export const artifactsDir = join(repoRoot, 'test-artifacts');

export async function tempDir(prefix: string): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `musc-${prefix}-`));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface FixtureCategory {
  name: string;
  good: number;
  defective: number;
  seed: number;
}

export interface Fixture {
  data: string;
  out: string;
  size: number;
}

/** [S, S] box blur of radius r. */
function blur(a: Float32Array, S: number, r: number): Float32Array {
  const out = new Float32Array(S * S);
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++) {
      let s = 0;
      let n = 0;
      for (let dy = -r; dy <= r; dy++)
        for (let dx = -r; dx <= r; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy < 0 || xx < 0 || yy >= S || xx >= S) continue;
          s += a[yy * S + xx]!;
          n++;
        }
      out[y * S + x] = s / n;
    }
  return out;
}

/** The fixture's repeated-anomaly pair: the first two defective items (indices in item = scores.csv order). */
export function repeatPair(items: { label: 0 | 1 | null }[]): [number, number] {
  const bad = items.flatMap((it, i) => (it.label === 1 ? [i] : []));
  return [bad[0]!, bad[1]!];
}

/** Generates data under <dir>/data and outputs under <dir>/out. */
export async function makeFixture(dir: string, cats: FixtureCategory[], size = 96): Promise<Fixture> {
  const data = join(dir, 'data');
  const out = join(dir, 'out');
  for (const c of cats) await generateSynthetic(data, { category: c.name, good: c.good, defective: c.defective, size, seed: c.seed });
  const ds = await openDataset(data, 'mvtec');
  const entries: SummaryEntry[] = [];
  for (const c of cats) {
    const cat = await ds.load(c.name);
    const rnd = mulberry32(c.seed + 7);
    const N = cat.items.length;
    const S = size;
    const maps = new Float32Array(N * S * S); // [N, S, S]
    for (let k = 0; k < N; k++) {
      const it = cat.items[k]!;
      const m = new Float32Array(S * S);
      if (it.masks) {
        const mask = await loadMask(it.masks, S, 'nonzero');
        const amp = 0.35 + 0.65 * rnd();
        for (let i = 0; i < m.length; i++) m[i] = amp * mask[i]!;
      } else {
        const cx = Math.floor(rnd() * S);
        const cy = Math.floor(rnd() * S);
        const amp = 0.5 * rnd();
        for (let y = Math.max(0, cy - 4); y < Math.min(S, cy + 4); y++)
          for (let x = Math.max(0, cx - 4); x < Math.min(S, cx + 4); x++) m[y * S + x] = amp;
      }
      const b = blur(m, S, 2);
      for (let i = 0; i < b.length; i++) maps[k * S * S + i] = b[i]! + 0.05 * rnd();
    }
    const imageScores = new Float64Array(N);
    for (let k = 0; k < N; k++) {
      let mx = -Infinity;
      for (let i = 0; i < S * S; i++) mx = Math.max(mx, maps[k * S * S + i]!);
      imageScores[k] = mx;
    }
    // a stand-in for RsCIN: a small deterministic change of the raw score
    const rscinScores = Float64Array.from(imageScores, (s, k) => s * (0.95 + 0.001 * k));
    const labels = cat.items.map((it) => it.label);
    const bad = repeatPair(cat.items);
    const auc = evaluateImages(rscinScores, labels).curves.roc?.auc ?? null;
    const r: CategoryResult = {
      name: cat.name,
      kind: 'mvtec',
      root: cat.root,
      items: cat.items,
      skipped: [],
      size: S,
      maps,
      imageScores,
      rscinScores,
      masks: null,
      metrics: {
        image_auroc: auc,
        image_f1max: 0.9,
        image_ap: 0.91,
        pixel_auroc: 0.95,
        pixel_f1max: 0.6,
        pixel_ap: 0.55,
        pixel_pro: 0.8,
        aupro: 0.7,
      },
      subsets: [cat.items.map((_, i) => i)],
      // the repeated-anomaly filter scored the first two defective images without each other
      repeatFilter: [
        { images: 2, excludedPairs: 2, leftOut: cat.items.map((_, i) => (i === bad[0] ? [bad[1]!] : i === bad[1] ? [bad[0]!] : [])) },
      ],
      divideNum: 1,
      estimatedBytes: 1e6,
      timings: { decode: 10, backbone: 200, scoring: 50, lnamd: 10, msm: 35, rscin: 1, metrics: 5, write: 0 },
      warnings: [],
    };
    const info: WriteOptions['info'] = {
      settings: { category: c.name, backbone: 'fake', r_list: [1, 3, 5], dataset: 'mvtec' },
      data_root: ds.root,
      backbone: { name: 'fake', weights_path: '', weights_sha256: '', image_size: S, stages: [1, 2] },
    };
    const w = await writeCategoryOutputs(out, r, { heatmaps: 'none', visNorm: 'image', info });
    entries.push({ category: c.name, metrics: w.metrics });
  }
  await writeFileAtomic(join(out, 'summary.json'), JSON.stringify(summaryJson('mvtec', 'fake', size, entries), null, 2) + '\n');
  return { data, out, size };
}
