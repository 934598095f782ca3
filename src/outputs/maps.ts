/**
 * maps.safetensors: the anomaly maps F32 [N, S, S] under the name 'maps', and in __metadata__
 * 'paths' = JSON list of the image paths (relative to the data root) in row order, plus 'size'.
 */
import { encodeSafetensors } from '../io/safetensors.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';

export function encodeMaps(maps: Float32Array, n: number, size: number, paths: string[]): Buffer {
  return encodeSafetensors(
    { maps: { dtype: 'F32', shape: [n, size, size], data: maps } },
    { paths: JSON.stringify(paths), size: String(size) },
  );
}

export async function writeMaps(file: string, maps: Float32Array, n: number, size: number, paths: string[]): Promise<void> {
  await writeFileAtomic(file, encodeMaps(maps, n, size, paths));
}

/** Reads maps.safetensors back: maps [N, S, S] and the paths. */
export async function readMaps(file: string): Promise<{ maps: Float32Array; n: number; size: number; paths: string[] }> {
  const f = await SafetensorsFile.open(file);
  try {
    const t = f.float32('maps');
    const paths = JSON.parse(f.metadata?.paths ?? '[]') as string[];
    return { maps: t.data, n: t.shape[0]!, size: t.shape[1]!, paths };
  } finally {
    f.close();
  }
}
