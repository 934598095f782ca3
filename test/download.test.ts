import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type IncomingMessage } from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { downloadHubFile, cachedPath, defaultCacheDir, hfUrl, DownloadError } from '../src/backbones/download.js';

const body = Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 31 + (i >> 8)) & 0xff));
const sha = createHash('sha256').update(body).digest('hex');
const requests: Array<{ url: string; range?: string; auth?: string }> = [];
let server: Server;
let endpoint = '';
const root = mkdtempSync(join(tmpdir(), 'musc-dl-test-'));

before(async () => {
  server = createServer((req: IncomingMessage, res) => {
    requests.push({ url: req.url ?? '', range: req.headers.range, auth: req.headers.authorization });
    if (req.url?.includes('missing')) {
      res.writeHead(404).end('not found');
      return;
    }
    if (req.url?.includes('gated') && req.headers.authorization !== 'Bearer sekret') {
      res.writeHead(401).end('no');
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (m) {
      const start = Number(m[1]);
      res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
      res.end(body.subarray(start));
      return;
    }
    res.writeHead(200, { 'content-length': body.length });
    // send in two chunks so progress is reported more than once
    res.write(body.subarray(0, 100_000));
    setTimeout(() => res.end(body.subarray(100_000)), 10);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise<void>((r) => server.close(() => r()));
  rmSync(root, { recursive: true, force: true });
});

test('cache dir: MUSC_CACHE, then XDG_CACHE_HOME/musc, then ~/.cache/musc; URL from HF_ENDPOINT', () => {
  assert.equal(defaultCacheDir({ MUSC_CACHE: '/x/y', XDG_CACHE_HOME: '/z' }), '/x/y');
  assert.equal(defaultCacheDir({ XDG_CACHE_HOME: '/z' }), '/z/musc');
  assert.match(defaultCacheDir({}), /\.cache\/musc$/);
  assert.equal(hfUrl('a/b', 'm.safetensors', {}), 'https://huggingface.co/a/b/resolve/main/m.safetensors');
  assert.equal(hfUrl('a/b', 'm.safetensors', { HF_ENDPOINT: 'http://h:1/' }), 'http://h:1/a/b/resolve/main/m.safetensors');
});

test('full download with progress, sha256 checked, token header, then served from the cache', async () => {
  const cacheDir = join(root, 'full');
  requests.length = 0;
  const seen: number[] = [];
  const r = await downloadHubFile('org/model', 'model.safetensors', {
    cacheDir, sha256: sha, env: { HF_ENDPOINT: endpoint, HF_TOKEN: 'sekret' }, onProgress: (got, total) => { seen.push(got); assert.equal(total, body.length); },
  });
  assert.equal(r.path, cachedPath('org/model', 'model.safetensors', cacheDir));
  assert.equal(r.cached, false);
  assert.equal(r.sha256, sha);
  assert.deepEqual(readFileSync(r.path), body);
  assert.equal(requests.length, 1);
  assert.equal(requests[0].url, '/org/model/resolve/main/model.safetensors');
  assert.equal(requests[0].auth, 'Bearer sekret');
  assert.equal(requests[0].range, undefined);
  assert.ok(seen.length >= 2 && seen[seen.length - 1] === body.length);
  assert.ok(!existsSync(r.path + '.partial'));
  const again = await downloadHubFile('org/model', 'model.safetensors', { cacheDir, sha256: sha, env: { HF_ENDPOINT: endpoint } });
  assert.equal(again.cached, true);
  assert.equal(requests.length, 1, 'no second request');
});

test('HUGGING_FACE_HUB_TOKEN is honoured for a gated repo; without a token the error says so', async () => {
  const cacheDir = join(root, 'gated');
  const r = await downloadHubFile('org/gated', 'w.safetensors', { cacheDir, env: { HF_ENDPOINT: endpoint, HUGGING_FACE_HUB_TOKEN: 'sekret' } });
  assert.equal(r.sha256, sha);
  await assert.rejects(downloadHubFile('org/gated', 'w2.safetensors', { cacheDir, env: { HF_ENDPOINT: endpoint } }), /HTTP 401.*HF_TOKEN/);
  await assert.rejects(downloadHubFile('org/missing', 'w.safetensors', { cacheDir, env: { HF_ENDPOINT: endpoint } }), /HTTP 404/);
});

test('resumes a partial download with an HTTP Range request', async () => {
  const cacheDir = join(root, 'resume');
  const dest = cachedPath('org/model', 'model.safetensors', cacheDir);
  mkdirSync(dirname(dest), { recursive: true });
  writeFileSync(dest + '.partial', body.subarray(0, 123_457));
  requests.length = 0;
  const r = await downloadHubFile('org/model', 'model.safetensors', { cacheDir, sha256: sha, env: { HF_ENDPOINT: endpoint } });
  assert.equal(requests.length, 1);
  assert.equal(requests[0].range, 'bytes=123457-');
  assert.equal(r.sha256, sha);
  assert.deepEqual(readFileSync(dest), body);
  assert.ok(!existsSync(dest + '.partial'));
});

test('checksum mismatch: error, bad file not kept', async () => {
  const cacheDir = join(root, 'bad');
  const wrong = 'ab'.repeat(32);
  await assert.rejects(
    downloadHubFile('org/model', 'model.safetensors', { cacheDir, sha256: wrong, env: { HF_ENDPOINT: endpoint } }),
    (e: Error) => e instanceof DownloadError && e.message.includes(sha) && e.message.includes(wrong) && /deleted/.test(e.message),
  );
  const dest = cachedPath('org/model', 'model.safetensors', cacheDir);
  assert.ok(!existsSync(dest));
  assert.ok(!existsSync(dest + '.partial'));
});

test('offline (connection refused): the error names the URL and the destination path', async () => {
  // a port that was just free: listen, note it, close
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  const cacheDir = join(root, 'offline');
  const url = `http://127.0.0.1:${port}/org/model/resolve/main/model.safetensors`;
  const dest = cachedPath('org/model', 'model.safetensors', cacheDir);
  await assert.rejects(
    downloadHubFile('org/model', 'model.safetensors', { cacheDir, env: { HF_ENDPOINT: `http://127.0.0.1:${port}` } }),
    (e: Error) => e instanceof DownloadError && e.message.includes(url) && e.message.includes(dest) && /ECONNREFUSED/.test(e.message),
  );
  assert.ok(!existsSync(dest));
});
