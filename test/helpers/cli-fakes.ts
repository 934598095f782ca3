/**
 * Small fakes for pipeline tests: a colour-statistics "backbone" and a nearest-neighbour
 * "scorer" with the same contracts as the real ones (src/backbones/types.ts, src/core/musc.ts).
 */
import type { RgbImage } from '../../src/image/decode.js';
import { l2NormalizeRows } from '../../src/core/rscin.js';
import type { BackboneFeatures, StageFeatures, ImageTokens } from '../../src/core/types.js';
import type { PatchScores, ScoreOptions } from '../../src/scoring/musc.js';
import type { Backbone, BackboneInfo, LoadOptions } from '../../src/backbones/types.js';
import type { Scorer, MetricsFn, MetricsInput, MetricsValues } from '../../src/pipeline/types.js';
import { localScorer } from '../../src/pipeline/local-scorer.js';

/** input [3, S, S] = nearest-resized RGB / 255; one stage: mean colour of each (S/G)^2 block (G x G grid, C = 3); token = mean colour */
export function fakeBackbone(size = 32, grid = 4, fuseSizes: number[] = []): Backbone & { calls: number[] } {
  // fused sizes: each image's tensor is followed by [3, F, F] per size (types.ts inputLength), zeros here, unused
  const per = [size, ...fuseSizes].reduce((a, f) => a + 3 * f * f, 0);
  const info: BackboneInfo = {
    name: 'fake',
    family: 'resnet',
    description: 'test fake',
    imageSize: size,
    stages: [1],
    weights: { repo: 'none', file: 'none' },
  };
  const calls: number[] = [];
  return {
    info,
    imageSize: size,
    stages: [1],
    weightsPath: '/dev/null',
    weightsSha256: '0'.repeat(64),
    calls,
    ...(fuseSizes.length ? { fuseSizes } : {}),
    async preprocess(img: RgbImage): Promise<Float32Array> {
      const out = new Float32Array(per);
      for (let y = 0; y < size; y++)
        for (let x = 0; x < size; x++) {
          const sy = Math.min(img.height - 1, Math.floor(((y + 0.5) * img.height) / size));
          const sx = Math.min(img.width - 1, Math.floor(((x + 0.5) * img.width) / size));
          for (let c = 0; c < 3; c++) out[c * size * size + y * size + x] = img.data[(sy * img.width + sx) * 3 + c]! / 255;
        }
      return out;
    },
    async extract(batch: Float32Array, b: number): Promise<BackboneFeatures> {
      calls.push(b);
      const cell = size / grid;
      const data = new Float32Array(b * grid * grid * 3); // [B, G, G, 3]
      const tok = new Float32Array(b * 3);
      for (let i = 0; i < b; i++)
        for (let c = 0; c < 3; c++) {
          const plane = batch.subarray(i * per + c * size * size, i * per + (c + 1) * size * size);
          let tot = 0;
          for (let gy = 0; gy < grid; gy++)
            for (let gx = 0; gx < grid; gx++) {
              let s = 0;
              for (let y = gy * cell; y < (gy + 1) * cell; y++) for (let x = gx * cell; x < (gx + 1) * cell; x++) s += plane[y * size + x]!;
              data[((i * grid + gy) * grid + gx) * 3 + c] = s / (cell * cell);
              tot += s;
            }
          tok[i * 3 + c] = tot / (size * size);
        }
      const stage: StageFeatures<Float32Array> = { n: b, h: grid, w: grid, c: 3, data };
      const imageTokens: ImageTokens = { n: b, d: 3, data: tok };
      return { stages: [stage], imageTokens };
    },
    async dispose() {},
  };
}

