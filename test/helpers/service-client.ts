/**
 * What the `musc api` tests share: one HTTP request with node:http, a textured test PNG, a
 * `musc api` child process on a free loopback port (waits for its listening line), and headless
 * Chromium (real, from MUSC_CHROMIUM or /usr/bin/chromium; the tests skip without it).
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import sharp from 'sharp';
import { cliMain } from './cli-env.js';

export interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are read field by field and every field is asserted
  json(): any;
}

/** one HTTP request with node:http (Host and Authorization headers as given) */
export function call(
  base: string,
  method: string,
  path: string,
  body?: Buffer | string,
  headers: Record<string, string> = {},
): Promise<Res> {
  return new Promise((ok, fail) => {
    const req = request(
      base + path,
      { method, headers: { ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const b = Buffer.concat(chunks);
          ok({ status: res.statusCode!, headers: res.headers, body: b, json: () => JSON.parse(b.toString('utf8')) });
        });
      },
    );
    req.on('error', fail);
    req.end(body);
  });
}

function rng(seed: number): () => number {
  return () => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return (seed / 2 ** 32) * 2 - 1;
  };
}

/** a 96 x 80 textured PNG; a red 12 px square at `spot` for a defect */
export async function texturePng(seed: number, spot?: [number, number]): Promise<Buffer> {
  const w = 96,
    h = 80,
    r = rng(seed);
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = 40 + x + y + 20 * c + Math.round(8 * r());
  if (spot)
    for (let y = spot[1]; y < spot[1] + 12; y++) for (let x = spot[0]; x < spot[0] + 12; x++) px.set([250, 20, 20], (y * w + x) * 3);
  return sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
}

export interface ApiChild {
  child: ChildProcess;
  /** http://127.0.0.1:PORT */
  base: string;
  /** its stderr so far */
  stderr(): string;
  /** resolves with the exit code */
  exited: Promise<number | null>;
  /** SIGKILL unless it has exited */
  kill(): void;
}

/** `musc api ARGS --port 0` as a child process, once it prints its listening line */
export async function startApi(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ApiChild> {
  const child = spawn(process.execPath, [cliMain, 'api', ...args, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((ok) => child.on('exit', (code) => ok(code)));
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    const m = /listening on (http:\/\/\S+?)\/ /.exec(err);
    if (m) return { child, base: m[1]!, stderr: () => err, exited, kill };
    if (child.exitCode !== null || Date.now() > deadline) {
      kill();
      assert.fail(`musc api did not start (exit ${child.exitCode}): ${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const CHROMIUM = process.env.MUSC_CHROMIUM ?? '/usr/bin/chromium';
/** false, or why the browser tests are skipped */
export const noChromium = existsSync(CHROMIUM) ? false : `chromium not installed at ${CHROMIUM}: browser test skipped`;

/** headless Chromium with its own profile folder; requests to anything but `base` are aborted */
export async function openBrowser(base: string): Promise<{ ctx: BrowserContext; close: () => Promise<void> }> {
  const { chromium } = await import('playwright-core');
  const userDir = await mkdtemp(join(tmpdir(), 'musc-chromium-'));
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-extensions',
    ],
    viewport: { width: 1200, height: 900 },
  });
  await ctx.route('**/*', (route) => (route.request().url().startsWith(base) ? route.continue() : route.abort()));
  return {
    ctx,
    close: async () => {
      await ctx.close();
      await rm(userDir, { recursive: true, force: true });
    },
  };
}
