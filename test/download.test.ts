import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type IncomingMessage } from 'node:http';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { downloadHubFile, cachedPath, defaultCacheDir, hfUrl, DownloadError } from '../src/backbones/download.js';
import { encodeSafetensors } from '../src/io/safetensors.js';
import { backboneInfo, hubWeights, isHubBackbone, listBackbones, UNPINNED_WEIGHTS } from '../src/backbones/registry.js';
import { modelsCommand } from '../src/cli/models.js';

// a real (small) safetensors file: downloads are format-checked
const body = encodeSafetensors({
  w: { dtype: 'F32', shape: [75_000], data: Float32Array.from({ length: 75_000 }, (_, i) => Math.sin(i)) },
});
const sha = createHash('sha256').update(body).digest('hex');
const requests: Array<{ url: string; range?: string; auth?: string }> = [];
let server: Server;
let endpoint = '';
const root = mkdtempSync(join(tmpdir(), 'musc-dl-test-'));

const HTML = '<!DOCTYPE html><html><body>Not here</body></html>\n';
const sockets = new Set<import('node:net').Socket>();

/** The fault cases of issue 16: an HTML page, an endless body, a huge Content-Length, no answer, a stall. */
function hostile(req: IncomingMessage, res: import('node:http').ServerResponse): boolean {
  const u = req.url ?? '';
  if (u.includes('/html/')) {
    res.writeHead(200, { 'content-type': 'text/html', 'content-length': Buffer.byteLength(HTML) }).end(HTML);
    return true;
  }
  if (u.includes('/endless/')) {
    res.writeHead(200); // no Content-Length: chunked, forever
    const chunk = Buffer.alloc(64 * 1024, 7);
    const push = (): void => {
      if (res.destroyed) return;
      res.write(chunk) ? setImmediate(push) : res.once('drain', push);
    };
    res.on('close', () => undefined);
    push();
    return true;
  }
  if (u.includes('/huge/')) {
    res.writeHead(200, { 'content-length': 50_000_000_000 });
    res.write(Buffer.alloc(1000));
    return true;
  }
  if (u.includes('/silent/')) return true; // never answers
  if (u.includes('/stall/')) {
    res.writeHead(200, { 'content-length': body.length });
    res.write(body.subarray(0, 50_000)); // then nothing
    return true;
  }
  return false;
}

