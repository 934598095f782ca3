/** A real Redis and real `musc worker` processes for the cluster tests (stopped by pid). */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { cliMain } from './cli-env.js';
import { blockKey } from '../../src/cluster/block.js';
import type { BlockJobData } from '../../src/cluster/jobs.js';

export const HAVE_REDIS = spawnSync('redis-server', ['--version']).status === 0;

export function freePort(): Promise<number> {
  return new Promise((resolveP, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolveP(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** redis-servers started here and not yet ended: killed by pid when this test process ends, even by a signal */
const running = new Set<ChildProcess>();
const killRunning = (): void => {
  for (const p of running) p.kill('SIGKILL');
};
process.on('exit', killRunning);
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.once(sig, () => {
    killRunning();
    process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
  });

/** redis-server on loopback, no persistence; resolves once it accepts connections. */
export async function startRedis(port: number): Promise<ChildProcess> {
  const p = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(p);
  p.once('exit', () => running.delete(p));
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  for (let i = 0; i < 100; i++) {
    if (out.includes('Ready to accept connections')) return p;
    if (p.exitCode !== null) throw new Error(`redis-server exited: ${out}`);
    await sleep(50);
  }
  p.kill('SIGKILL');
  throw new Error(`redis-server did not start: ${out}`);
}

export interface Proc {
  child: ChildProcess;
  output: () => string;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Starts the musc bin (not waiting). */
export function startMusc(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [cliMain, ...args], { env: { ...process.env, MUSC_DEBUG: '', ...env } });
  let stdout = '',
    stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((r) =>
    child.on('close', (code, signal) => r({ code, signal, stdout, stderr })),
  );
  return { child, output: () => stderr, done };
}

export function startWorker(redis: string, store: string, env: Record<string, string> = {}): Proc {
  return startMusc(['worker', '--redis', redis, '--store', store, '--lock-duration', '2000', '--stalled-interval', '1000'], env);
}

/** Polls `ready` every 25 ms (after `update`, when given) until it holds (true) or `p` ends (false). */
export async function waitFor(ready: () => boolean, p: Proc, timeoutMs = 120_000, update?: () => Promise<void>): Promise<boolean> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return false;
    await update?.();
    if (ready()) return true;
    await sleep(25);
  }
  return false;
}

/** Complete entries of one kind in a directory store. */
export function storeCount(store: string, kind: string): number {
  let n = 0;
  let subs: string[];
  try {
    subs = readdirSync(join(store, kind));
  } catch {
    return 0;
  }
  for (const s of subs) n += readdirSync(join(store, kind, s)).filter((f) => !f.includes('.musc-tmp-')).length;
  return n;
}

/** Stops a process by its pid (SIGKILL) and waits for it to end. */
export async function stop(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const ended = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await ended;
}

/** A block job's data on the CPU, its result key from the block's inputs (src/cluster/block.ts blockKey). */
export function blockJobData(
  run: string,
  bank: BlockJobData['bank'],
  target: BlockJobData['target'],
  r: number,
  block: BlockJobData['block'],
  precision: BlockJobData['precision'],
): BlockJobData {
  return { run, bank, target, r, block, precision, device: 'cpu', done: blockKey(bank, target, r, block, precision) };
}
