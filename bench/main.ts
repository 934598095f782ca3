/**
 * `npm run bench` (`-- --quick` for a reduced run in under 3 minutes).
 *
 * Prints, side by side in one run: the machine's GEMM peak for the MSM's product shape and the
 * GFLOPS the MSM reaches; the straightforward per-image scoring (the reference's form) against
 * the project's block scoring on the same features, with their time ratio and max abs
 * difference; ms/image per stage and peak RSS for each case; the MSM scaling line in N.
 * Writes bench/results.json (bench/results-quick.json with --quick).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { resolve, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { writeFileAtomic } from '../src/io/atomic.js';
import { scaling, compareMsm } from './msm.js';
import { shutdownCompute } from '../src/compute/worker.js';
import type { CaseSpec, CaseResult, BackboneResult } from './case.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const quick = process.argv.includes('--quick');
const shared = process.env.MUSC_SHARED ?? resolve(root, '../shared');
const bottle = join(shared, 'data', 'bottle');

const cases: CaseSpec[] = quick
  ? [
      {
        name: 'resnet50 bottle (20 of 83)',
        backbone: 'resnet50',
        imageSize: 224,
        category: bottle,
        n: 20,
        batchSize: 8,
        compare: true,
        reps: 1,
      },
      { name: 'random ViT-B/16 @224, N=20', backbone: 'vit-b-16', imageSize: 224, n: 20, batchSize: 4, compare: true, reps: 1 },
    ]
  : [
      { name: 'resnet50 bottle, N=83', backbone: 'resnet50', imageSize: 224, category: bottle, n: 1000, batchSize: 8, compare: true },
      { name: 'random ViT-B/16 @224, N=100', backbone: 'vit-b-16', imageSize: 224, n: 100, batchSize: 4, compare: true },
      { name: 'random ViT-L/14 @518, N=20', backbone: 'vit-l-14', imageSize: 518, n: 20, batchSize: 1, compare: true },
    ];

const backboneCases: CaseSpec[] = [
  { name: 'resnet50 @224', backbone: 'resnet50', imageSize: 224, n: quick ? 8 : 32, batchSize: 8, compare: false, backboneOnly: true },
  { name: 'resnet50 @320', backbone: 'resnet50', imageSize: 320, n: quick ? 8 : 32, batchSize: 8, compare: false, backboneOnly: true },
  {
    name: 'random ViT-B/16 @224',
    backbone: 'vit-b-16',
    imageSize: 224,
    n: quick ? 4 : 16,
    batchSize: 4,
    compare: false,
    backboneOnly: true,
  },
  ...(quick
    ? []
    : [{ name: 'random ViT-L/14 @518', backbone: 'vit-l-14', imageSize: 518, n: 4, batchSize: 1, compare: false, backboneOnly: true }]),
];

function runCase<T>(spec: CaseSpec): T | { name: string; error: string } {
  if (spec.category && !existsSync(spec.category)) return { name: spec.name, error: `data not found: ${spec.category}` };
  const r = spawnSync(process.execPath, [join(here, 'case.js'), JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (r.status !== 0) return { name: spec.name, error: (r.stderr || `exit ${r.status}`).trim().split('\n').slice(-3).join(' ') };
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

const f1 = (v: number) => v.toFixed(1);
console.log(`musc benchmark${quick ? ' (quick)' : ''}: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}`);

console.log('\nBackbone graphs (random input, batch as listed):');
const backbones: (BackboneResult | { name: string; error: string })[] = [];
for (const spec of backboneCases) {
  const r = runCase<BackboneResult>(spec);
  backbones.push(r);
  if ('error' in r) console.log(`  ${spec.name.padEnd(24)} failed: ${r.error}`);
  else
    console.log(
      `  ${spec.name.padEnd(24)} ${String(r.ms_per_image).padStart(8)} ms/image  ` +
        `(batch ${r.batch_size}, load ${r.load_ms} ms, peak RSS ${r.peak_rss_mb} MB)`,
    );
}

const results: (CaseResult | { name: string; error: string })[] = [];
for (const spec of cases) {
  process.stdout.write(`\n${spec.name} ...\n`);
  const r = runCase<CaseResult>(spec);
  results.push(r);
  if ('error' in r) {
    console.log(`  failed: ${r.error}`);
    continue;
  }
  const m = r.ms_per_image;
  console.log(
    `  grid ${r.grid.join('x')}, C ${r.channels}, N ${r.n}, features stored as ${r.feature_storage}; ` +
      `image AUROC ${r.image_auroc === null ? '-' : f1(100 * r.image_auroc)}`,
  );
  console.log(
    `  ms/image: decode ${m.decode}  backbone ${m.backbone}  lnamd ${m.lnamd}  msm ${m.msm}  ` +
      `rscin ${m.rscin}  metrics ${m.metrics}  total ${m.total}`,
  );
  console.log(`  peak RSS ${r.peak_rss_mb} MB`);
  if (r.msm) {
    const s = r.msm;
    console.log(
      `  MSM (stage 0, r=1): GEMM peak ${f1(s.gemm_peak_gflops)} GFLOPS ` +
        `for [${s.block[0] * s.p} x ${s.c}] x [${s.c} x ${s.block[1] * s.p}]; ` +
        `MSM ${f1(s.msm_gflops)} GFLOPS = ${f1(100 * s.msm_fraction_of_peak)}% of peak`,
    );
    console.log(
      `  straightforward ${s.straightforward_s.toFixed(2)} s vs project ${s.project_s.toFixed(2)} s ` +
        `(best of ${spec.reps ?? 3} alternating runs): ${s.speedup_vs_straightforward.toFixed(2)}x, ` +
        `max abs diff ${s.max_abs_diff.toExponential(2)}`,
    );
    console.log(
      `  optional int8 precision: ${s.int8_s.toFixed(2)} s (${(s.project_s / s.int8_s).toFixed(2)}x the default), ` +
        `max abs score diff to the default ${s.int8_max_abs_diff.toExponential(2)}`,
    );
    console.log(
      `  Euclidean form (--norm-exponent, same unit bank): ${s.euclidean_s.toFixed(2)} s (${(s.euclidean_s / s.project_s).toFixed(2)}x the unit form), ` +
        `max abs score diff ${s.euclidean_max_abs_diff.toExponential(2)}`,
    );
    console.log(
      `  with nearest indices (--density-exponent): ${s.indexed_s.toFixed(2)} s (${(s.indexed_s / s.project_s).toFixed(2)}x the default), ` +
        `distances ${s.indexed_same_distances ? 'the same bits' : 'DIFFERENT'}`,
    );
  }
}

console.log(`\nMSM on random unit features (P = 784, C = 1024, N = ${quick ? 8 : 12}), default precision: project vs straightforward`);
const exactCmp = await compareMsm(quick ? 8 : 12, 784, 1024, quick ? 1 : 3);
console.log(
  `  peak ${f1(exactCmp.gemm_peak_gflops)} GFLOPS, MSM ${f1(exactCmp.msm_gflops)} (${f1(100 * exactCmp.msm_fraction_of_peak)}%), ` +
    `${exactCmp.speedup_vs_straightforward.toFixed(2)}x, max abs diff ${exactCmp.max_abs_diff.toExponential(2)}; ` +
    `int8 ${(exactCmp.project_s / exactCmp.int8_s).toFixed(2)}x faster again`,
);

const ns = quick ? [10, 20, 40] : [25, 50, 100, 200];
const sp = quick ? 196 : 784;
console.log(`\nScaling: one MSM pass, random unit features, P = ${sp}, C = 1024`);
const sc = await scaling(ns, sp, 1024);
for (const [i, n] of sc.n.entries()) console.log(`  N = ${String(n).padStart(3)}: ${sc.seconds[i].toFixed(2)} s`);
console.log(`  fitted exponent: ${sc.exponent.toFixed(2)} (expected 2)`);
await shutdownCompute();

const out = resolve(root, 'bench', quick ? 'results-quick.json' : 'results.json'); // a quick run never overwrites the full results
mkdirSync(dirname(out), { recursive: true });
const json = {
  quick,
  machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
  cases: results.map((r) =>
    'error' in r
      ? r
      : {
          name: r.name,
          n: r.n,
          image_size: r.image_size,
          backbone: r.backbone,
          grid: r.grid,
          channels: r.channels,
          gemm_peak_gflops: r.msm?.gemm_peak_gflops,
          msm_gflops: r.msm?.msm_gflops,
          msm_fraction_of_peak: r.msm?.msm_fraction_of_peak,
          speedup_vs_straightforward: r.msm?.speedup_vs_straightforward,
          max_abs_diff: r.msm?.max_abs_diff,
          int8_s: r.msm?.int8_s,
          int8_max_abs_diff: r.msm?.int8_max_abs_diff,
          euclidean_s: r.msm?.euclidean_s,
          euclidean_max_abs_diff: r.msm?.euclidean_max_abs_diff,
          indexed_s: r.msm?.indexed_s,
          indexed_same_distances: r.msm?.indexed_same_distances,
          ms_per_image: r.ms_per_image,
          peak_rss_mb: r.peak_rss_mb,
          image_auroc: r.image_auroc,
          feature_storage: r.feature_storage,
        },
  ),
  backbones,
  random_features: exactCmp,
  scaling: { p: sp, c: 1024, ...sc },
};
await writeFileAtomic(out, JSON.stringify(json, null, 2) + '\n');
console.log(`\nwrote ${out}`);
