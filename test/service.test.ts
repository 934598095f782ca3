/**
 * `musc api` (src/service): a real service on a random loopback port with the real bank library
 * and the offline resnet50. A bank is built as a job from a server-side folder, then: predict
 * equals the library's predict for the same bank and image (JSON and PNGs); bad images, bombs,
 * oversized and mistyped bodies get a clear 4xx and the service keeps running; a full queue
 * answers 429 with Retry-After (no 5xx); a bank is hot-swapped while requests are in flight;
 * the token rule (binding check as a function; 401/200 on a service with a token); security
 * headers; metrics; the checked-in docs/openapi.json equals the served document; the web page
 * in headless Chromium, and the page of a `musc api --token-file` child asking for the token;
 * SIGTERM to a `musc api` child drains a request in flight, and cancels a running build (in its
 * extraction, in its scoring) and a queued one, leaving no bank or temporary.
 */

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { closeBank, type ImagePrediction, openBank, predict, renderHeatmapPng, renderMaskPng } from '../src/bank/index.js';
import { openapiText } from '../src/cli/api.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { createBankEngine } from '../src/service/bank-engine.js';
import { checkBinding, DEFAULT_SERVICE_CONFIG, loadToken, type ServiceConfig } from '../src/service/config.js';
import { createService, type Service } from '../src/service/server.js';
import { repoRoot } from './helpers/cli-env.js';
import { artifactsDir } from './helpers/report-fixture.js';
import { call, noChromium, openBrowser, type Res, startApi, texturePng as png } from './helpers/service-client.js';

const TOKEN = 'service-test-token-0123456789';
let dir = '';
let banks = '';
let svc: Service;
let url = '';
const engine = createBankEngine({ backbone: 'resnet50', device: 'cpu' });

function config(over: Partial<ServiceConfig> = {}): ServiceConfig {
  return {
    ...DEFAULT_SERVICE_CONFIG,
    port: 0,
    banksDir: banks,
    dataRoot: join(dir, 'data'),
    queueDepth: 1,
    maxBodyBytes: 2 * 1024 * 1024,
    maxPixels: 1_000_000,
    ...over,
  };
}

const postImage = (path: string, bytes: Buffer, base = url, type = 'image/png'): Promise<Res> =>
  call(base, 'POST', path, bytes, { 'content-type': type });

/** multipart/form-data with file parts */
function multipart(files: { name: string; bytes: Buffer }[]): { body: Buffer; type: string } {
  const b = '----musc-test-boundary';
  const parts: Buffer[] = [];
  for (const f of files) {
    parts.push(
      Buffer.from(`--${b}\r\nContent-Disposition: form-data; name="image"; filename="${f.name}"\r\nContent-Type: image/png\r\n\r\n`),
      f.bytes,
      Buffer.from('\r\n'),
    );
  }
  parts.push(Buffer.from(`--${b}--\r\n`));
  return { body: Buffer.concat(parts), type: `multipart/form-data; boundary=${b}` };
}

// biome-ignore lint/suspicious/noExplicitAny: the job view as served (fields asserted by the callers)
async function waitJob(base: string, location: string, headers: Record<string, string> = {}): Promise<any> {
  const deadline = Date.now() + 240_000;
  const seen = new Set<string>();
  for (;;) {
    const j = (await call(base, 'GET', location, undefined, headers)).json();
    seen.add(j.state);
    if (j.state === 'done' || j.state === 'failed') return { ...j, seen };
    assert.ok(Date.now() < deadline, `job still ${j.state} (${JSON.stringify(j.progress)})`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const fields = (p: ImagePrediction | Record<string, unknown>) => {
  const { name, score, imageScore, normalized, verdict, threshold, pixelThreshold, width, height, regions } = p as ImagePrediction;
  return { name, score, imageScore, normalized, verdict, threshold, pixelThreshold, width, height, regions };
};

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'musc-service-'));
  banks = join(dir, 'banks');
  await mkdir(banks);
  await mkdir(join(dir, 'data', 'good'), { recursive: true });
  for (let i = 0; i < 8; i++) await writeFile(join(dir, 'data', 'good', `g${i}.png`), await png(i + 1));
  await writeFile(join(dir, 'secret.png'), await png(77));
  // a half-built bank of a process that was killed
  await mkdir(join(banks, '.musc-tmp-line.bank.999999.0badf00d'));
  await writeFile(join(banks, '.musc-tmp-line.bank.999999.0badf00d', 'manifest.json'), '{');
  svc = await createService(config(), engine, () => undefined);
  url = await svc.listen();
});

