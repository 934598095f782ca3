/**
 * Weight downloads from the Hugging Face hub, and the cache folder.
 *
 * URL:   `${HF_ENDPOINT ?? 'https://huggingface.co'}/${repo}/resolve/main/${file}`
 * Token: HF_TOKEN or HUGGING_FACE_HUB_TOKEN, sent as `Authorization: Bearer <token>`.
 * Cache: MUSC_CACHE, else `${XDG_CACHE_HOME ?? ~/.cache}/musc`; a file lands at
 *        `<cache>/hub/<repo>/<file>`.
 *
 * A download streams into `<dest>.partial`; an interrupted one resumes with an HTTP Range
 * request (a server that answers 200 instead of 206 restarts it). Nothing is trusted blindly:
 *   - size: a Content-Length, or streamed bytes, beyond the pinned size (or the `maxBytes` cap
 *     when no size is pinned) abort the download and delete the partial file;
 *   - time: no response headers within `connectTimeoutMs` (30 s) or no body bytes for
 *     `idleTimeoutMs` (60 s) give up with a message (the partial file is kept for a resume);
 *   - content: the pinned sha256 and size must match, and the format must check out (a
 *     .safetensors header that parses, with tensors inside the file: an HTML error page is
 *     refused); a failing file is deleted. A cached file is checked the same way (the sha256 is
 *     remembered per path, size and mtime); one that fails is deleted and downloaded again.
 * Then the file is renamed into place atomically.
 */
import { sha256OfFile } from '../io/sha256.js';
import { createHash } from 'node:crypto';
import { closeSync, createReadStream, existsSync, openSync, readSync } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { makeDirs } from '../io/dirs.js';
import { SafetensorsFile } from '../io/safetensors.js';

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
  /** expected sha256 (hex): the file is accepted only when it matches */
  sha256?: string;
  /** expected size in bytes: a larger response is aborted, a different final size refused */
  bytes?: number;
  /** the most bytes accepted when the size is not pinned (Content-Length or streamed bytes beyond it abort) */
  maxBytes?: number;
  /** format check of the finished file (throws with the reason); default: a .safetensors header check for .safetensors files */
  verify?: (path: string) => void | Promise<void>;
  /** ms to wait for the response headers (default 30 s) */
  connectTimeoutMs?: number;
  /** ms without a byte of the body before giving up (default 60 s) */
  idleTimeoutMs?: number;
  /** called as bytes arrive: (received, total or undefined when unknown) */
  onProgress?: (received: number, total: number | undefined) => void;
  /** information lines (a bad cached file replaced, ...) */
  onNote?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
}

