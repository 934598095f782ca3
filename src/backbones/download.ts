/**
 * Weight downloads from the Hugging Face hub, and the cache folder.
 *
 * URL:   `${HF_ENDPOINT ?? 'https://huggingface.co'}/${repo}/resolve/main/${file}`
 * Token: HF_TOKEN or HUGGING_FACE_HUB_TOKEN, sent as `Authorization: Bearer <token>`.
 * Cache: MUSC_CACHE, else `${XDG_CACHE_HOME ?? ~/.cache}/musc`; a file lands at
 *        `<cache>/hub/<repo>/<file>`.
 *
 * A download streams into `<dest>.partial`; an interrupted one resumes with an HTTP Range
 * request (a server that answers 200 instead of 206 restarts it). The sha256 is checked when
 * known (a mismatch deletes the file), then the file is renamed into place atomically.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';

export class DownloadError extends Error {
  constructor(message: string, readonly url: string, readonly dest: string) {
    super(message);
    this.name = 'DownloadError';
  }
}

/** The musc cache folder: MUSC_CACHE, else $XDG_CACHE_HOME/musc, else ~/.cache/musc. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.MUSC_CACHE) return resolve(env.MUSC_CACHE);
  const base = env.XDG_CACHE_HOME ? resolve(env.XDG_CACHE_HOME) : join(homedir(), '.cache');
  return join(base, 'musc');
}

export function hfEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return (env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, '');
}

export function hfUrl(repo: string, file: string, env: NodeJS.ProcessEnv = process.env): string {
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `${hfEndpoint(env)}/${repo}/resolve/main/${path}`;
}

/** Where a hub file lives in the cache. */
export function cachedPath(repo: string, file: string, cacheDir = defaultCacheDir()): string {
  return join(cacheDir, 'hub', ...repo.split('/'), ...file.split('/'));
}

export interface DownloadOptions {
  cacheDir?: string;
  /** expected sha256 (hex); checked when given */
  sha256?: string;
  /** called as bytes arrive: (received, total or undefined when unknown) */
  onProgress?: (received: number, total: number | undefined) => void;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

export interface DownloadResult {
  path: string;
  sha256: string;
  bytes: number;
  /** true when the file was already in the cache */
  cached: boolean;
}

function offlineHint(url: string, dest: string): string {
  return `download ${url} yourself and put it at ${dest}`;
}

/** Downloads `repo/file` into the cache (or returns the cached file). */
export async function downloadHubFile(repo: string, file: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const env = opts.env ?? process.env;
  const cacheDir = opts.cacheDir ?? defaultCacheDir(env);
  const dest = cachedPath(repo, file, cacheDir);
  const url = hfUrl(repo, file, env);
  if (existsSync(dest)) {
    const sha = await fileSha256(dest, { cacheDir });
    if (opts.sha256 && sha !== opts.sha256.toLowerCase()) {
      throw new DownloadError(`${dest}: sha256 ${sha} does not match the expected ${opts.sha256}; delete the file and pull again, or ${offlineHint(url, dest)}`, url, dest);
    }
    return { path: dest, sha256: sha, bytes: (await stat(dest)).size, cached: true };
  }
  await mkdir(dirname(dest), { recursive: true });
  const partial = `${dest}.partial`;
  const headers: Record<string, string> = { 'user-agent': 'musc' };
  const token = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (token) headers.authorization = `Bearer ${token}`;
  let have = 0;
  try {
    have = (await stat(partial)).size;
  } catch {
    have = 0;
  }
  if (have > 0) headers.range = `bytes=${have}-`;

  let res: Response;
  try {
    res = await fetch(url, { headers, redirect: 'follow', signal: opts.signal });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (e as Error).message;
    throw new DownloadError(`cannot download ${url} (${why}). If this machine is offline, ${offlineHint(url, dest)}`, url, dest);
  }
  if (res.status === 416 && have > 0) {
    // the partial file is complete or larger than the remote one: start over
    await rm(partial, { force: true });
    await res.body?.cancel();
    return downloadHubFile(repo, file, opts);
  }
  if (!res.ok) {
    await res.body?.cancel();
    const auth = res.status === 401 || res.status === 403 ? ' (a gated or private repo needs HF_TOKEN set to a Hugging Face access token)' : '';
    throw new DownloadError(`cannot download ${url}: HTTP ${res.status} ${res.statusText}${auth}. Alternatively ${offlineHint(url, dest)}`, url, dest);
  }
  const resumed = res.status === 206 && have > 0;
  if (!resumed) have = 0;
  const hash = createHash('sha256');
  if (resumed) {
    // hash what is already there
    for await (const chunk of createReadStream(partial)) hash.update(chunk as Buffer);
  }
  const len = Number(res.headers.get('content-length'));
  const total = Number.isFinite(len) && len > 0 ? have + len : undefined;
  const fh = await open(partial, resumed ? 'a' : 'w');
  let received = have;
  try {
    if (!res.body) throw new Error('empty response body');
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      hash.update(value);
      await fh.write(value);
      received += value.length;
      opts.onProgress?.(received, total);
    }
    await fh.sync();
  } catch (e) {
    await fh.close();
    throw new DownloadError(`download of ${url} was interrupted after ${received} bytes (${(e as Error).message}); run the command again to resume, or ${offlineHint(url, dest)}`, url, dest);
  }
  await fh.close();
  if (total !== undefined && received !== total) {
    throw new DownloadError(`download of ${url} ended after ${received} of ${total} bytes; run the command again to resume`, url, dest);
  }
  const sha = hash.digest('hex');
  if (opts.sha256 && sha !== opts.sha256.toLowerCase()) {
    await rm(partial, { force: true });
    throw new DownloadError(`downloaded ${url} but its sha256 ${sha} does not match the expected ${opts.sha256}; the bad file was deleted. Try again, or ${offlineHint(url, dest)}`, url, dest);
  }
  await rename(partial, dest);
  await rememberSha256(dest, sha, cacheDir);
  return { path: dest, sha256: sha, bytes: received, cached: false };
}

// ---- sha256 of files, remembered per (path, size, mtime) so big weight files are hashed once ----

interface ShaMemo {
  [key: string]: string;
}

function memoPath(cacheDir: string): string {
  return join(cacheDir, 'sha256-memo.json');
}

async function memoKey(path: string): Promise<string> {
  const s = await stat(path);
  return `${resolve(path)}|${s.size}|${Math.round(s.mtimeMs)}`;
}

async function readMemo(cacheDir: string): Promise<ShaMemo> {
  try {
    const m = JSON.parse(await readFile(memoPath(cacheDir), 'utf8')) as unknown;
    return m && typeof m === 'object' ? (m as ShaMemo) : {};
  } catch {
    return {};
  }
}

async function rememberSha256(path: string, sha: string, cacheDir: string): Promise<void> {
  try {
    const memo = await readMemo(cacheDir);
    memo[await memoKey(path)] = sha;
    await writeFileAtomic(memoPath(cacheDir), JSON.stringify(memo, null, 1));
  } catch {
    // a read-only cache only costs a re-hash next time
  }
}

/** Streams a file through sha256. */
export async function sha256OfFile(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

/** sha256 of a file, remembered in the cache folder keyed by path, size and mtime. */
export async function fileSha256(path: string, opts: { cacheDir?: string } = {}): Promise<string> {
  const cacheDir = opts.cacheDir ?? defaultCacheDir();
  const key = await memoKey(path);
  const memo = await readMemo(cacheDir);
  if (memo[key]) return memo[key];
  const sha = await sha256OfFile(path);
  await rememberSha256(path, sha, cacheDir);
  return sha;
}