/** score(i, p) = distance from patch p of image i to its nearest patch in any other image (one stage) */
export function fakeScorer(): Scorer & { subsetSizes: number[]; rLists: (number[] | undefined)[] } {
  const subsetSizes: number[] = [];
  const rLists: (number[] | undefined)[] = [];
  return {
    subsetSizes,
    rLists,
    async scorePatches(stages: StageFeatures[], opts: ScoreOptions): Promise<PatchScores> {
      const s = stages[0]!;
      subsetSizes.push(s.n);
      rLists.push(opts.rList);
      const L = s.h * s.w;
      const out = new Float64Array(s.n * L);
      for (let i = 0; i < s.n; i++)
        for (let p = 0; p < L; p++) {
          let best = Infinity;
          for (let j = 0; j < s.n; j++) {
            if (j === i) continue;
            for (let q = 0; q < L; q++) {
              let d = 0;
              for (let c = 0; c < s.c; c++) d += (s.data[(i * L + p) * s.c + c]! - s.data[(j * L + q) * s.c + c]!) ** 2;
              best = Math.min(best, d);
            }
          }
          out[i * L + p] = Math.sqrt(best);
        }
      return { n: s.n, h: s.h, w: s.w, data: out };
    },
    upsampleMaps(ps: PatchScores, outH: number, outW: number): Float32Array {
      const out = new Float32Array(ps.n * outH * outW);
      for (let i = 0; i < ps.n; i++)
        for (let y = 0; y < outH; y++)
          for (let x = 0; x < outW; x++)
            out[(i * outH + y) * outW + x] = ps.data[(i * ps.h + Math.floor((y * ps.h) / outH)) * ps.w + Math.floor((x * ps.w) / outW)]!;
      return out;
    },
    imageScoresOf(ps: PatchScores, outH: number, outW: number, _rule: unknown, _sigma: number, plain: Float32Array): Float64Array {
      const maps = ps.filtered ? this.upsampleMaps({ ...ps, data: ps.filtered.data }, outH, outW) : plain;
      const n = ps.n;
      const per = maps.length / n;
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        let m = -Infinity;
        for (let k = 0; k < per; k++) m = Math.max(m, maps[i * per + k]!);
        out[i] = m;
      }
      return out;
    },
    rscin(scores: Float64Array, _t: ImageTokens, kList: number[]): Float64Array {
      // a visible, simple transform so tests can tell the columns apart
      return kList.length === 0 || kList.includes(0) ? scores.slice() : scores.map((v) => v * 2);
    },
  };
}

/** image AUROC by pair counting; pixel AUROC likewise on the masks (small inputs only) */
export function fakeMetrics(record: MetricsInput[] = []): MetricsFn {
  const auroc = (s: ArrayLike<number>, l: ArrayLike<number>): number | null => {
    let pos = 0;
    let neg = 0;
    let win = 0;
    for (let i = 0; i < l.length; i++) l[i] ? pos++ : neg++;
    if (!pos || !neg) return null;
    for (let i = 0; i < l.length; i++)
      if (l[i]) for (let j = 0; j < l.length; j++) if (!l[j]) win += s[i]! > s[j]! ? 1 : s[i] === s[j] ? 0.5 : 0;
    return win / (pos * neg);
  };
  return (input: MetricsInput): MetricsValues => {
    record.push(input);
    return {
      image_auroc: auroc(input.imageScores, input.imageLabels),
      image_f1max: null,
      image_ap: null,
      pixel_auroc: null,
      pixel_f1max: null,
      pixel_ap: null,
      pixel_pro: null,
      aupro: null,
    };
  };
}

export const fakeLoader =
  (bb: Backbone) =>
  async (_name: string, _o: LoadOptions): Promise<Backbone> =>
    bb;

/** The fake backbone with unit image tokens (as the real backbones give them). */
export function unitTokenBackbone(size = 32, grid = 8, fuseSizes: number[] = []): Backbone {
  const f = fakeBackbone(size, grid, fuseSizes);
  return {
    ...f,
    extract: async (x, b) => {
      const r = await f.extract(x, b);
      l2NormalizeRows(r.imageTokens.data, r.imageTokens.n, r.imageTokens.d);
      return r;
    },
  };
}

/** The real local scorer, recording the options of every scorePatches call in `seen`. */
export function spyScorer(): { scorer: Scorer; seen: ScoreOptions[] } {
  const seen: ScoreOptions[] = [];
  const scorer: Scorer = {
    ...localScorer,
    scorePatches: (stages, o) => {
      seen.push(o);
      return localScorer.scorePatches(stages, o);
    },
  };
  return { scorer, seen };
}
