/**
 * Load test of `musc api` on loopback with autocannon, bounded in time:
 *
 *   node dist/bench/service-load.js [--seconds 60] [--overload-seconds 30] [--swap-seconds 30] [--queue-depth 4]
 *
 * Starts `musc api` as a child process on a free loopback port, builds a bank of 8 synthetic
 * 224 px surfaces (src/demo/synthetic.ts) through the API (a build job), then three phases:
 *   sustained  2 connections (within the queue): images/s, latency p50/p99, errors
 *   overload   16 connections against a queue of --queue-depth: 200s, 429s (Retry-After), 5xx
 *   swap       2 connections while the bank is loaded again (hot swap) every 5 s: failed requests
 * Predict bodies alternate a good and a defective image. RSS of the service (from its /metrics)
 * at the start, every 5 s and after each phase (min / max / samples), and the machine's load
 * average at the end of each phase. Writes bench/service-load.json and prints a table.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { generateSynthetic } from '../src/demo/synthetic.js';
import { writeFileAtomic } from '../src/io/atomic.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const cli = join(root, 'dist', 'src', 'cli', 'main.js');

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
}
const SECONDS = arg('--seconds', 60);
const OVERLOAD_SECONDS = arg('--overload-seconds', 30);
const SWAP_SECONDS = arg('--swap-seconds', 30);
const QUEUE_DEPTH = arg('--queue-depth', 4);

async function startService(banks: string, dataRoot: string): Promise<{ child: ChildProcess; base: string }> {
  const child = spawn(
    process.execPath,
    [cli, 'api', '--banks', banks, '--data-root', dataRoot, '--port', '0', '--queue-depth', String(QUEUE_DEPTH)],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  for (let t = 0; t < 600; t++) {
    const m = /listening on (http:\/\/\S+?)\/ /.exec(err);
    if (m) return { child, base: m[1]! };
    if (child.exitCode !== null) throw new Error(`musc api exited: ${err}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`musc api did not start: ${err}`);
}

interface JobJson {
  id: string;
  state: string;
  error?: string;
}

async function json<T = unknown>(base: string, method: string, path: string, body?: unknown): Promise<T> {
  const r = await fetch(base + path, {
    method,
    ...(body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return (await r.json()) as T;
}

async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(base + '/metrics')).text();
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : NaN;
}

async function queueIdle(base: string): Promise<void> {
  while ((await metric(base, 'musc_queue_depth')) > 0) await new Promise((r) => setTimeout(r, 200));
}

interface Phase {
  phase: string;
  seconds: number;
  connections: number;
  ok: number;
  rejected429: number;
  server5xx: number;
  otherNon2xx: number;
  errors: number;
  timeouts: number;
  imagesPerSecond: number;
  latencyP50ms: number;
  latencyP99ms: number;
  /** service RSS sampled every 5 s during the phase and after it (MB) */
  rssMB: number;
  rssMinMB: number;
  rssMaxMB: number;
  /** the samples, in order (memory over the phase) */
  rssSamplesMB: number[];
  /** 1-minute load average of the machine at the end of the phase (other jobs included) */
  loadAverage: number;
  swaps?: number;
}