export interface DownloadResult {
  path: string;
  sha256: string;
  bytes: number;
  /** true when the file was already in the cache */
  cached: boolean;
  /** true when the sha256 was checked against a pinned value */
  pinned: boolean;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
export const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

function offlineHint(url: string, dest: string): string {
  return `download ${url} yourself and put it at ${dest}`;
}

/** The default format check: a .safetensors file must have a valid header whose tensors fit in the file. */
export function defaultVerify(file: string): ((path: string) => void) | undefined {
  if (!file.endsWith('.safetensors')) return undefined;
  return (path) => {
    let f: SafetensorsFile;
    try {
      f = SafetensorsFile.open(path);
    } catch (e) {
      const head = readHead(path);
      const start = head.slice(0, 40).replace(/\s+/g, ' ').trim();
      const html = /^\s*</.test(head) ? ` (it starts with '${start}': an HTML page, not weights)` : '';
      throw new Error(`${(e as Error).message.replace(`${path}: `, '')}${html}`);
    }
    f.close();
  };
}

function readHead(path: string): string {
  try {
    const fd = openSync(path, 'r');
    try {
      const b = Buffer.alloc(64);
      const n = readSync(fd, b, 0, 64, 0);
      return b.subarray(0, n).toString('latin1');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

/** Checks a finished file against the pins and the format; returns null when fine, else the reason. */
async function checkFile(path: string, sha: string, size: number, o: DownloadOptions, file: string): Promise<string | null> {
  if (o.bytes !== undefined && size !== o.bytes) return `its size ${size} bytes differs from the pinned ${o.bytes}`;
  if (o.sha256 && sha !== o.sha256.toLowerCase()) return `its sha256 ${sha} does not match the pinned ${o.sha256}`;
  if (o.maxBytes !== undefined && size > o.maxBytes) return `its size ${size} bytes is over the limit of ${o.maxBytes}`;
  const verify = o.verify ?? defaultVerify(file);
  try {
    await verify?.(path);
  } catch (e) {
    return `it is not a valid weight file: ${(e as Error).message}`;
  }
  return null;
}

/** Downloads `repo/file` into the cache (or returns the cached file, checked like a new one). */
export async function downloadHubFile(repo: string, file: string, opts: DownloadOptions = {}): Promise<DownloadResult> {
  const env = opts.env ?? process.env;
  const cacheDir = opts.cacheDir ?? defaultCacheDir(env);
  const dest = cachedPath(repo, file, cacheDir);
  const url = hfUrl(repo, file, env);
  if (existsSync(dest)) {
    const sha = await fileSha256(dest, { cacheDir });
    const size = (await stat(dest)).size;
    const bad = await checkFile(dest, sha, size, opts, file);
    if (bad === null) return { path: dest, sha256: sha, bytes: size, cached: true, pinned: !!opts.sha256 };
    opts.onNote?.(`the cached ${dest} is not accepted (${bad}): deleted, downloading again`);
    await rm(dest, { force: true });
  }
  await makeDirs(dirname(dest));
  const got = await fetchToPartial(url, dest, env, opts);
  const bad = await checkFile(got.partial, got.sha256, got.bytes, opts, file);
  if (bad !== null) {
    await rm(got.partial, { force: true });
    throw new DownloadError(`downloaded ${url} but ${bad}; the file was deleted. Try again, or ${offlineHint(url, dest)}`, url, dest);
  }
  await rename(got.partial, dest);
  await rememberSha256(dest, got.sha256, cacheDir);
  return { path: dest, sha256: got.sha256, bytes: got.bytes, cached: false, pinned: !!opts.sha256 };
}

/** A timer that aborts `ctl` with a reason; `arm` (re)starts it. */
function watchdog(ctl: AbortController): { arm: (ms: number, why: string) => void; stop: () => void; reason: () => string | null } {
  let t: NodeJS.Timeout | undefined;
  let why: string | null = null;
  return {
    arm: (ms, w) => {
      clearTimeout(t);
      t = setTimeout(() => {
        why = w;
        ctl.abort(new Error(w));
      }, ms);
    },
    stop: () => clearTimeout(t),
    reason: () => why,
  };
}

/** Streams `url` into `<dest>.partial` (resuming it with a Range request); returns its sha256 and size. */
async function fetchToPartial(
  url: string,
  dest: string,
  env: NodeJS.ProcessEnv,
  opts: DownloadOptions,
): Promise<{ partial: string; sha256: string; bytes: number }> {
  const partial = `${dest}.partial`;
  const cap = opts.bytes ?? opts.maxBytes;
  const headers: Record<string, string> = { 'user-agent': 'musc' };
  const token = env.HF_TOKEN ?? env.HUGGING_FACE_HUB_TOKEN;
  if (token) headers.authorization = `Bearer ${token}`;
  let have = await stat(partial).then((s) => s.size, () => 0);
  if (cap !== undefined && have > cap) {
    await rm(partial, { force: true });
    have = 0;
  }
  if (have > 0) headers.range = `bytes=${have}-`;
  const ctl = new AbortController();
  opts.signal?.addEventListener('abort', () => ctl.abort(opts.signal?.reason), { once: true });
  const dog = watchdog(ctl);
  const connectS = (opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS) / 1000;
  const idleMs = opts.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  dog.arm(connectS * 1000, `no response from the server within ${connectS} s`);
  let res: Response;
  try {
    res = await fetch(url, { headers, redirect: 'follow', signal: ctl.signal });
  } catch (e) {
    dog.stop();
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    const why = dog.reason() ?? cause?.code ?? cause?.message ?? (e as Error).message;
    throw new DownloadError(`cannot download ${url} (${why}). If this machine is offline, ${offlineHint(url, dest)}`, url, dest);
  }
  dog.stop();
  if (res.status === 416 && have > 0) {
    // the partial file is complete or larger than the remote one: start over
    await rm(partial, { force: true });
    await res.body?.cancel();
    return fetchToPartial(url, dest, env, opts);
  }
  if (!res.ok) {
    await res.body?.cancel();
    const auth = res.status === 401 || res.status === 403 ? ' (a gated or private repo needs HF_TOKEN set to a Hugging Face access token)' : '';
    throw new DownloadError(`cannot download ${url}: HTTP ${res.status} ${res.statusText}${auth}. Alternatively ${offlineHint(url, dest)}`, url, dest);
  }
  const resumed = res.status === 206 && have > 0;
  if (!resumed) have = 0;
  const len = Number(res.headers.get('content-length'));
  const total = Number.isFinite(len) && len > 0 ? have + len : undefined;
  if (cap !== undefined && total !== undefined && total > cap) {
    await res.body?.cancel();
    const what = opts.bytes !== undefined ? 'pinned size' : 'limit';
    throw new DownloadError(`refusing ${url}: the server announces ${total} bytes, over the ${what} of ${cap} bytes`, url, dest);
  }
  return streamBody(res, { url, dest, partial, have, total, cap, idleMs, dog, opts });
}

interface StreamState {
  url: string;
  dest: string;
  partial: string;
  have: number;
  total: number | undefined;
  cap: number | undefined;
  idleMs: number;
  dog: ReturnType<typeof watchdog>;
  opts: DownloadOptions;
}

async function streamBody(res: Response, st: StreamState): Promise<{ partial: string; sha256: string; bytes: number }> {
  const { url, dest, partial, have, total, cap, idleMs, dog, opts } = st;
  const hash = createHash('sha256');
  if (have > 0) for await (const chunk of createReadStream(partial)) hash.update(chunk as Buffer); // hash what is already there
  const fh = await open(partial, have > 0 ? 'a' : 'w');
  let received = have;
  let overCap = false;
  try {
    if (!res.body) throw new Error('empty response body');
    const reader = res.body.getReader();
    for (;;) {
      dog.arm(idleMs, `no data for ${idleMs / 1000} s`);
      const { done, value } = await reader.read();
      if (done) break;
      if (cap !== undefined && received + value.length > cap) {
        overCap = true;
        await reader.cancel();
        break;
      }
      hash.update(value);
      await fh.write(value);
      received += value.length;
      opts.onProgress?.(received, total);
    }
    dog.stop();
    await fh.sync();
  } catch (e) {
    dog.stop();
    await fh.close();
    const why = dog.reason() ?? (e as Error).message;
    const hint = `run the command again to resume, or ${offlineHint(url, dest)}`;
    throw new DownloadError(`download of ${url} was interrupted after ${received} bytes (${why}); ${hint}`, url, dest);
  }
  await fh.close();
  if (overCap) {
    await rm(partial, { force: true });
    const what = opts.bytes !== undefined ? 'pinned size' : 'limit';
    throw new DownloadError(`refusing ${url}: the response goes on past the ${what} of ${cap} bytes; the partial file was deleted`, url, dest);
  }
  if (total !== undefined && received !== total) {
    throw new DownloadError(`download of ${url} ended after ${received} of ${total} bytes; run the command again to resume`, url, dest);
  }
  return { partial, sha256: hash.digest('hex'), bytes: received };
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
