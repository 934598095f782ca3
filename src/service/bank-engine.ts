/**
 * The ServiceEngine on the bank library (src/bank): banks opened with openBank, predictions with
 * predict(..., { maps }) and the PNG renderers, builds with buildBank on the configured backbone.
 * Heavy work runs in the project's one compute worker (the library's calls go there).
 * Backbones for predictions are shared by every bank with the same (backbone, size, stages):
 * loading a new version of a bank (hot swap) or a second bank reuses the loaded graph; they are
 * disposed when the engine closes. A released bank is closed (its aggregated features dropped from
 * the compute worker) once no other open bank has the same content (manifest checksum).
 */

import { loadBackbone } from '../backbones/registry.js';
import type { Backbone } from '../backbones/types.js';
import type { ImagePrediction as BankPrediction } from '../bank/index.js';
import type { BankBackboneLoad } from '../bank/types.js';
import {
  type Bank,
  buildBank,
  closeBank,
  imagesOfFolder,
  openBank,
  predict,
  renderCompositePng,
  renderHeatmapPng,
  renderMaskPng,
  thresholdsOf,
} from '../bank/index.js';
import type { Device } from '../compute/session.js';
import { computeWorker, shutdownCompute } from '../compute/worker.js';
import type { ImagePrediction, InputImage, OpenedBank, PredictOutcome, RenderKind, ServiceEngine } from './engine.js';
import { RequestError } from './errors.js';

export interface BankEngineOptions {
  /** backbone of banks built by the service */
  backbone: string;
  device: Device;
}

const bankOf = (b: OpenedBank): Bank => b.handle as Bank;

function infoOf(bank: Bank): Record<string, unknown> {
  const m = bank.manifest;
  const t = thresholdsOf(bank.calibration);
  return {
    images: m.images.length,
    created: m.created,
    musc: m.software.musc,
    backbone: m.backbone.name,
    imageSize: m.backbone.image_size,
    stages: m.backbone.stages,
    /** input sizes fused with imageSize (`--fuse-sizes` at build); [] = one size */
    fuseSizes: m.backbone.fuse_sizes ?? [],
    rList: m.scoring.r_list,
    /** per-stage degrees (`--stage-r-list` at build); null: every stage at rList */
    stageRList: m.scoring.stage_r_list ?? null,
    precision: m.scoring.msm_precision,
    imageScore: m.scoring.image_score ?? 'max',
    /** `--score-grid` at build; null: the first stage's grid */
    scoreGrid: m.scoring.score_grid ?? null,
    /** `--project` at build: MSM on features projected to this many channels; null: all channels */
    project: m.scoring.project ?? null,
    /** `--norm-exponent` at build (core/lnamd.ts); 1: unit rows */
    normExponent: m.scoring.norm_exponent ?? 1,
    /** `--density-exponent` at build (core/density.ts): one exponent or one per stage; null: MSM's distances */
    densityExponent: m.scoring.density_exponent ?? null,
    /** with densityExponent: 'image' (the image scores only) or 'all' */
    densityScope: m.scoring.density_exponent === undefined ? null : (m.scoring.density_scope ?? 'all'),
    imageThreshold: t.image,
    pixelThreshold: t.pixel,
    falseAlarm: bank.calibration.false_alarm,
  };
}

function view(p: BankPrediction): ImagePrediction {
  return {
    name: p.name,
    score: p.score,
    imageScore: p.imageScore,
    normalized: p.normalized,
    verdict: p.verdict,
    threshold: p.threshold,
    pixelThreshold: p.pixelThreshold,
    width: p.width,
    height: p.height,
    regions: p.regions,
    timings: { ...p.timings },
    warnings: p.warnings,
  };
}

async function renderAll(p: BankPrediction, bytes: Buffer, kinds: readonly RenderKind[]): Promise<Partial<Record<RenderKind, Buffer>>> {
  const out: Partial<Record<RenderKind, Buffer>> = {};
  for (const k of kinds)
    out[k] =
      k === 'mask' ? await renderMaskPng(p) : k === 'heatmap' ? await renderHeatmapPng(bytes, p) : await renderCompositePng(bytes, p);
  return out;
}