after(async () => {
  await svc?.close();
  await shutdownCompute();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('build a bank from a server-side folder as a job (202, progress, loaded); paths outside the data root refused', {
  timeout: 300_000,
}, async () => {
  assert.ok(!existsSync(join(banks, '.musc-tmp-line.bank.999999.0badf00d')), 'stale half-built bank removed at start');
  for (const folder of ['../secret.png', '/etc', 'good/../../', 'missing', 'good\\..']) {
    const r = await call(url, 'POST', '/v1/banks/line/build', JSON.stringify({ folder }), { 'content-type': 'application/json' });
    assert.equal(r.status, 400, `${folder}: ${r.body}`);
  }
  for (const name of ['..', 'a.b', '%2e%2e%2fx', 'a%2Fb'])
    assert.equal(
      (await call(url, 'POST', `/v1/banks/${name}/build`, '{"folder":"good"}', { 'content-type': 'application/json' })).status,
      name === '..' ? 404 : 400,
      name,
    );
  const r = await call(url, 'POST', '/v1/banks/line/build', JSON.stringify({ folder: 'good' }), { 'content-type': 'application/json' });
  assert.equal(r.status, 202, String(r.body));
  assert.match(String(r.headers.location), /^\/v1\/jobs\/[0-9a-f-]{36}$/);
  const job = await waitJob(url, String(r.headers.location));
  assert.equal(job.state, 'done', job.error);
  assert.equal(job.version, 1);
  assert.ok(job.seen.has('running') || job.seen.has('queued'));
  assert.ok(job.progress.total > 0 && job.progress.done === job.progress.total, JSON.stringify(job.progress));
  const list = (await call(url, 'GET', '/v1/banks')).json();
  assert.deepEqual(
    list.banks.map((b: { name: string; loaded: boolean }) => [b.name, b.loaded]),
    [['line', true]],
  );
  assert.equal(list.banks[0].info.images, 8);
  // the settings recorded in the bank: the run's image score rule, no score grid
  assert.equal(list.banks[0].info.imageScore, 'top:0.025');
  assert.equal(list.banks[0].info.scoreGrid, null);
  assert.deepEqual(list.banks[0].info.fuseSizes, []); // service builds use one input size, as musc bank build
  assert.equal(list.banks[0].info.densityExponent, null); // MSM's distances (a bank built with --density-exponent shows it)
  assert.equal(list.banks[0].info.densityScope, null);
});

test('build from uploaded images (multipart): unreadable files skipped with the reason, load=false leaves it unloaded', {
  timeout: 300_000,
}, async () => {
  const files = [
    { name: 'a.png', bytes: await png(11) },
    { name: 'a.png', bytes: await png(12) },
    { name: '../../b.png', bytes: await png(13) },
    { name: 'bad.png', bytes: Buffer.from('not an image') },
  ];
  const mp = multipart(files);
  const withField = Buffer.concat([
    Buffer.from('------musc-test-boundary\r\nContent-Disposition: form-data; name="load"\r\n\r\nfalse\r\n'),
    mp.body,
  ]);
  const r = await call(url, 'POST', '/v1/banks/up/upload', withField, { 'content-type': mp.type });
  assert.equal(r.status, 202, String(r.body));
  const job = await waitJob(url, String(r.headers.location));
  assert.equal(job.state, 'done', job.error);
  assert.ok(
    job.warnings.some((w: string) => /^skipped bad\.png: not an image/.test(w)),
    JSON.stringify(job.warnings),
  );
  assert.equal(job.version, undefined);
  const up = (await call(url, 'GET', '/v1/banks')).json().banks.find((b: { name: string }) => b.name === 'up');
  assert.deepEqual(up, { name: 'up', loaded: false });
  const info = JSON.parse(await readFile(join(banks, 'up.bank', 'manifest.json'), 'utf8'));
  assert.deepEqual(
    info.images.map((i: { name: string }) => i.name).sort(),
    ['a-2.png', 'a.png', 'b.png'],
    'repeated names numbered, directories dropped',
  );
  assert.equal((await call(url, 'POST', '/v1/banks/up/upload', 'x', { 'content-type': 'text/plain' })).status, 415);
  assert.equal((await call(url, 'POST', '/v1/banks/up/unload')).json().unloaded, false);
});

test('predict (raw body, multipart, PNGs) equals the library predict for the same bank and image', { timeout: 300_000 }, async () => {
  const img = await png(50, [40, 30]);
  const raw = await postImage('/v1/banks/line/predict?name=spot.png&include=heatmap', img);
  assert.equal(raw.status, 200, String(raw.body));
  const got = raw.json();
  assert.equal(got.bank, 'line');
  assert.equal(got.bankVersion, 1);
  const bank = await openBank(join(banks, 'line.bank'));
  try {
    const lib = (await predict(bank, [{ name: 'spot.png', bytes: img }], { maps: true })).predictions[0]!;
    assert.deepEqual(fields(got.prediction), fields(lib));
    for (const k of ['decodeMs', 'backboneMs', 'scoringMs', 'postMs', 'queueMs', 'totalMs'])
      assert.equal(typeof got.prediction.timings[k], 'number', k);
    assert.ok(Buffer.from(got.prediction.images.heatmap, 'base64').equals(await renderHeatmapPng(img, lib)), 'heatmap PNG');
    const mp = multipart([{ name: 'spot.png', bytes: img }]);
    const viaMultipart = await call(url, 'POST', '/v1/banks/line/predict', mp.body, { 'content-type': mp.type });
    assert.equal(viaMultipart.status, 200, String(viaMultipart.body));
    assert.deepEqual(fields(viaMultipart.json().prediction), fields(lib));
    const mask = await postImage('/v1/banks/line/predict?render=mask&name=spot.png', img);
    assert.equal(mask.headers['content-type'], 'image/png');
    assert.equal(mask.headers['x-musc-verdict'], lib.verdict);
    assert.ok(mask.body.equals(await renderMaskPng(lib)), 'mask PNG');
  } finally {
    await closeBank(bank);
  }
  const good = await png(60);
  const mp = multipart([
    { name: 'a.png', bytes: img },
    { name: 'b.png', bytes: good },
  ]);
  const batch = await call(url, 'POST', '/v1/banks/line/predict-batch', mp.body, { 'content-type': mp.type });
  assert.equal(batch.status, 200, String(batch.body));
  const preds = batch.json().predictions;
  assert.deepEqual(
    preds.map((p: ImagePrediction) => p.name),
    ['a.png', 'b.png'],
  );
  assert.equal(preds[0].score, got.prediction.score, 'batch scores each image against the bank alone');
  assert.ok(preds[0].score > preds[1].score, 'the defect scores above the good image');
});

test('bad images, bombs, oversized and mistyped bodies: a clear 4xx, and the service keeps running', { timeout: 120_000 }, async () => {
  const bomb = await sharp({ create: { width: 2000, height: 1000, channels: 3, background: '#000' } })
    .png()
    .toBuffer();
  const full = await png(3);
  const cases: [string, Buffer, string, number, RegExp][] = [
    ['text', Buffer.from('this is not an image'), 'image/png', 422, /not an image/],
    ['truncated', full.subarray(0, 200), 'image/png', 422, /corrupt or truncated png/],
    ['bomb', bomb, 'image/png', 422, /2000x1000 = 2000000 pixels, over the limit of 1000000/],
    ['empty', Buffer.alloc(0), 'image/png', 422, /empty|not an image/],
    ['too large', Buffer.alloc(3 * 1024 * 1024), 'application/octet-stream', 413, /too large/],
    ['wrong type', Buffer.from('{}'), 'application/json', 415, /image/],
  ];
  for (const [what, body, type, status, reason] of cases) {
    const r = await postImage('/v1/banks/line/predict', body, url, type);
    assert.equal(r.status, status, `${what}: ${r.body}`);
    assert.match(r.json().message, reason, what);
  }
  const mp = multipart([
    { name: 'ok.png', bytes: full },
    { name: 'bad.png', bytes: Buffer.from('nope') },
  ]);
  const b = await call(url, 'POST', '/v1/banks/line/predict-batch', mp.body, { 'content-type': mp.type });
  assert.equal(b.status, 422);
  assert.deepEqual(b.json().images, [{ name: 'bad.png', reason: 'not an image (unrecognised file signature)' }]);
  const big = multipart([
    { name: 'x.png', bytes: Buffer.alloc(1200 * 1024, 1) },
    { name: 'y.png', bytes: Buffer.alloc(1200 * 1024, 2) },
  ]);
  const tooMuch = await call(url, 'POST', '/v1/banks/line/predict-batch', big.body, { 'content-type': big.type });
  assert.equal(tooMuch.status, 413, 'a multipart body over --max-body-mb in all');
  assert.match(tooMuch.json().message, /over 2097152 bytes in all/);
  assert.equal((await postImage('/v1/banks/nobank/predict', full)).status, 404);
  assert.equal((await call(url, 'GET', '/healthz')).status, 200);
  assert.equal((await call(url, 'GET', '/readyz')).json().status, 'ready');
});

test('a full queue answers 429 with Retry-After (queue depth 1: one computing, one waiting); no 5xx', { timeout: 300_000 }, async () => {
  const img = await png(51);
  const rs = await Promise.all([0, 1, 2, 3, 4].map(() => postImage('/v1/banks/line/predict', img)));
  const statuses = rs.map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 200, 429, 429, 429]);
  for (const r of rs.filter((x) => x.status === 429)) {
    assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After ${r.headers['retry-after']}`);
    assert.equal(r.json().error, 'queue_full');
  }
  const m = (await call(url, 'GET', '/metrics')).body.toString();
  assert.match(m, /musc_rejected_total\{reason="queue_full"\} 3/);
  assert.match(m, /musc_queue_depth 0/);
  assert.match(m, /musc_http_request_duration_seconds_bucket\{le="0.005",method="POST",route="\/v1\/banks\/:name\/predict"\}/);
  assert.match(m, /musc_images_scored_total\{verdict="(OK|NG)"\} \d+/);
  assert.match(m, /musc_http_requests_total\{method="POST",route="\/v1\/banks\/:name\/predict",status="429"\} 3/);
  assert.match(m, /musc_process_resident_memory_bytes \d+/);
});

test('a client that gives up while queued: its slot is freed after its turn and nothing is computed for it', {
  timeout: 300_000,
}, async () => {
  const img = await png(55);
  const scored = async (): Promise<number> => {
    const m = (await call(url, 'GET', '/metrics')).body.toString();
    return [...m.matchAll(/^musc_images_scored_total\{verdict="\w+"\} (\d+)$/gm)].reduce((a, x) => a + Number(x[1]), 0);
  };
  const before = await scored();
  const first = postImage('/v1/banks/line/predict', img);
  const gone = request(url + '/v1/banks/line/predict', {
    method: 'POST',
    headers: { 'content-type': 'image/png', 'content-length': String(img.length) },
  });
  gone.on('error', () => undefined);
  gone.end(img);
  for (;;) {
    const m = (await call(url, 'GET', '/metrics')).body.toString();
    if (/musc_queue_depth 2/.test(m)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  gone.destroy();
  assert.equal((await postImage('/v1/banks/line/predict', img)).status, 429, 'the slot stays taken while the first computes');
  assert.equal((await first).status, 200);
  for (;;) {
    const m = (await call(url, 'GET', '/metrics')).body.toString();
    if (/musc_queue_depth 0/.test(m)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(await scored(), before + 1, 'only the first image was scored');
});

test('hot swap: loading a new version under the same name drops no request', { timeout: 300_000 }, async () => {
  // the new version: the bank rebuilt elsewhere from 6 of the 8 images, moved into place
  const staging = join(dir, 'staging');
  await mkdir(join(staging, 'imgs'), { recursive: true });
  for (let i = 0; i < 6; i++) await cp(join(dir, 'data', 'good', `g${i}.png`), join(staging, 'imgs', `g${i}.png`));
  await engine.build({ images: join(staging, 'imgs'), out: join(staging, 'line.bank'), maxPixels: 1_000_000 });
  const img = await png(52, [10, 10]);
  const first = postImage('/v1/banks/line/predict', img);
  const second = postImage('/v1/banks/line/predict', img);
  await new Promise((r) => setTimeout(r, 50));
  await rm(join(banks, 'line.bank'), { recursive: true });
  await rename(join(staging, 'line.bank'), join(banks, 'line.bank'));
  const load = await call(url, 'POST', '/v1/banks/line/load');
  assert.equal(load.status, 200, String(load.body));
  assert.equal(load.json().version, 2);
  assert.equal(load.json().info.images, 6);
  const [a, b] = await Promise.all([first, second]);
  const third = await postImage('/v1/banks/line/predict', img);
  for (const r of [a, b, third]) assert.equal(r.status, 200, String(r.body));
  assert.deepEqual([a.json().bankVersion, b.json().bankVersion], [1, 1], 'requests admitted before the swap finish on the old version');
  assert.equal(third.json().bankVersion, 2);
  assert.notEqual(third.json().prediction.score, a.json().prediction.score, 'scored against the new bank');
});

test('binding rule and bearer token', { timeout: 60_000 }, async () => {
  assert.deepEqual(checkBinding('127.0.0.1', undefined), []);
  assert.deepEqual(checkBinding('::1', undefined), []);
  assert.throws(() => checkBinding('0.0.0.0', undefined), /requires a bearer token/);
  assert.throws(() => checkBinding('192.168.1.5', undefined), /requires a bearer token/);
  assert.throws(() => checkBinding('0.0.0.0', 'short'), /too short/);
  const warnings = checkBinding('0.0.0.0', TOKEN);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /reachable from other machines/);
  const tf = join(dir, 'token.txt');
  await writeFile(tf, `${TOKEN}\n`);
  assert.equal(await loadToken(tf, {}), TOKEN);
  assert.equal(await loadToken(undefined, { MUSC_API_TOKEN: TOKEN }), TOKEN);
  assert.equal(await loadToken(undefined, {}), undefined);
  await assert.rejects(loadToken(join(dir, 'none'), {}), /cannot read/);

  const guarded = await createService(config({ token: TOKEN }), engine, () => undefined);
  const gurl = await guarded.listen();
  try {
    const bearer = { authorization: `Bearer ${TOKEN}` };
    for (const h of [
      {} as Record<string, string>,
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: TOKEN },
      { authorization: `Basic ${TOKEN}` },
      { authorization: 'Bearer ' },
    ]) {
      const r = await call(gurl, 'GET', '/v1/banks', undefined, h);
      assert.equal(r.status, 401, JSON.stringify(h));
      assert.equal(r.headers['www-authenticate'], 'Bearer');
    }
    assert.equal((await call(gurl, 'GET', '/v1/banks', undefined, bearer)).status, 200);
    assert.equal((await call(gurl, 'GET', '/metrics')).status, 401);
    assert.equal((await postImage('/v1/banks/line/predict', await png(5), gurl)).status, 401, 'refused before the body is read');
    for (const p of ['/healthz', '/readyz', '/', '/ui.js']) assert.equal((await call(gurl, 'GET', p)).status, 200, p);
  } finally {
    await guarded.close();
  }
  // on loopback, a foreign Host header (DNS rebinding) is refused
  assert.equal((await call(url, 'GET', '/v1/banks', undefined, { host: 'attacker.example:80' })).status, 403);
  assert.equal((await call(url, 'GET', '/v1/banks', undefined, { host: `localhost:${new URL(url).port}` })).status, 200);
});

test('security headers; unknown routes and jobs', async () => {
  const r = await call(url, 'GET', '/');
  assert.equal(r.status, 200);
  const csp = String(r.headers['content-security-policy']);
  for (const d of ["default-src 'self'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"]) assert.ok(csp.includes(d), d);
  assert.equal(r.headers['x-frame-options'], 'DENY');
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.equal(r.headers['referrer-policy'], 'no-referrer');
  assert.equal((await call(url, 'GET', '/v1/banks/line.bank')).status, 404);
  assert.equal((await call(url, 'GET', '/etc/passwd')).status, 404);
  assert.equal((await call(url, 'GET', '/v1/jobs/00000000-0000-0000-0000-000000000000')).status, 404);
  await mkdir(join(banks, 'broken.bank'));
  await writeFile(join(banks, 'broken.bank', 'manifest.json'), '{"format": "musc-bank"');
  const broken = await call(url, 'POST', '/v1/banks/broken/load');
  assert.equal(broken.status, 422, String(broken.body));
  assert.equal(broken.json().error, 'bad_bank');
  assert.match(broken.json().message, /broken\.bank/);
  await rm(join(banks, 'broken.bank'), { recursive: true });
  assert.equal((await call(url, 'POST', '/v1/banks/nothere/load')).status, 404);
  assert.equal((await call(url, 'GET', '/v1/jobs/..%2f..%2fx')).status, 400);
});

test('docs/openapi.json equals the document the service serves', async () => {
  const served = (await call(url, 'GET', '/openapi.json')).json();
  const checkedIn = JSON.parse(await readFile(join(repoRoot, 'docs', 'openapi.json'), 'utf8'));
  assert.deepEqual(checkedIn, served, 'regenerate with: node dist/src/cli/main.js api --print-openapi > docs/openapi.json');
  assert.equal(await openapiText(), JSON.stringify(served, null, 2) + '\n');
  for (const p of [
    '/v1/banks',
    '/v1/banks/{name}/load',
    '/v1/banks/{name}/unload',
    '/v1/banks/{name}/predict',
    '/v1/banks/{name}/predict-batch',
    '/v1/banks/{name}/build',
    '/v1/banks/{name}/upload',
    '/v1/jobs/{id}',
    '/healthz',
    '/readyz',
    '/metrics',
  ]) {
    assert.ok(served.paths[p], p);
  }
  assert.ok(served.paths['/v1/banks/{name}/predict'].post.requestBody.content['image/*']);
});

test('the web page in headless Chromium: pick the bank, drop an image, see verdict, heatmap and regions', {
  skip: noChromium,
  timeout: 240_000,
}, async () => {
  const browser = await openBrowser(url);
  try {
    const page = await browser.ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(url + '/');
    await page.waitForSelector('body[data-state="ready"]');
    assert.equal(await page.locator('#bank').inputValue(), 'line');
    const img = await png(53, [50, 20]);
    await page.setInputFiles('#file', { name: 'part.png', mimeType: 'image/png', buffer: img });
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 200_000 });
    const shownScore = await page.locator('#score').textContent();
    assert.equal(await page.locator('body').getAttribute('data-state'), 'done', (await page.locator('#error').textContent()) ?? '');
    const api = (await postImage('/v1/banks/line/predict?name=part.png', img)).json().prediction;
    assert.equal(await page.locator('#verdict').textContent(), api.verdict);
    assert.equal(shownScore, api.score.toFixed(4));
    assert.equal(await page.locator('#image-name').textContent(), 'part.png');
    assert.equal(await page.locator('#regions tbody tr').count(), api.regions.length);
    const loaded = await page
      .locator('#heatmap')
      .evaluate((e) => (e as unknown as { complete: boolean; naturalWidth: number }).naturalWidth);
    assert.equal(loaded, api.width, 'heatmap at the original width');
    // dropping a file on the drop zone does the same
    const dropped = await png(56);
    const dt = await page.evaluateHandle(`(() => {
      const bytes = Uint8Array.from(atob('${dropped.toString('base64')}'), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], 'dropped.png', { type: 'image/png' }));
      return dt;
    })()`);
    await page.dispatchEvent('#drop', 'drop', { dataTransfer: dt });
    await page.locator('#image-name', { hasText: 'dropped.png' }).waitFor({ timeout: 200_000 });
    await page.waitForSelector('body[data-state="done"]');
    const droppedApi = (await postImage('/v1/banks/line/predict?name=dropped.png', dropped)).json().prediction;
    assert.equal(await page.locator('#verdict').textContent(), droppedApi.verdict);
    assert.equal(await page.locator('#score').textContent(), droppedApi.score.toFixed(4));
    await mkdir(artifactsDir, { recursive: true });
    await page.screenshot({ path: join(artifactsDir, 'service-page.png'), fullPage: true });
    assert.deepEqual(errors, [], 'no script errors or CSP violations');
  } finally {
    await browser.close();
  }
});

test('the page of a service with a token (--token-file on loopback) asks for it: a wrong one is refused with the reason, the right one lists banks and predicts', {
  skip: noChromium,
  timeout: 300_000,
}, async () => {
  const tf = join(dir, 'page-token.txt');
  await writeFile(tf, `${TOKEN}\n`);
  const api = await startApi(['--banks', banks, '--token-file', tf, '--load', 'line']);
  const browser = await openBrowser(api.base);
  try {
    assert.doesNotMatch(api.stderr(), /warning/, 'a token on loopback: no warning');
    assert.equal((await call(api.base, 'GET', '/v1/banks')).status, 401, 'the token file is used on loopback too');
    const page = await browser.ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => {
      // (Chromium logs each 401 answer as a failed resource load)
      if (m.type() === 'error' && !/status of 401/.test(m.text())) errors.push(m.text());
    });
    await page.goto(api.base + '/');
    await page.locator('#error', { hasText: 'this service needs a token: enter it above' }).waitFor();
    assert.ok(await page.locator('#token').isVisible(), 'the token form is shown');
    assert.equal(await page.locator('#bank option').count(), 0);
    await page.fill('#token', `${TOKEN}x`);
    await page.click('#token-use');
    await page.locator('#error', { hasText: 'the token was refused (401): check it and enter it again' }).waitFor();
    assert.equal(await page.locator('body').getAttribute('data-state'), 'error');
    assert.ok(await page.locator('#token').isVisible(), 'asked again');
    assert.equal(await page.evaluate("sessionStorage.getItem('musc-token')"), null, 'a refused token is forgotten');
    assert.equal(await page.locator('#bank option').count(), 0);
    await page.fill('#token', TOKEN);
    await page.click('#token-use');
    await page.waitForSelector('body[data-state="ready"]');
    assert.ok(await page.locator('#error').isHidden(), 'the error is gone');
    assert.ok(await page.locator('#token-row').isHidden(), 'the token form is gone');
    assert.deepEqual(await page.locator('#bank option').allTextContents(), ['line (v1)', 'up (not loaded)']);
    assert.equal(await page.locator('#bank').inputValue(), 'line');
    const img = await png(57, [30, 40]);
    await page.setInputFiles('#file', { name: 'guarded.png', mimeType: 'image/png', buffer: img });
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 200_000 });
    assert.equal(await page.locator('body').getAttribute('data-state'), 'done', (await page.locator('#error').textContent()) ?? '');
    const bearer = { authorization: `Bearer ${TOKEN}`, 'content-type': 'image/png' };
    const want = (await call(api.base, 'POST', '/v1/banks/line/predict?name=guarded.png', img, bearer)).json().prediction;
    assert.equal(await page.locator('#verdict').textContent(), want.verdict);
    assert.equal(await page.locator('#score').textContent(), want.score.toFixed(4));
    assert.equal(await page.locator('#image-name').textContent(), 'guarded.png');
    assert.equal(await page.locator('#regions tbody tr').count(), want.regions.length);
    const shown = await page.locator('#heatmap').evaluate((e) => (e as unknown as { naturalWidth: number }).naturalWidth);
    assert.equal(shown, want.width, 'the heatmap is shown');
    await page.reload();
    await page.waitForSelector('body[data-state="ready"]');
    assert.ok(await page.locator('#token-row').isHidden(), 'the token is kept for the session');
    assert.deepEqual(errors, [], 'no script errors or CSP violations');
    api.child.kill('SIGTERM');
    assert.equal(await api.exited, 0, api.stderr());
  } finally {
    await browser.close();
    api.kill();
  }
});

test('`musc api --load all`; SIGTERM drains: the request in flight completes, then the process exits 0', { timeout: 300_000 }, async () => {
  const api = await startApi(['--banks', banks, '--load', 'all']);
  try {
    const base = api.base;
    const listed = (await call(base, 'GET', '/v1/banks')).json().banks;
    assert.deepEqual(
      listed.map((b: { name: string; loaded: boolean }) => [b.name, b.loaded]),
      [
        ['line', true],
        ['up', true],
      ],
      '--load all',
    );
    const inflight = postImage('/v1/banks/line/predict', await png(54), base);
    for (;;) {
      const m = (await call(base, 'GET', '/metrics')).body.toString();
      if (/musc_queue_running 1/.test(m)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    api.child.kill('SIGTERM');
    const r = await inflight;
    assert.equal(r.status, 200, String(r.body));
    assert.equal(r.json().bankVersion, 1);
    assert.equal(await api.exited, 0, api.stderr());
    assert.match(api.stderr(), /SIGTERM: draining/);
    await assert.rejects(call(base, 'GET', '/healthz'), /ECONNREFUSED/);
  } finally {
    api.kill();
  }
});

const post = (base: string, path: string, body: unknown): Promise<Res> =>
  call(base, 'POST', path, JSON.stringify(body), { 'content-type': 'application/json' });

/** `musc api --drain-timeout 1`: SIGTERM once the build of 48 images is in `phase`; a second build waits behind it */
async function sigtermDuringBuild(phase: 'extract' | 'score'): Promise<void> {
  const api = await startApi(['--banks', banks, '--data-root', join(dir, 'data'), '--drain-timeout', '1']);
  try {
    const r = await post(api.base, '/v1/banks/slow/build', { folder: 'many' });
    assert.equal(r.status, 202, String(r.body));
    const id = r.json().id as string;
    const queued = await post(api.base, '/v1/banks/later/build', { folder: 'many' });
    assert.equal(queued.json().state, 'queued');
    for (;;) {
      const j = (await call(api.base, 'GET', `/v1/jobs/${id}`)).json();
      assert.ok(j.state === 'queued' || j.state === 'running', `the build ended before SIGTERM: ${JSON.stringify(j)}`);
      if (j.progress.label === phase && j.progress.done > 0) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    const t0 = Date.now();
    api.child.kill('SIGTERM');
    assert.equal(await api.exited, 0, api.stderr());
    const took = Date.now() - t0;
    assert.ok(took < 15_000, `exited ${took} ms after SIGTERM`);
    const log = api.stderr();
    assert.match(
      log,
      new RegExp(`build job ${id} \\(bank slow\\) cancelled: the service is stopping \\(stopped at ${phase} \\d+(\\.\\d{1,2})?/\\d+\\)`),
    );
    assert.match(log, new RegExp(`build job ${queued.json().id} \\(bank later\\) cancelled: the service is stopping \\(not started\\)`));
    for (const name of ['slow', 'later']) assert.ok(!existsSync(join(banks, `${name}.bank`)), `no bank ${name}`);
    const temporaries = async (): Promise<string[]> => (await readdir(banks)).filter((n) => n.startsWith('.musc-tmp'));
    assert.deepEqual(await temporaries(), [], 'no temporary left');
    const next = await startApi(['--banks', banks]);
    try {
      const names = (await call(next.base, 'GET', '/v1/banks')).json().banks.map((b: { name: string }) => b.name);
      assert.deepEqual(names, ['line', 'up']);
      assert.deepEqual(await temporaries(), [], 'none after the next start');
      next.child.kill('SIGTERM');
      assert.equal(await next.exited, 0, next.stderr());
    } finally {
      next.kill();
    }
  } finally {
    api.kill();
  }
}

test('SIGTERM during a bank build (--drain-timeout 1), in extraction and in scoring: the build stops at its next step and is logged as cancelled, a queued one too; the process exits 0; no bank or temporary is left', {
  timeout: 300_000,
}, async () => {
  const many = join(dir, 'data', 'many');
  await mkdir(many);
  for (let i = 0; i < 48; i++) await writeFile(join(many, `m${i}.png`), await png(100 + i));
  await sigtermDuringBuild('extract');
  await sigtermDuringBuild('score');
});