async function phase(
  base: string,
  name: string,
  seconds: number,
  connections: number,
  bodies: Buffer[],
  during?: () => Promise<number>,
): Promise<Phase> {
  const ran = autocannon({
    url: `${base}/v1/banks/line/predict`,
    connections,
    duration: seconds,
    timeout: 300,
    requests: bodies.map((body) => ({ method: 'POST' as const, body, headers: { 'content-type': 'image/png' } })),
  });
  const rssSamplesMB: number[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      rssSamplesMB.push(Math.round((await metric(base, 'musc_process_resident_memory_bytes')) / 2 ** 20));
      await new Promise((r) => setTimeout(r, 5000));
    }
  })();
  const [r, swaps] = await Promise.all([ran, during ? during() : Promise.resolve(undefined)]);
  await queueIdle(base);
  sampling = false;
  await sampler;
  const rssMB = (await metric(base, 'musc_process_resident_memory_bytes')) / 2 ** 20;
  const codes = (r as unknown as { statusCodeStats: Record<string, { count: number }> }).statusCodeStats;
  const count = (pred: (c: number) => boolean) =>
    Object.entries(codes)
      .filter(([c]) => pred(Number(c)))
      .reduce((a, [, v]) => a + v.count, 0);
  const ok = count((c) => c === 200);
  return {
    phase: name,
    seconds,
    connections,
    ok,
    rejected429: count((c) => c === 429),
    server5xx: count((c) => c >= 500),
    otherNon2xx: count((c) => c !== 200 && c !== 429 && c < 500),
    errors: r.errors,
    timeouts: r.timeouts,
    imagesPerSecond: ok / seconds,
    latencyP50ms: r.latency.p50,
    latencyP99ms: r.latency.p99,
    rssMB,
    rssMinMB: Math.min(rssMB, ...rssSamplesMB),
    rssMaxMB: Math.max(rssMB, ...rssSamplesMB),
    rssSamplesMB,
    loadAverage: loadavg()[0]!,
    ...(swaps !== undefined ? { swaps } : {}),
  };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'musc-service-load-'));
  await mkdir(join(dir, 'banks'));
  let child: ChildProcess | null = null;
  try {
    const started = await startService(join(dir, 'banks'), dir);
    child = started.child;
    const base = started.base;
    const set = await generateSynthetic(join(dir, 'synthetic'), { good: 10, defective: 3, size: 224, seed: 7 });
    const good = join(set.root, 'surface', 'test', 'good');
    const files = (await readdir(good)).sort();
    await mkdir(join(dir, 'bank-src'));
    for (const f of files.slice(0, 8)) await cp(join(good, f), join(dir, 'bank-src', f));
    const t0 = performance.now();
    const job = await json<JobJson>(base, 'POST', '/v1/banks/line/build', { folder: 'bank-src' });
    let state = job;
    while (state.state !== 'done' && state.state !== 'failed') {
      await new Promise((r) => setTimeout(r, 500));
      state = await json<JobJson>(base, 'GET', `/v1/jobs/${job.id}`);
    }
    if (state.state !== 'done') throw new Error(`bank build failed: ${state.error}`);
    const buildSeconds = (performance.now() - t0) / 1000;
    const defect = join(set.root, 'surface', 'test', 'spot', (await readdir(join(set.root, 'surface', 'test', 'spot'))).sort()[0]!);
    const bodies = [await readFile(join(good, files[8]!)), await readFile(defect)];
    // warm-up: the backbone loads on the first prediction
    await fetch(`${base}/v1/banks/line/predict`, { method: 'POST', body: bodies[0], headers: { 'content-type': 'image/png' } });
    const rssStartMB = (await metric(base, 'musc_process_resident_memory_bytes')) / 2 ** 20;
    const phases: Phase[] = [];
    phases.push(await phase(base, 'sustained', SECONDS, 2, bodies));
    phases.push(await phase(base, 'overload', OVERLOAD_SECONDS, 16, bodies));
    const swapper = async (): Promise<number> => {
      let n = 0;
      const end = Date.now() + SWAP_SECONDS * 1000 - 2500;
      while (Date.now() < end) {
        await new Promise((r) => setTimeout(r, 5000));
        await json(base, 'POST', '/v1/banks/line/load');
        n++;
      }
      return n;
    };
    phases.push(await phase(base, 'swap', SWAP_SECONDS, 2, bodies, swapper));
    // where the time of one prediction goes (the library's timings plus the service's)
    const one = await fetch(`${base}/v1/banks/line/predict`, { method: 'POST', body: bodies[1], headers: { 'content-type': 'image/png' } });
    const timings = ((await one.json()) as { prediction: { timings: Record<string, number> } }).prediction.timings;
    const out = { date: new Date().toISOString(), queueDepth: QUEUE_DEPTH, buildSeconds, rssStartMB, phases, timings };
    await writeFileAtomic(join(root, 'bench', 'service-load.json'), JSON.stringify(out, null, 2) + '\n');
    console.log(
      `bank build (8 images, job): ${buildSeconds.toFixed(1)} s; RSS after warm-up ${rssStartMB.toFixed(0)} MB; queue depth ${QUEUE_DEPTH}`,
    );
    console.log(
      `one prediction (ms): ${Object.entries(timings)
        .map(([k, v]) => `${k} ${v.toFixed(0)}`)
        .join(', ')}`,
    );
    console.log('| phase | s | conn | 200 | 429 | 5xx | other | errors | images/s | p50 ms | p99 ms | RSS MB min-max / after | swaps |');
    console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const p of phases) {
      const rssCell = `${p.rssMinMB.toFixed(0)}-${p.rssMaxMB.toFixed(0)} / ${p.rssMB.toFixed(0)}`;
      console.log(
        `| ${[p.phase, p.seconds, p.connections, p.ok, p.rejected429, p.server5xx, p.otherNon2xx, p.errors].join(' | ')} | ` +
          `${[p.imagesPerSecond.toFixed(2), p.latencyP50ms, p.latencyP99ms, rssCell, p.swaps ?? ''].join(' | ')} |`,
      );
    }
  } finally {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
