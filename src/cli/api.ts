/**
 * `musc api --banks DIR [options]`: the inspection service (src/service). Loopback by default;
 * another address needs a bearer token (--token-file or MUSC_API_TOKEN) and prints a warning.
 * SIGTERM / Ctrl-C drain: requests in flight complete, then the process exits (a second signal
 * exits at once). `--print-openapi` writes the OpenAPI document to stdout and exits.
 */

import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { DEFAULT_BACKBONE } from '../backbones/registry.js';
import type { Device } from '../compute/session.js';
import { checkBinding, DEFAULT_SERVICE_CONFIG, loadToken, type ServiceConfig, ServiceConfigError, TOKEN_ENV } from '../service/config.js';
import { intRangeArg } from './args.js';

interface ApiFlags {
  banks?: string;
  dataRoot?: string;
  host: string;
  port: number;
  tokenFile?: string;
  queueDepth: number;
  maxBodyMb: number;
  maxBatch: number;
  maxPixels: number;
  drainTimeout: number;
  maxJobs: number;
  backbone: string;
  device: Device;
  load?: string;
  printOpenapi?: boolean;
  quiet?: boolean;
}

async function folder(flag: string, p: string): Promise<string> {
  const abs = resolve(p);
  const ok = await stat(abs).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!ok) throw new ServiceConfigError(`${flag} ${p}: not a folder`);
  return abs;
}

/** the service settings from the flags (token read, binding rule checked); warnings to print */
export async function configFromFlags(f: ApiFlags): Promise<{ cfg: ServiceConfig; warnings: string[] }> {
  const token = await loadToken(f.tokenFile);
  const warnings = checkBinding(f.host, token);
  const cfg: ServiceConfig = {
    host: f.host,
    port: f.port,
    banksDir: await folder('--banks', f.banks!),
    queueDepth: f.queueDepth,
    maxBodyBytes: f.maxBodyMb * 1024 * 1024,
    maxBatch: f.maxBatch,
    maxPixels: f.maxPixels,
    drainTimeoutMs: f.drainTimeout * 1000,
    maxPendingJobs: f.maxJobs,
    ...(token !== undefined ? { token } : {}),
    ...(f.dataRoot !== undefined ? { dataRoot: await folder('--data-root', f.dataRoot) } : {}),
  };
  return { cfg, warnings };
}

/** serves until SIGTERM/SIGINT, then drains */
async function serve(f: ApiFlags): Promise<void> {
  const say = (l: string): void => {
    if (!f.quiet) process.stderr.write(l + '\n');
  };
  const { cfg, warnings } = await configFromFlags(f);
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  // loaded here, not at `musc` start-up (fastify and the bank library are only needed by this command)
  const { createService } = await import('../service/server.js');
  const { createBankEngine } = await import('../service/bank-engine.js');
  const engine = createBankEngine({ backbone: f.backbone, device: f.device });
  const svc = await createService(cfg, engine, (l) => process.stderr.write(l + '\n'));
  const stopped = new Promise<void>((ok) => {
    let signalled = false;
    const stop = (sig: NodeJS.Signals): void => {
      if (signalled) process.exit(sig === 'SIGTERM' ? 143 : 130);
      signalled = true;
      say(`musc api: ${sig}: draining (requests in flight complete; again to stop at once)`);
      void svc.close().then(async () => {
        await engine.close();
        say('musc api: stopped');
        ok();
      });
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  const names = f.load === 'all' ? (await svc.registry.list()).map((b) => b.name) : (f.load ?? '').split(',').filter((n) => n);
  for (const n of names) {
    const l = await svc.registry.load(n);
    say(`musc api: bank ${n} loaded (${String(l.bank.info.images)} images)`);
  }
  const url = await svc.listen();
  say(
    `musc api: listening on ${url}/ (banks: ${cfg.banksDir}${cfg.dataRoot ? `, data root: ${cfg.dataRoot}` : ''}; ` +
      `queue depth ${cfg.queueDepth})`,
  );
  await stopped;
}

export function apiCommand(): Command {
  const d = DEFAULT_SERVICE_CONFIG;
  return new Command('api')
    .description('inspection service: HTTP API over saved banks (predict, build, metrics) and a web page at /')
    .option('--banks <dir>', 'folder of banks (NAME.bank); the only place banks are read from and built into')
    .option('--data-root <dir>', 'folder under which build jobs may read server-side image folders (default: uploads only)')
    .option('--host <addr>', `address to listen on; other than loopback needs a token (--token-file or ${TOKEN_ENV})`, d.host)
    .option('-p, --port <n>', 'port (0 = any free port)', intRangeArg('--port', 0, 65535), d.port)
    .option('--token-file <file>', `bearer token file (first line); default: the ${TOKEN_ENV} variable`)
    .option(
      '--queue-depth <n>',
      'predictions waiting behind the one being computed; more get 429',
      intRangeArg('--queue-depth', 0, 10000),
      d.queueDepth,
    )
    .option(
      '--max-body-mb <n>',
      'largest request body or uploaded file, MB',
      intRangeArg('--max-body-mb', 1, 4096),
      d.maxBodyBytes / 1024 / 1024,
    )
    .option('--max-batch <n>', 'most images in one batch request', intRangeArg('--max-batch', 1, 1000), d.maxBatch)
    .option(
      '--max-pixels <n>',
      'refuse images with more pixels (decompression bombs)',
      intRangeArg('--max-pixels', 1, 2 ** 31),
      d.maxPixels,
    )
    .option(
      '--drain-timeout <s>',
      'on SIGTERM, seconds requests in flight may take before connections are cut (a running bank build is then cancelled)',
      intRangeArg('--drain-timeout', 0, 3600),
      d.drainTimeoutMs / 1000,
    )
    .option(
      '--max-jobs <n>',
      'build jobs waiting behind the running one; more get 429',
      intRangeArg('--max-jobs', 0, 100),
      d.maxPendingJobs,
    )
    .option('--backbone <name>', 'backbone of banks built by the service', DEFAULT_BACKBONE)
    .addOption(new Option('--device <device>', 'compute device').choices(['cpu', 'cuda']).default('cpu'))
    .option('--load <names>', "banks to load at start: comma-separated names, or 'all'")
    .option('--print-openapi', 'print the OpenAPI document (docs/openapi.json) and exit')
    .option('-q, --quiet', 'print nothing but warnings and errors')
    .action(async (f: ApiFlags) => {
      if (f.printOpenapi) {
        process.stdout.write(await openapiText());
        return;
      }
      if (!f.banks) throw new ServiceConfigError('--banks <dir> is required');
      await serve(f);
    });
}

/** the OpenAPI document as served (a service on nothing: no listener, no bank) */
export async function openapiText(): Promise<string> {
  const cfg: ServiceConfig = { ...DEFAULT_SERVICE_CONFIG, banksDir: '.' };
  const { createService } = await import('../service/server.js');
  const { createBankEngine } = await import('../service/bank-engine.js');
  const svc = await createService(cfg, createBankEngine({ backbone: DEFAULT_BACKBONE, device: 'cpu' }));
  const doc = svc.app.swagger();
  await svc.app.close();
  return JSON.stringify(doc, null, 2) + '\n';
}
