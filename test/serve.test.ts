/** `musc serve`: files under OUT_DIR only; traversal attempts, malformed paths and listings refused. */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { serveReport, resolveRequest, type ReportServer } from '../src/report/serve.js';
import { startServe } from '../src/cli/report.js';
import { tempDir } from './helpers/report-fixture.js';

let tmp: { dir: string; cleanup: () => Promise<void> };
let root: string;
let srv: ReportServer;

before(async () => {
  tmp = await tempDir('serve');
  root = join(tmp.dir, 'out');
  await mkdir(join(root, 'cat', 'report', 'thumb'), { recursive: true });
  await writeFile(join(root, 'report.html'), '<!DOCTYPE html><title>r</title>');
  await writeFile(join(root, 'cat', 'report', 'thumb', '0001.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xd9]));
  await writeFile(join(root, 'cat', 'a b#%.txt'), 'odd name');
  await writeFile(join(tmp.dir, 'secret.txt'), 'SECRET');
  await mkdir(join(tmp.dir, 'out-sibling'));
  await writeFile(join(tmp.dir, 'out-sibling', 'x.txt'), 'SIBLING');
  await symlink(join(tmp.dir, 'secret.txt'), join(root, 'link-out.txt'));
  await symlink(join(root, 'report.html'), join(root, 'link-in.html'));
  srv = await serveReport({ root, port: 0 });
});
after(async () => {
  await srv?.close();
  await tmp?.cleanup();
});

/** A raw request: the path is sent exactly as given (no client-side normalisation of '..'). */
function get(path: string, o: { method?: string; host?: string } = {}): Promise<{ status: number; body: string; type: string | undefined; headers: Record<string, unknown> }> {
  return new Promise((ok, fail) => {
    const req = request({ host: '127.0.0.1', port: srv.port, path, method: o.method ?? 'GET', headers: { host: o.host ?? `127.0.0.1:${srv.port}` } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), type: res.headers['content-type'], headers: res.headers }));
    });
    req.on('error', fail);
    req.end();
  });
}

test('serves the report at / and files below the folder, with content types', async () => {
  assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+\/$/);
  const r = await get('/');
  assert.equal(r.status, 200);
  assert.match(r.body, /<title>r<\/title>/);
  assert.match(r.type ?? '', /^text\/html/);
  const j = await get('/cat/report/thumb/0001.jpg?cache=1#x');
  assert.equal(j.status, 200);
  assert.equal(j.type, 'image/jpeg');
  assert.equal((await get('/cat/a%20b%23%25.txt')).body, 'odd name', 'percent-encoded names decoded once');
  assert.equal((await get('/link-in.html')).status, 200, 'a link inside the folder is fine');
  const h = await get('/report.html', { method: 'HEAD' });
  assert.deepEqual([h.status, h.body], [200, '']);
});

test('traversal attempts: .., encoded %2e%2e and %2f, absolute paths, links out -> 400/404, never the file', async () => {
  const attempts = [
    '/../secret.txt',
    '/cat/../../secret.txt',
    '/%2e%2e/secret.txt',
    '/%2E%2E/%2e%2e/secret.txt',
    '/cat/%2e%2e%2f%2e%2e%2fsecret.txt',
    '/..%2fsecret.txt',
    '/.%2e/secret.txt',
    '/%2e./secret.txt',
    '/../out-sibling/x.txt',
    `/${encodeURIComponent(join(tmp.dir, 'secret.txt'))}`,
    `/${join(tmp.dir, 'secret.txt')}`,
    `//${join(tmp.dir, 'secret.txt').slice(1)}`,
    '/etc/passwd',
    '//etc/passwd',
    '/link-out.txt',
    '/..\\secret.txt',
    '/%5c..%5csecret.txt',
    '/./report.html',
  ];
  for (const p of attempts) {
    const r = await get(p);
    assert.ok(r.status === 400 || r.status === 404, `${p}: status ${r.status}`);
    assert.ok(!r.body.includes('SECRET') && !r.body.includes('SIBLING'), `${p}: leaked`);
  }
  assert.equal((await get('/%2e%2e/secret.txt')).status, 404);
  assert.equal((await get('/link-out.txt')).status, 404);
});

