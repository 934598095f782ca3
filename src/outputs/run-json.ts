/**
 * run.json of one category: what was run and how long it took. Not deterministic (timings,
 * memory), unlike scores.csv and metrics.json.
 */
import { versions, type Versions } from './versions.js';
import type { CategoryResult, StageTimings } from './result.js';

export interface RunInfo {
  settings: Record<string, unknown>;
  backbone: {
    name: string;
    weights_path: string;
    weights_sha256: string;
    image_size: number;
    stages: number[];
    border_pad?: number;
    /** input sizes fused with image_size (ResNets; [] = none) */
    fuse_sizes?: number[];
    layers?: string[];
  };
  data_root: string;
  /** peak resident set size of the process so far, MB */
  peakRssMb: number;
}

export interface RunJson {
  versions: Versions;
  category: string;
  dataset: string;
  data_root: string;
  settings: Record<string, unknown>;
  backbone: RunInfo['backbone'];
  divide_num_used: number;
  subset_sizes: number[];
  /**
   * per subset, the repeated-anomaly filter (null: it did not run): images scored without others,
   * pairs left out, and per such image (path relative to the data root) the images left out of its
   * pool, the ones it shares a repeated defect with
   */
  repeat_filter: ({ images: number; excluded_pairs: number; left_out: Record<string, string[]> } | null)[];
  estimated_subset_mb: number;
  n_images: number;
  timings_ms: StageTimings & { total: number };
  timings_ms_per_image: StageTimings & { total: number };
  peak_rss_mb: number;
  skipped: { path: string; reason: string }[];
  warnings: string[];
}

/** Peak RSS of this process in MB (getrusage ru_maxrss). */
export function peakRssMb(): number {
  return Math.round((process.resourceUsage().maxRSS / 1024) * 10) / 10;
}

const round = (x: number): number => Math.round(x * 100) / 100;

export function runJson(r: CategoryResult, info: RunInfo): RunJson {
  const t = r.timings;
  const total = t.decode + t.backbone + t.scoring + t.rscin + t.metrics + t.write;
  const n = Math.max(1, r.items.length + r.skipped.length);
  const each = Object.fromEntries(Object.entries({ ...t, total }).map(([k, v]) => [k, round(v)])) as unknown as StageTimings & {
    total: number;
  };
  const per = Object.fromEntries(Object.entries({ ...t, total }).map(([k, v]) => [k, round(v / n)])) as unknown as StageTimings & {
    total: number;
  };
  return {
    versions: versions(),
    category: r.name,
    dataset: r.kind,
    data_root: info.data_root,
    settings: info.settings,
    backbone: info.backbone,
    divide_num_used: r.divideNum,
    subset_sizes: r.subsets.map((s) => s.length),
    repeat_filter: r.subsets.map((subset, k) => {
      const f = r.repeatFilter?.[k];
      if (!f) return null;
      const rel = (item: number) => r.items[item]!.rel;
      const leftOut = subset.flatMap((item, i) => (f.leftOut[i]!.length ? [[rel(item), f.leftOut[i]!.map(rel)] as const] : []));
      return { images: f.images, excluded_pairs: f.excludedPairs, left_out: Object.fromEntries(leftOut) };
    }),
    estimated_subset_mb: round(r.estimatedBytes / 2 ** 20),
    n_images: r.items.length,
    timings_ms: each,
    timings_ms_per_image: per,
    peak_rss_mb: info.peakRssMb,
    skipped: r.skipped,
    warnings: r.warnings,
  };
}
