/**
 * `musc report OUT_DIR` and `musc serve OUT_DIR` (commander commands; main.ts adds them).
 *
 *   musc report OUT_DIR [--thumb-size PX] [--norm category|image] [--title TEXT] [--quiet]
 *   musc serve OUT_DIR [--port N] [--host ADDR] [--no-build] [--quiet]
 *
 * serve builds report.html first when it is missing (unless --no-build), then serves OUT_DIR
 * on http://127.0.0.1:PORT/ until interrupted. Exit codes: 0 ok, 2 usage, 3 output-folder
 * problems (like musc run's data problems).
 */
import { Command, Option } from 'commander';
import { intRangeArg } from './args.js';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { REPORT_FILE } from '../report/build.js';
import { buildReportCommitted } from '../outputs/report-commit.js';
import { ReportError } from '../report/model.js';
import { serveReport, type ReportServer } from '../report/serve.js';

interface ReportCliOptions {
  thumbSize?: number;
  norm?: 'category' | 'image';
  title?: string;
  quiet?: boolean;
}

/** Builds the report; prints where it is. Errors from the folder's files exit with code 3. */
export async function runReport(outDir: string, o: ReportCliOptions, print: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<string> {
  try {
    const r = await buildReportCommitted(outDir, {
      ...(o.thumbSize !== undefined ? { thumbSize: o.thumbSize } : {}),
      ...(o.norm !== undefined ? { norm: o.norm } : {}),
      ...(o.title !== undefined ? { title: o.title } : {}),
    });
    if (!o.quiet) {
      for (const w of r.warnings) print(`warning: ${w}`);
      print(`report: ${r.file}`);
    }
    return r.file;
  } catch (e) {
    if (e instanceof ReportError) process.exitCode = 3;
    throw e;
  }
}

export function reportCommand(): Command {
  return new Command('report')
    .description('write OUT_DIR/report.html from the outputs of musc run (self-contained, opens from file://)')
    .argument('<out_dir>', 'output folder of musc run')
    .option('--thumb-size <px>', 'gallery thumbnail side in pixels', intRangeArg('--thumb-size', 32, 1024), 160)
    .addOption(new Option('--norm <mode>', 'heatmap colour scale: category = one scale for all images, image = per image').choices(['category', 'image']).default('category'))
    .option('--title <text>', 'page title', 'MuSc report')
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (outDir: string, opts: ReportCliOptions) => {
      await runReport(outDir, opts);
    });
}

interface ServeCliOptions {
  port: number;
  host: string;
  build: boolean;
  quiet?: boolean;
}

/** Starts `musc serve`; returns the server (the command keeps it open until SIGINT/SIGTERM). */
export async function startServe(outDir: string, o: ServeCliOptions, print: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<ReportServer> {
  const hasReport = await stat(join(outDir, REPORT_FILE)).then(
    (s) => s.isFile(),
    () => false,
  );
  if (!hasReport && o.build) await runReport(outDir, { ...(o.quiet ? { quiet: true } : {}) }, print);
  const srv = await serveReport({ root: outDir, host: o.host, port: o.port });
  if (!o.quiet) print(`serving ${outDir} on ${srv.url} (Ctrl+C to stop)`);
  return srv;
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('serve the report of OUT_DIR over HTTP (loopback by default); builds report.html first when missing')
    .argument('<out_dir>', 'output folder of musc run')
    .option('-p, --port <n>', 'port (0 = any free port)', intRangeArg('--port', 0, 65535), 8765)
    .option('--host <addr>', 'address to listen on (127.0.0.1 = this machine only)', '127.0.0.1')
    .option('--no-build', 'do not build report.html when it is missing')
    .option('-q, --quiet', 'print nothing but errors')
    .action(async (outDir: string, opts: ServeCliOptions) => {
      const srv = await startServe(outDir, opts);
      await new Promise<void>((ok) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void srv.close().then(ok);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
