/**
 * `musc report` as a transaction: the report images (<cat>/report/) and report.html are built in
 * a staging folder and switched in together (transaction.ts), under the output folder's lock
 * (lock.ts). A report killed midway leaves the previous report and its images intact.
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildReport, REPORT_FILE, type ReportOptions, type ReportResult } from './build.js';
import { REPORT_ASSET_DIR } from './assets.js';
import { acquireOutputLock } from '../outputs/lock.js';
import { OutputTransaction, recoverOutputs } from '../outputs/transaction.js';

export async function buildReportCommitted(outDir: string, o: Omit<ReportOptions, 'stageDir'> = {}): Promise<ReportResult> {
  const abs = resolve(outDir);
  const isDir = await stat(abs).then(
    (s) => s.isDirectory(),
    () => false,
  );
  if (!isDir) return buildReport(abs, o); // its own clear error about the folder
  const release = await acquireOutputLock(abs);
  try {
    await recoverOutputs(abs);
    const tx = await OutputTransaction.begin(abs);
    try {
      const r = await buildReport(abs, { ...o, stageDir: tx.dir });
      await tx.commit([...r.data.categories.map((c) => `${c.folder}/${REPORT_ASSET_DIR}`), REPORT_FILE]);
      return { ...r, file: join(abs, REPORT_FILE) };
    } finally {
      await tx.abort();
    }
  } finally {
    await release();
  }
}

/**
 * report.html after a run or a predict: the results are already complete, so a failure here is a
 * warning (named), never an error that would hide them. `log` gets the report's path.
 */
export async function writeReportOrWarn(outDir: string, log: (line: string) => void): Promise<void> {
  try {
    const r = await buildReportCommitted(outDir);
    log(`report: ${r.file}`);
  } catch (e) {
    process.stderr.write(`warning: report.html not written: ${(e as Error).message}\n`);
  }
}
