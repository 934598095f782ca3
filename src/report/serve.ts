/**
 * `musc serve OUT_DIR`: a small static file server for the report (node:http).
 *
 * Safety rules, in request order:
 *   - only GET and HEAD (405 otherwise); the request target must be an origin-form path
 *     starting with '/' (400 for absolute-form 'http://...', '*', or anything else)
 *   - when bound to a loopback address, the Host header must name a loopback host (403: no DNS
 *     rebinding from a web page to the local report)
 *   - the path (query and fragment dropped) is percent-decoded exactly once: a malformed
 *     escape is 400; a NUL byte or a backslash after decoding is 400
 *   - any segment starting with '.' is 404: '.' and '..' (also the decoded '%2e%2e' forms) and
 *     every dotfile or dot-folder (.cache/, .env, the lock and staging folders), also when a
 *     link's target is one
 *   - every response carries security headers (SECURITY_HEADERS): the report's CSP plus
 *     frame-ancestors 'none' and X-Frame-Options DENY (no framing), nosniff, no referrer
 *   - listening on a non-loopback address prints a warning (the report is then readable by the
 *     network, and the Host check is off)
 *   - the file is resolve(root, '.' + path); its realpath must lie inside realpath(root)
 *     (symbolic links out of the folder are 404); directories are 404 (no listings), except
 *     '/' which serves report.html
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { extname, resolve, sep } from 'node:path';
import type { AddressInfo } from 'node:net';
import { REPORT_FILE } from './build.js';
import { REPORT_CSP } from './html.js';

/** Sent with every response. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': `${REPORT_CSP}; frame-ancestors 'none'`,
  'X-Frame-Options': 'DENY',
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.htm': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.csv': 'text/csv; charset=utf-8',
  '.md': 'text/markdown; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.svg': 'image/svg+xml',
  '.webp': 'image/webp',
  '.safetensors': 'application/octet-stream',
};

export interface ServeOptions {
  /** the output folder to serve */
  root: string;
  /** default 127.0.0.1 */
  host?: string;
  /** default 0 (any free port) */
  port?: number;
  /** one line per request (method, path, status) */
  log?: (line: string) => void;
  /** warnings (default: stderr) */
  warn?: (line: string) => void;
}

export interface ReportServer {
  server: Server;
  host: string;
  port: number;
  /** http://host:port/ */
  url: string;
  close(): Promise<void>;
}

/** Outcome of mapping a request target to a file. */
export type Resolved = { status: 200; file: string; size: number } | { status: 400 | 404; reason: string };

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

export function isLoopbackAddress(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Host header without the port ('[::1]:8080' -> '[::1]', 'localhost:80' -> 'localhost'). */
export function hostName(h: string): string {
  const m = /^(\[[^\]]*\]|[^:]*)(?::\d+)?$/.exec(h.trim().toLowerCase());
  return m ? m[1]! : '';
}

function inside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** Maps a raw request target ('/a/b.png?x') to a file under `rootReal` (a realpath), or a 400/404. */
export async function resolveRequest(rootReal: string, target: string): Promise<Resolved> {
  if (!target.startsWith('/')) return { status: 400, reason: 'not an origin-form path' };
  const raw = target.split(/[?#]/, 1)[0]!;
  let path: string;
  try {
    path = decodeURIComponent(raw);
  } catch {
    return { status: 400, reason: 'malformed percent-encoding' };
  }
  if (path.includes('\0')) return { status: 400, reason: 'NUL byte' };
  if (path.includes('\\')) return { status: 400, reason: 'backslash' };
  const segs = path.split('/');
  if (segs.some((s) => s.startsWith('.'))) return { status: 404, reason: 'dot segment or hidden file' };
  if (path === '/' || path === '') path = '/' + REPORT_FILE;
  const file = resolve(rootReal, '.' + path);
  if (!inside(rootReal, file)) return { status: 404, reason: 'outside the folder' };
  let real: string;
  try {
    real = await realpath(file);
  } catch {
    return { status: 404, reason: 'not found' };
  }
  if (!inside(rootReal, real)) return { status: 404, reason: 'link out of the folder' };
  if (real.slice(rootReal.length).split(sep).some((x) => x.startsWith('.'))) return { status: 404, reason: 'link to a hidden file' };
  const st = await stat(real).catch(() => null);
  if (!st?.isFile()) return { status: 404, reason: st?.isDirectory() ? 'directory' : 'not a file' };
  return { status: 200, file: real, size: st.size };
}

function send(res: ServerResponse, status: number, text: string, head: boolean): void {
  const type = 'text/plain; charset=utf-8';
  res.writeHead(status, { ...SECURITY_HEADERS, 'Content-Type': type, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(head ? undefined : text);
}

export function handlerFor(rootReal: string, loopbackOnly: boolean, log?: (line: string) => void): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const method = req.method ?? '';
    const target = req.url ?? '';
    const head = method === 'HEAD';
    const done = (status: number): void => log?.(`${method} ${target} ${status}`);
    if (method !== 'GET' && method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'method not allowed\n', false);
      return done(405);
    }
    if (loopbackOnly && !isLoopbackAddress(hostName(req.headers.host ?? ''))) {
      send(res, 403, 'forbidden host\n', head);
      return done(403);
    }
    void resolveRequest(rootReal, target).then(
      (r) => {
        if (r.status !== 200) {
          send(res, r.status, r.status === 400 ? 'bad request\n' : 'not found\n', head);
          return done(r.status);
        }
        res.writeHead(200, {
          ...SECURITY_HEADERS,
          'Content-Type': TYPES[extname(r.file).toLowerCase()] ?? 'application/octet-stream',
          'Content-Length': r.size,
          'Cache-Control': 'no-cache',
        });
        if (head) {
          res.end();
          return done(200);
        }
        const s = createReadStream(r.file);
        s.on('error', () => res.destroy());
        s.pipe(res);
        done(200);
      },
      () => {
        send(res, 500, 'internal error\n', head);
        done(500);
      },
    );
  };
}

/** Starts serving `root`; resolves once listening. */
export async function serveReport(o: ServeOptions): Promise<ReportServer> {
  let rootReal: string;
  try {
    rootReal = await realpath(resolve(o.root));
  } catch {
    throw new Error(`output folder not found: ${o.root}`);
  }
  if (!(await stat(rootReal)).isDirectory()) throw new Error(`not a folder: ${o.root}`);
  const host = o.host ?? '127.0.0.1';
  const server = createServer(handlerFor(rootReal, isLoopbackAddress(host), o.log));
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(o.port ?? 0, host, () => {
      server.off('error', fail);
      ok();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  if (!isLoopbackAddress(host)) {
    (o.warn ?? ((l: string) => void process.stderr.write(`${l}\n`)))(
      `warning: serving ${o.root} on ${host}, not a loopback address: anyone who can reach this machine on port ${port} ` +
        'can read the report, its images and scores (the Host check is off); use --host 127.0.0.1 to keep it local',
    );
  }
  return {
    server,
    host,
    port,
    url: `http://${shown}:${port}/`,
    close: () =>
      new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      }),
  };
}
