/**
 * One benchmark case, run in its own process (so that its peak RSS is its own):
 *   node dist/bench/case.js '<json CaseSpec>'
 * Prints one JSON line with the per-stage times, peak RSS and the MSM comparison.
 */
import { performance } from 'node:perf_hooks';
import { readdirSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { loadBackbone } from '../src/backbones/registry.js';
import { FeatureStore } from '../src/features/store.js';
import { stackStages, stackTokens } from '../src/features/stack.js';
import { scorePatches, upsampleMaps, imageScoresFromMaps, rscin } from '../src/scoring/musc.js';
import { computeMetrics } from '../src/metrics/index.js';
import { shutdownCompute, computeWorker, sharedFeatures } from '../src/compute/worker.js';
import { DEFAULT_FEATURE_STORAGE } from '../src/pipeline/types.js';
import { layerNormImages, aggregateStage, lnamdTarget } from '../src/core/lnamd.js';
import { generateSynthetic } from '../src/demo/synthetic.js';
import { writeRandomClip, VIT_B_16, VIT_L_14 } from './random-vit.js';
import type { StageFeatures } from '../src/core/types.js';
import type { MsmComparison } from './msm.js';

export interface CaseSpec {
  name: string;
  /** 'resnet50' or a random ViT: 'vit-b-16' | 'vit-l-14' */
  backbone: string;
  imageSize: number;
  /** real images: a category folder in MVTec layout; else synthetic images are generated */
  category?: string;
  n: number;
  batchSize: number;
  /** also run the straightforward MSM on stage 0, r = 1, for the comparison */
  compare: boolean;
  /** repeats of the MSM comparison (best of) */
  reps?: number;
  /** only time the backbone graph on `n` random inputs (no data, no scoring) */
  backboneOnly?: boolean;
}

export interface BackboneResult {
  name: string;
  backbone: string;
  image_size: number;
  n: number;
  batch_size: number;
  load_ms: number;
  ms_per_image: number;
  peak_rss_mb: number;
}

export interface CaseResult {
  name: string;
  n: number;
  image_size: number;
  backbone: string;
  grid: [number, number];
  channels: number;
  ms_per_image: Record<'decode' | 'backbone' | 'lnamd' | 'msm' | 'rscin' | 'metrics' | 'total', number>;
  peak_rss_mb: number;
  image_auroc: number | null;
  feature_storage: string;
  msm?: MsmComparison;
}

function listImages(category: string, n: number): { files: string[]; labels: number[] } {
  const root = join(category, 'test');
  const files: string[] = [],
    labels: number[] = [];
  for (const type of readdirSync(root).sort()) {
    for (const f of readdirSync(join(root, type)).sort()) {
      files.push(join(root, type, f));
      labels.push(type === 'good' ? 0 : 1);
    }
  }
  // an even spread when fewer are asked for
  if (n >= files.length) return { files, labels };
  const pick = Array.from({ length: n }, (_, i) => Math.floor((i * files.length) / n));
  return { files: pick.map((i) => files[i]), labels: pick.map((i) => labels[i]) };
}

/** Writes random weights for the bench's ViTs; returns the registry name and weight file. */
async function backboneFor(spec: CaseSpec, tmp: string): Promise<{ name: string; weightsPath?: string }> {
  if (!spec.backbone.startsWith('vit-')) return { name: spec.backbone };
  const weightsPath = join(tmp, 'random.safetensors');
  await writeRandomClip(weightsPath, spec.backbone === 'vit-l-14' ? VIT_L_14 : VIT_B_16);
  return { name: spec.backbone === 'vit-l-14' ? 'clip-vit-l-14' : 'clip-vit-b-16', weightsPath };
}

async function runBackbone(spec: CaseSpec): Promise<BackboneResult> {
  const tmp = mkdtempSync(join(tmpdir(), 'musc-bench-'));
  try {
    const { name, weightsPath } = await backboneFor(spec, tmp);
    let t0 = performance.now();
    const backbone = await loadBackbone(name, { imageSize: spec.imageSize, weightsPath, cacheDir: join(tmp, 'cache') });
    const S = backbone.imageSize;
    const batch = new Float32Array(spec.batchSize * 3 * S * S).map((_, i) => Math.sin(i * 0.37));
    await backbone.extract(batch, spec.batchSize); // warm-up
    const loadMs = performance.now() - t0;
    t0 = performance.now();
    const rounds = Math.max(1, Math.round(spec.n / spec.batchSize));
    for (let r = 0; r < rounds; r++) await backbone.extract(batch, spec.batchSize);
    const ms = (performance.now() - t0) / (rounds * spec.batchSize);
    await backbone.dispose();
    return {
      name: spec.name,
      backbone: name,
      image_size: S,
      n: rounds * spec.batchSize,
      batch_size: spec.batchSize,
      load_ms: Math.round(loadMs),
      ms_per_image: Math.round(ms * 10) / 10,
      peak_rss_mb: 0,
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

async function run(spec: CaseSpec): Promise<CaseResult> {
  const tmp = mkdtempSync(join(tmpdir(), 'musc-bench-'));
  try {
    let category = spec.category;
    if (!category || !existsSync(category)) {
      const defective = Math.max(1, Math.round(spec.n / 5));
      const set = await generateSynthetic(join(tmp, 'data'), {
        good: spec.n - defective,
        defective,
        size: Math.min(spec.imageSize, 256),
        seed: 3,
      });
      category = join(set.root, set.category);
    }
    const { files, labels } = listImages(category, spec.n);
    const { name, weightsPath } = await backboneFor(spec, tmp);
    const backbone = await loadBackbone(name, { imageSize: spec.imageSize, weightsPath, cacheDir: join(tmp, 'cache') });
    const S = backbone.imageSize;
    const N = files.length;
    const t = { decode: 0, backbone: 0, lnamd: 0, msm: 0, rscin: 0, metrics: 0 };
    // features of all images through the FeatureStore (the pipeline's one extraction loop, no cache)
    const storage = DEFAULT_FEATURE_STORAGE;
    const store = new FeatureStore({ backbone, storage, batchSize: spec.batchSize, badFiles: 'error' });
    const { images } = await store.extract(files.map((path) => ({ path })));
    const feats = images.map((im) => im.features);
    const stages: StageFeatures[] = stackStages(feats, store.dims!, storage, sharedFeatures);
    const { data: tokens, d } = stackTokens(feats, store.tokenDim);
    t.decode = store.timings.decode;
    t.backbone = store.timings.backbone;
    await backbone.dispose();
    const ps = await scorePatches(stages);
    t.lnamd = ps.timings!.lnamdMs;
    t.msm = ps.timings!.msmMs;
    let t0 = performance.now();
    const maps = upsampleMaps(ps, S, S);
    const scores = rscin(imageScoresFromMaps(maps, N), { n: N, d, data: tokens }, [1, 2, 3]);
    t.rscin = performance.now() - t0;
    t0 = performance.now();
    const m = computeMetrics({ imageScores: scores, imageLabels: labels });
    t.metrics = performance.now() - t0;

    let msm: MsmComparison | undefined;
    if (spec.compare) {
      // the same stage-0, r = 1 bank both ways, in the compute worker
      const target = lnamdTarget(stages);
      const z = aggregateStage(stages[0], layerNormImages(stages[0]), 1, target);
      msm = await computeWorker().call<MsmComparison>(new URL('./msm.js', import.meta.url).href, 'compareOnBank', [
        z,
        N,
        target.gridH * target.gridW,
        target.channels,
        spec.reps ?? 3,
      ]);
    }
    const total = Object.values(t).reduce((a, b) => a + b, 0);
    const per = (v: number) => Math.round((v / N) * 100) / 100;
    return {
      name: spec.name,
      n: N,
      image_size: S,
      backbone: name,
      grid: [stages[0].h, stages[0].w],
      channels: stages[0].c,
      ms_per_image: {
        decode: per(t.decode),
        backbone: per(t.backbone),
        lnamd: per(t.lnamd),
        msm: per(t.msm),
        rscin: per(t.rscin),
        metrics: per(t.metrics),
        total: per(total),
      },
      peak_rss_mb: 0,
      image_auroc: m.image_auroc,
      feature_storage: storage,
      msm,
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const spec = JSON.parse(process.argv[2]) as CaseSpec;
const result = spec.backboneOnly ? await runBackbone(spec) : await run(spec);
await shutdownCompute();
result.peak_rss_mb = Math.round(process.resourceUsage().maxRSS / 1024);
process.stdout.write(JSON.stringify(result) + '\n');
