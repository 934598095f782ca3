/**
 * Every output of one category, under <out>/<category>/ (all writes atomic):
 *   scores.csv, metrics.json, maps.safetensors, heatmaps/<defect>/<stem>.png, regions.csv, masks/,
 *   composites/ (src/bank/run-where.ts), run.json (last,
 *   so that it can report the time spent writing the others).
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { writeRunWhere } from '../bank/run-where.js';
import type { HeatmapMode, VisNorm } from '../config.js';
import { writeFileAtomic } from '../io/atomic.js';
import type { CategoryResult } from '../pipeline/types.js';
import { writeHeatmaps } from './heatmaps.js';
import { writeMaps } from './maps.js';
import { formatMetricsJson, type MetricsJson, metricsJson } from './metrics-json.js';
import { peakRssMb, type RunInfo, runJson } from './run-json.js';
import { formatScoresCsv } from './scores.js';

/** A category name usable as a folder name. */
export function categoryFolder(name: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this replaces (unsafe in folder names)
  const s = name.replace(/[\\/:*?"<>|\x00-\x1f]/g, '_').replace(/^\.+$/, '_');
  return s || '_';
}

export interface WriteOptions {
  heatmaps: HeatmapMode;
  visNorm: VisNorm;
  info: Omit<RunInfo, 'peakRssMb'>;
}

export async function writeCategoryOutputs(
  outDir: string,
  r: CategoryResult,
  o: WriteOptions,
): Promise<{ dir: string; metrics: MetricsJson; heatmaps: string[] }> {
  const dir = join(outDir, categoryFolder(r.name));
  const t0 = performance.now();
  await writeFileAtomic(join(dir, 'scores.csv'), formatScoresCsv(r));
  await writeFileAtomic(join(dir, 'metrics.json'), formatMetricsJson(r));
  await writeMaps(
    join(dir, 'maps.safetensors'),
    r.maps,
    r.items.length,
    r.size,
    r.items.map((it) => it.rel),
  );
  const heatmaps = await writeHeatmaps(dir, r.items, r.maps, r.size, o.heatmaps, o.visNorm);
  await writeRunWhere(dir, r, o.heatmaps !== 'none'); // regions.csv, masks/, composites/ of NG images
  r.timings.write += performance.now() - t0;
  await writeFileAtomic(join(dir, 'run.json'), JSON.stringify(runJson(r, { ...o.info, peakRssMb: peakRssMb() }), null, 2) + '\n');
  return { dir, metrics: metricsJson(r), heatmaps };
}
