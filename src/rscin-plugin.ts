/**
 * RsCIN as a plug-in for any anomaly detector (paper appendix A.2.4): re-score another method's
 * image scores with the image-level tokens of a backbone (src/core/rscin.ts has the equations).
 *
 * Two files:
 *   tokens.safetensors  F32 [N, D] tensor "tokens" (one row per image, the backbone's image-level
 *                       token: CLS token for ViTs, pooled last stage for ResNets); __metadata__:
 *                       paths = JSON list of the N image paths (relative to `root`, '/' separated),
 *                       root = the absolute folder they are relative to, backbone, image_size.
 *   scores CSV          RFC 4180 with a header; a `path` column and a score column (default
 *                       `score`); any other columns are kept as they are.
 * Rows are matched by path: a CSV path matches a token row when it equals the token's relative
 * path, or (absolute or relative to the CSV's folder) resolves to the same file as root/path.
 * Every CSV row must match exactly one token row (tokens of other images are ignored); RsCIN runs
 * over the matched rows only, so use one CSV per category (RsCIN's neighbourhood is the category).
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { FeatureStore } from './features/store.js';
import { stackTokens } from './features/stack.js';
import { l2NormalizeRows, rscin } from './core/rscin.js';
import { readFile } from 'node:fs/promises';
import { SafetensorsFile, encodeSafetensors } from './io/safetensors.js';
import { writeFileAtomic } from './io/atomic.js';
import { formatCsv, parseCsv, formatNumber, restoreCell } from './io/csv.js';
import type { RgbImage } from './image/decode.js';
import type { ImageTokens } from './core/types.js';
import type { Backbone } from './backbones/types.js';
import { DatasetError } from './datasets/types.js';

export const TOKENS_TENSOR = 'tokens';

/** Image tokens with the images they belong to. */
export interface TokenSet {
  /** [N] paths relative to root, '/' separated */
  paths: string[];
  /** absolute folder the paths are relative to ('' when unknown) */
  root: string;
  backbone?: string;
  imageSize?: number;
  /** [N, D] */
  tokens: ImageTokens;
}

/** Backbone image tokens [N, D] of image files (the feature store, tokens only; an unreadable file is an error). */
export async function computeImageTokens(
  files: string[],
  backbone: Pick<Backbone, 'imageSize' | 'preprocess' | 'extract'>,
  opts: { batchSize?: number; decode?: (file: string) => Promise<RgbImage>; onProgress?: (done: number, total: number) => void } = {},
): Promise<ImageTokens> {
  const store = new FeatureStore({
    backbone,
    ...(opts.batchSize ? { batchSize: opts.batchSize } : {}),
    ...(opts.decode ? { decode: opts.decode } : {}),
    badFiles: 'error',
    tokensOnly: true,
  });
  let done = 0;
  const { images } = await store.extract(
    files.map((path) => ({ path })),
    (count) => {
      done += count;
      opts.onProgress?.(done, files.length);
    },
  );
  return stackTokens(
    images.map((im) => im.features),
    store.tokenDim,
  );
}

/** Each row of [N, D] scaled to unit L2 norm (zero rows stay zero); a new array. */
export function normalizeTokens(t: ImageTokens): ImageTokens {
  return { n: t.n, d: t.d, data: l2NormalizeRows(t.data.slice(), t.n, t.d) };
}

export function encodeTokens(t: TokenSet): Buffer {
  if (t.paths.length !== t.tokens.n) throw new Error(`${t.paths.length} paths for ${t.tokens.n} token rows`);
  const meta: Record<string, string> = { paths: JSON.stringify(t.paths), root: t.root };
  if (t.backbone !== undefined) meta.backbone = t.backbone;
  if (t.imageSize !== undefined) meta.image_size = String(t.imageSize);
  return encodeSafetensors({ [TOKENS_TENSOR]: { dtype: 'F32', shape: [t.tokens.n, t.tokens.d], data: t.tokens.data } }, meta);
}

/** Writes tokens.safetensors atomically. */
export async function writeTokens(file: string, t: TokenSet): Promise<void> {
  await writeFileAtomic(file, encodeTokens(t));
}

