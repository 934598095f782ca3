/** Spawning the built `musc` bin for the robustness tests (robust, resume, scale). */
import { spawn, spawnSync } from 'node:child_process';
import { type Dirent, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { cliMain } from './cli-env.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function musc(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): CliResult {
  const r = spawnSync(process.execPath, [cliMain, ...args], { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, MUSC_DEBUG: '', ...env } });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

export const noStack = (s: string): void => assert.doesNotMatch(s, /\n\s+at .+:\d+:\d+/, `stack trace in:\n${s}`);

/** Every file below `dir` (relative paths), following no links. */
export function walkFiles(dir: string, base = dir): string[] {
  const out: string[] = [];
  let ents: Dirent[];
  try {
    ents = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of ents) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walkFiles(p, base));
    else out.push(p.slice(base.length + 1));
  }
  return out.sort();
}

/** Cache files (complete ones, not temporaries) below a feature cache folder. */
export function cacheFiles(dir: string): string[] {
  return walkFiles(dir).filter((f) => f.endsWith('.safetensors') && !f.includes('.musc-tmp-'));
}

/**
 * Starts the bin, waits until `ready()` is true (polled every 5 ms), then sends `signal`.
 * Resolves with the exit and what `ready` saw at that moment (from `snapshot`).
 */
export function runAndSignal<T>(args: string[], ready: () => boolean, signal: NodeJS.Signals, snapshot: () => T): Promise<CliResult & { snap: T | null }> {
  return new Promise((resolveP, reject) => {
    const child = spawn(process.execPath, [cliMain, ...args], { env: { ...process.env, MUSC_DEBUG: '' } });
    let stdout = '';
    let stderr = '';
    let snap: T | null = null;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setInterval(() => {
      if (snap === null && ready()) {
        snap = snapshot();
        child.kill(signal);
        clearInterval(timer);
      }
    }, 5);
    const guard = setTimeout(() => {
      clearInterval(timer);
      child.kill('SIGKILL');
    }, 120_000);
    child.on('error', reject);
    child.on('exit', (code, sig) => {
      clearInterval(timer);
      clearTimeout(guard);
      // let the pipes drain
      setTimeout(() => resolveP({ code, signal: sig, stdout, stderr, snap }), 50);
    });
  });
}

/** Size in bytes, or -1 when absent. */
export function sizeOf(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}