test('malformed: bad percent-encoding and NUL are 400; absolute-form targets are 400', async () => {
  assert.equal((await get('/%E0%A4%A')).status, 400);
  assert.equal((await get('/%zz')).status, 400);
  assert.equal((await get('/report.html%00.png')).status, 400);
  assert.equal((await get('/%c0%ae%c0%ae/secret.txt')).status, 400, 'overlong UTF-8 dots');
  assert.equal((await resolveRequest(root, 'http://example.com/report.html')).status, 400);
  assert.equal((await resolveRequest(root, '*')).status, 400);
});

test('no directory listings; missing files 404; only GET and HEAD', async () => {
  assert.equal((await get('/cat/')).status, 404);
  assert.equal((await get('/cat')).status, 404);
  assert.equal((await get('/cat/report/thumb/')).status, 404);
  assert.equal((await get('/nope.html')).status, 404);
  assert.equal((await get('/report.html', { method: 'POST' })).status, 405);
  assert.equal((await get('/report.html', { method: 'PUT' })).status, 405);
});

test('loopback server refuses foreign Host headers (DNS rebinding)', async () => {
  assert.equal((await get('/', { host: 'evil.example:80' })).status, 403);
  assert.equal((await get('/', { host: `localhost:${srv.port}` })).status, 200);
  assert.equal((await get('/', { host: `[::1]:${srv.port}` })).status, 200);
});

test('startServe builds a missing report.html first; --no-build does not', async () => {
  const t = await tempDir('serve-build');
  try {
    await mkdir(join(t.dir, 'c'));
    await writeFile(join(t.dir, 'c', 'scores.csv'), 'path,defect,label,score,score_rscin\nx.png,,,1,1\n');
    const lines: string[] = [];
    const s1 = await startServe(t.dir, { port: 0, host: '127.0.0.1', build: false }, (l) => lines.push(l));
    try {
      const r = await new Promise<number>((ok, fail) => request(`${s1.url}`, (res) => { res.resume(); ok(res.statusCode ?? 0); }).on('error', fail).end());
      assert.equal(r, 404, 'no report.html yet');
    } finally {
      await s1.close();
    }
    const s2 = await startServe(t.dir, { port: 0, host: '127.0.0.1', build: true }, (l) => lines.push(l));
    try {
      const r = await new Promise<number>((ok, fail) => request(`${s2.url}`, (res) => { res.resume(); ok(res.statusCode ?? 0); }).on('error', fail).end());
      assert.equal(r, 200);
      assert.ok(lines.some((l) => l.startsWith('serving ')));
    } finally {
      await s2.close();
    }
  } finally {
    await t.cleanup();
  }
});

test('issue 16: security headers on every response (CSP with frame-ancestors, X-Frame-Options, nosniff, referrer)', async () => {
  for (const path of ['/', '/cat/report/thumb/0001.jpg', '/missing.png', '/%zz']) {
    const r = await get(path);
    const csp = String(r.headers['content-security-policy'] ?? '');
    assert.match(csp, /frame-ancestors 'none'/, `${path}: ${csp}`);
    assert.match(csp, /default-src 'none'/);
    assert.equal(r.headers['x-frame-options'], 'DENY', path);
    assert.equal(r.headers['x-content-type-options'], 'nosniff', path);
    assert.equal(r.headers['referrer-policy'], 'no-referrer', path);
  }
});

test('issue 16: dotfiles and dot-folders are never served (.env, .cache/, .musc-lock), nor links to them', async () => {
  await writeFile(join(root, '.env'), 'TOKEN=SECRET');
  await mkdir(join(root, '.cache', 'features'), { recursive: true });
  await writeFile(join(root, '.cache', 'features', 'x.safetensors'), 'SECRET');
  await writeFile(join(root, 'cat', '.hidden.png'), 'SECRET');
  await symlink(join(root, '.env'), join(root, 'env-link.txt'));
  for (const path of ['/.env', '/.cache/features/x.safetensors', '/cat/.hidden.png', '/%2eenv', '/env-link.txt']) {
    const r = await get(path);
    assert.equal(r.status, 404, path);
    assert.doesNotMatch(r.body, /SECRET/);
  }
});

test('issue 16: a non-loopback --host prints a warning; loopback does not', async () => {
  const warned: string[] = [];
  const a = await serveReport({ root, host: '0.0.0.0', port: 0, warn: (l) => warned.push(l) });
  await a.close();
  assert.equal(warned.length, 1);
  assert.match(warned[0]!, /0\.0\.0\.0, not a loopback address/);
  const b = await serveReport({ root, host: '127.0.0.1', port: 0, warn: (l) => warned.push(l) });
  await b.close();
  assert.equal(warned.length, 1);
});