/** Reads tokens.safetensors; errors name the file and what is wrong. */
export async function readTokens(file: string): Promise<TokenSet> {
  let f: SafetensorsFile;
  try {
    f = await SafetensorsFile.open(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DatasetError(`tokens file ${file}: ${code === 'ENOENT' ? 'file not found' : (e as Error).message}`);
  }
  try {
    if (!f.names().includes(TOKENS_TENSOR))
      throw new DatasetError(`tokens file ${file}: no tensor '${TOKENS_TENSOR}' (has: ${f.names().join(', ') || 'none'})`);
    const t = f.float32(TOKENS_TENSOR);
    if (t.shape.length !== 2) throw new DatasetError(`tokens file ${file}: '${TOKENS_TENSOR}' must be [N, D], got [${t.shape.join(', ')}]`);
    const raw = f.metadata?.paths;
    if (raw === undefined) throw new DatasetError(`tokens file ${file}: __metadata__ has no 'paths' (a JSON list of the image paths)`);
    let paths: unknown;
    try {
      paths = JSON.parse(raw);
    } catch {
      throw new DatasetError(`tokens file ${file}: __metadata__.paths is not JSON`);
    }
    if (!Array.isArray(paths) || paths.some((p) => typeof p !== 'string'))
      throw new DatasetError(`tokens file ${file}: __metadata__.paths must be a JSON list of strings`);
    if (paths.length !== t.shape[0]) throw new DatasetError(`tokens file ${file}: ${paths.length} paths for ${t.shape[0]} token rows`);
    const size = f.metadata?.image_size;
    return {
      paths: paths as string[],
      root: f.metadata?.root ?? '',
      ...(f.metadata?.backbone !== undefined ? { backbone: f.metadata.backbone } : {}),
      ...(size !== undefined ? { imageSize: Number(size) } : {}),
      tokens: { n: t.shape[0]!, d: t.shape[1]!, data: t.data },
    };
  } finally {
    f.close();
  }
}

const norm = (p: string): string => p.replace(/\\/g, '/').replace(/^\.\//, '');

/**
 * For each CSV path the index of its token row. `csvDir` resolves relative CSV paths that are
 * not token paths. Throws a DatasetError listing (up to 5) unmatched or duplicated paths.
 */
export function matchPaths(csvPaths: string[], tokens: Pick<TokenSet, 'paths' | 'root'>, csvDir?: string, what = 'scores'): Int32Array {
  const byRel = new Map<string, number>();
  const byAbs = new Map<string, number>();
  const dupTok: string[] = [];
  tokens.paths.forEach((p, i) => {
    const k = norm(p);
    if (byRel.has(k)) dupTok.push(p);
    byRel.set(k, i);
    if (tokens.root) byAbs.set(resolve(tokens.root, k), i);
  });
  if (dupTok.length) throw new DatasetError(`tokens: duplicated paths ${dupTok.slice(0, 5).join(', ')}`);
  const out = new Int32Array(csvPaths.length);
  const missing: string[] = [];
  const seen = new Map<number, string>();
  const dup: string[] = [];
  csvPaths.forEach((p, r) => {
    const k = norm(p);
    let i = byRel.get(k);
    if (i === undefined && isAbsolute(p)) i = byAbs.get(resolve(p));
    if (i === undefined && csvDir !== undefined) i = byAbs.get(resolve(csvDir, k));
    if (i === undefined) {
      missing.push(p);
      return;
    }
    if (seen.has(i)) dup.push(`${p} (same image as ${seen.get(i)})`);
    seen.set(i, p);
    out[r] = i;
  });
  if (missing.length) {
    const ex = tokens.paths.slice(0, 3).join(', ');
    throw new DatasetError(
      `${missing.length} of ${csvPaths.length} ${what} rows have no image token: ` +
        `${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''} ` +
        `(token paths look like: ${ex}${tokens.root ? `; relative to ${tokens.root}` : ''})`,
    );
  }
  if (dup.length) throw new DatasetError(`${what}: several rows name the same image: ${dup.slice(0, 5).join('; ')}`);
  return out;
}

/** The token rows `idx` of `t` as a new [idx.length, D] set. */
export function selectTokens(t: ImageTokens, idx: ArrayLike<number>): ImageTokens {
  const data = new Float32Array(idx.length * t.d);
  for (let r = 0; r < idx.length; r++) data.set(t.data.subarray(idx[r]! * t.d, (idx[r]! + 1) * t.d), r * t.d);
  return { n: idx.length, d: t.d, data };
}

/** Library form: RsCIN scores [N] of image scores [N] whose rows are tokens.paths[idx[r]]. */
export function rscinByPath(scores: ArrayLike<number>, paths: string[], tokens: TokenSet, kList: number[], csvDir?: string): Float64Array {
  const idx = matchPaths(paths, tokens, csvDir);
  return rscin(Float64Array.from(scores), selectTokens(tokens.tokens, idx), kList);
}

export interface RscinCsvResult {
  header: string[];
  rows: string[][];
  scores: Float64Array;
  rscin: Float64Array;
  /** [N] 0, 1 or null (empty) when the CSV has a `label` column of such values */
  labels: (0 | 1 | null)[] | null;
}

/**
 * Reads a scores CSV and a tokens file, re-scores the `column` scores with RsCIN and returns the
 * CSV with a `score_rscin` column (replaced when present). Non-finite scores are an error.
 */
export async function rscinCsv(o: { scoresFile: string; tokensFile: string; kList: number[]; column?: string }): Promise<RscinCsvResult> {
  const column = o.column ?? 'score';
  let text: string;
  try {
    text = await readFile(o.scoresFile, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new DatasetError(`scores file ${o.scoresFile}: ${code === 'ENOENT' ? 'file not found' : (e as Error).message}`);
  }
  const all = parseCsv(text).filter((r) => !(r.length === 1 && r[0] === ''));
  if (all.length < 2) throw new DatasetError(`scores file ${o.scoresFile}: needs a header and at least one row`);
  const header = all[0]!;
  const rows = all.slice(1);
  const pc = header.indexOf('path'),
    sc = header.indexOf(column);
  if (pc < 0) throw new DatasetError(`scores file ${o.scoresFile}: no 'path' column (header: ${header.join(',')})`);
  if (sc < 0) throw new DatasetError(`scores file ${o.scoresFile}: no '${column}' column (header: ${header.join(',')})`);
  rows.forEach((r, i) => {
    if (r.length !== header.length)
      throw new DatasetError(`scores file ${o.scoresFile}: row ${i + 2} has ${r.length} fields, the header ${header.length}`);
  });
  const scores = Float64Array.from(rows, (r, i) => {
    const v = Number(r[sc]);
    if (r[sc]!.trim() === '' || !Number.isFinite(v))
      throw new DatasetError(`scores file ${o.scoresFile}: row ${i + 2}: '${column}' is not a finite number ('${r[sc]}')`);
    return v;
  });
  const tokens = await readTokens(o.tokensFile);
  let idx: Int32Array;
  try {
    idx = matchPaths(
      rows.map((r) => restoreCell(r[pc]!)),
      tokens,
      dirname(resolve(o.scoresFile)),
      `${o.scoresFile}:`,
    );
  } catch (e) {
    throw new DatasetError(`${(e as Error).message} (tokens file ${o.tokensFile})`);
  }
  const out = rscin(scores, selectTokens(tokens.tokens, idx), o.kList);
  let rc = header.indexOf('score_rscin');
  const h2 = [...header];
  if (rc < 0) {
    rc = h2.length;
    h2.push('score_rscin');
  }
  const rows2 = rows.map((r, i) => {
    const x = [...r];
    x[rc] = formatNumber(out[i]!);
    return x;
  });
  const lc = header.indexOf('label');
  const labelled = lc >= 0 && rows.every((r) => r[lc] === '0' || r[lc] === '1' || r[lc] === '');
  const labels = labelled ? rows.map((r) => (r[lc] === '' ? null : r[lc] === '1' ? 1 : 0)) : null;
  return { header: h2, rows: rows2, scores, rscin: out, labels };
}

/** The CSV text of an rscinCsv result. */
export function formatRscinCsv(r: Pick<RscinCsvResult, 'header' | 'rows'>): string {
  return formatCsv(r.header, r.rows);
}
