/**
 * `musc report` as a transaction: the report images (<cat>/report/) and report.html are built in
 * a staging folder and switched in together (transaction.ts), under the output folder's lock
 * (lock.ts). A report killed midway leaves the previous report and its images intact.
 */
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { buildReport, REPORT_FILE, type ReportOptions, type ReportResult } from '../report/build.js';
import { REPORT_ASSET_DIR } from '../report/assets.js';
import { acquireOutputLock } from './lock.js';
import { OutputTransaction, recoverOutputs } from './transaction.js';

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