before(async () => {
  server = createServer((req: IncomingMessage, res) => {
    requests.push({ url: req.url ?? '', range: req.headers.range, auth: req.headers.authorization });
    if (hostile(req, res)) return;
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
  server.on('connection', (c) => {
    sockets.add(c);
    c.on('close', () => sockets.delete(c));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  for (const c of sockets) c.destroy();
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
    cacheDir,
    sha256: sha,
    env: { HF_ENDPOINT: endpoint, HF_TOKEN: 'sekret' },
    onProgress: (got, total) => {
      seen.push(got);
      assert.equal(total, body.length);
    },
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
  const r = await downloadHubFile('org/gated', 'w.safetensors', {
    cacheDir,
    env: { HF_ENDPOINT: endpoint, HUGGING_FACE_HUB_TOKEN: 'sekret' },
  });
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

const env = (): NodeJS.ProcessEnv => ({ HF_ENDPOINT: endpoint });

test('issue 16: an HTML page is not weights: refused, deleted, never "already cached"', async () => {
  const cacheDir = join(root, 'html');
  const dest = cachedPath('org/html', 'model.safetensors', cacheDir);
  await assert.rejects(downloadHubFile('org/html', 'model.safetensors', { cacheDir, env: env() }), (e: Error) => {
    assert.ok(e instanceof DownloadError);
    assert.match(e.message, /not a valid weight file: not a safetensors file .*an HTML page, not weights/);
    return true;
  });
  assert.ok(!existsSync(dest) && !existsSync(dest + '.partial'));
  // an HTML page already sitting in the cache (from an older musc) is replaced by a real download
  mkdirSync(dirname(cachedPath('org/model', 'model.safetensors', cacheDir)), { recursive: true });
  writeFileSync(cachedPath('org/model', 'model.safetensors', cacheDir), HTML);
  const notes: string[] = [];
  const r = await downloadHubFile('org/model', 'model.safetensors', { cacheDir, env: env(), onNote: (l) => notes.push(l) });
  assert.equal(r.cached, false);
  assert.equal(r.sha256, sha);
  assert.match(notes.join('\n'), /is not accepted .*deleted, downloading again/);
});

test('issue 16: size caps: an endless body and a huge Content-Length are aborted at the cap', async () => {
  const cacheDir = join(root, 'cap');
  const t0 = Date.now();
  await assert.rejects(
    downloadHubFile('org/endless', 'model.safetensors', { cacheDir, env: env(), maxBytes: 2_000_000 }),
    /goes on past the limit of 2000000 bytes; the partial file was deleted/,
  );
  assert.ok(Date.now() - t0 < 10_000);
  assert.ok(!existsSync(cachedPath('org/endless', 'model.safetensors', cacheDir) + '.partial'));
  await assert.rejects(
    downloadHubFile('org/huge', 'model.safetensors', { cacheDir, env: env(), maxBytes: 2_000_000 }),
    /announces 50000000000 bytes, over the limit of 2000000/,
  );
  // a pinned size is a cap too, and must match exactly
  await assert.rejects(
    downloadHubFile('org/model', 'model.safetensors', { cacheDir, env: env(), bytes: body.length - 1 }),
    /over the pinned size/,
  );
  await assert.rejects(
    downloadHubFile('org/model', 'model.safetensors', { cacheDir, env: env(), bytes: body.length + 1 }),
    /its size \d+ bytes differs from the pinned/,
  );
  const ok = await downloadHubFile('org/model', 'model.safetensors', { cacheDir, env: env(), bytes: body.length, sha256: sha });
  assert.equal(ok.pinned, true);
});

test('issue 16: own connect and idle timeouts with a clear message; the stalled partial file resumes', async () => {
  const cacheDir = join(root, 'timeouts');
  let t0 = Date.now();
  await assert.rejects(
    downloadHubFile('org/silent', 'model.safetensors', { cacheDir, env: env(), connectTimeoutMs: 300 }),
    /no response from the server within 0.3 s/,
  );
  assert.ok(Date.now() - t0 < 5_000);
  t0 = Date.now();
  await assert.rejects(
    downloadHubFile('org/stall', 'model.safetensors', { cacheDir, env: env(), idleTimeoutMs: 300 }),
    /interrupted after 50000 bytes \(no data for 0.3 s\); run the command again to resume/,
  );
  assert.ok(Date.now() - t0 < 5_000);
  const partial = cachedPath('org/stall', 'model.safetensors', cacheDir) + '.partial';
  assert.equal(readFileSync(partial).length, 50_000);
});

const pinTitle =
  'issue 16: every hub backbone has its required registry record (pin or none + size cap); pull says when no checksum is pinned';
test(pinTitle, async () => {
  const hub = listBackbones().filter(isHubBackbone);
  assert.ok(hub.length > 0);
  for (const b of hub) {
    const w = hubWeights(b);
    assert.ok(w.maxBytes > 1e7, b.name);
    if (w.pin) assert.match(w.pin.sha256, /^[0-9a-f]{64}$/);
    assert.equal(UNPINNED_WEIGHTS.includes(b.name), w.pin === null, b.name);
  }
  // an unpinned entry through `musc models pull`, against the local server
  const name = UNPINNED_WEIGHTS[0]!;
  const info = backboneInfo(name);
  const cacheDir = join(root, 'pull');
  const prev = process.env.HF_ENDPOINT;
  process.env.HF_ENDPOINT = endpoint;
  let text = '';
  try {
    const cmd = modelsCommand({ out: (t) => (text += t), tty: false });
    cmd.exitOverride();
    await cmd.parseAsync(['node', 'models', 'pull', name, '--cache-dir', cacheDir]);
  } finally {
    if (prev === undefined) delete process.env.HF_ENDPOINT;
    else process.env.HF_ENDPOINT = prev;
  }
  assert.match(text, new RegExp(`${name}: downloaded .*sha256 ${sha}`));
  assert.match(text, /no pinned checksum exists for this file in the registry: checked only that it is a valid safetensors file/);
  assert.ok(existsSync(cachedPath(info.weights.repo, info.weights.file, cacheDir)));
});