/** loads each (name, size, stages, device, weights, border, fused sizes) once; the banks get views whose dispose() does nothing */
function sharedBackbones(): { load: (name: string, opts: BankBackboneLoad) => Promise<Backbone>; disposeAll: () => Promise<void> } {
  const cache = new Map<string, Promise<Backbone>>();
  return {
    load(name, opts) {
      const key = JSON.stringify([
        name,
        opts.imageSize,
        opts.stages,
        opts.device ?? 'cpu',
        opts.weightsPath ?? '',
        opts.borderPad ?? 0,
        opts.fuseSizes ?? null,
      ]);
      let p = cache.get(key);
      if (!p) {
        p = loadBackbone(name, opts);
        cache.set(key, p);
        p.catch(() => cache.delete(key));
      }
      return p.then((b) => Object.create(b, { dispose: { value: async () => undefined } }) as Backbone);
    },
    async disposeAll() {
      const all = [...cache.values()];
      cache.clear();
      for (const p of all) await (await p.catch(() => null))?.dispose();
    },
  };
}

export function createBankEngine(o: BankEngineOptions): ServiceEngine {
  const backbones = sharedBackbones();
  /** open banks per content checksum: the worker's cache of a bank's features is keyed by it */
  const openCount = new Map<string, number>();
  return {
    async open(path) {
      const bank = await openBank(path);
      const key = bank.manifest.checksum;
      openCount.set(key, (openCount.get(key) ?? 0) + 1);
      return { handle: bank, info: infoOf(bank) };
    },
    // the backbone is shared (a view whose dispose() does nothing; disposed by close())
    release: async (b) => {
      const bank = bankOf(b);
      const key = bank.manifest.checksum;
      const left = (openCount.get(key) ?? 1) - 1;
      if (left > 0) {
        openCount.set(key, left);
        bank.backbone = undefined;
        return;
      }
      openCount.delete(key);
      await closeBank(bank);
    },
    async predict(b, images: InputImage[], renders, opts): Promise<PredictOutcome[]> {
      const res = await predict(bankOf(b), images, {
        maps: renders.length > 0,
        maxPixels: opts.maxPixels,
        device: o.device,
        loadBackbone: backbones.load,
      });
      if (res.skipped.length) {
        const what = res.skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
        const n = images.length === 1 ? '' : `${res.skipped.length} of ${images.length} images unusable: `;
        throw new RequestError(422, 'bad_image', n + what, res.skipped);
      }
      const bytes = new Map(images.map((i) => [i.name, i.bytes]));
      const out: PredictOutcome[] = [];
      for (const p of res.predictions) {
        const t0 = performance.now();
        const r = await renderAll(p, bytes.get(p.name)!, renders);
        out.push({
          prediction: { ...view(p), timings: { ...p.timings, ...(renders.length ? { renderMs: performance.now() - t0 } : {}) } },
          renders: r,
        });
      }
      return out;
    },
    async build(req) {
      const { inputs, excluded } = await imagesOfFolder(req.images);
      const backbone = await loadBackbone(o.backbone, { device: o.device });
      try {
        const res = await buildBank(inputs, {
          out: req.out,
          backbone,
          device: o.device,
          maxPixels: req.maxPixels,
          onProgress: (step, done, total) => req.onProgress?.(done, total, step),
          checkCancelled: () => req.signal?.throwIfAborted(),
        });
        return { warnings: [...excluded.map((e) => `left out ${e.name}: ${e.reason}`), ...res.warnings] };
      } finally {
        await backbone.dispose();
      }
    },
    cancelCompute() {
      computeWorker().cancel();
    },
    async close() {
      await backbones.disposeAll();
      await shutdownCompute();
    },
  };
}
