/**
 * Outputs switched in as one transaction. A run (or `musc report`) writes everything new into a
 * staging folder `<out>/.musc-staging-<pid>-<hex>/` (hidden, same file system); until `commit`,
 * the previous results in <out> stay complete and untouched. `commit(entries, remove)`:
 *   1. writes the journal `<out>/.musc-commit.json` (atomic): the staging folder, the entries
 *      (paths relative to <out>: category folders, summary.json, ...) and paths to delete;
 *   2. for each entry still in staging: the old one (if any) is moved into the staging folder's
 *      `.replaced/`, the new one renamed into place (rename: atomic, no copying);
 *   3. deletes `remove`, then the journal, then the staging folder.
 * Each step can be repeated, so a commit killed at any point is finished by `recoverOutputs` at
 * the start of the next run or report (under the folder's lock): the folder then holds the new
 * set. A run killed before its journal exists leaves the old set; its staging folder is deleted.
 * Readers: the hidden folders are skipped by the report, the server and the dataset listing.
 */
import { randomBytes } from 'node:crypto';
import { readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import { makeDirs } from '../io/dirs.js';

export const STAGING_PREFIX = '.musc-staging-';
export const JOURNAL_FILE = '.musc-commit.json';

interface Journal {
  staging: string;
  entries: string[];
  remove: string[];
}

const exists = (p: string): Promise<boolean> =>
  stat(p).then(
    () => true,
    () => false,
  );

async function applyJournal(out: string, j: Journal): Promise<void> {
  const st = join(out, j.staging);
  for (const e of j.entries) {
    const src = join(st, e);
    const dst = join(out, e);
    if (!(await exists(src))) continue; // already moved in
    if (await exists(dst)) {
      const old = join(st, '.replaced', e);
      await makeDirs(dirname(old));
      await rm(old, { recursive: true, force: true });
      await rename(dst, old);
    }
    await makeDirs(dirname(dst));
    await rename(src, dst);
  }
  for (const r of j.remove) await rm(join(out, r), { recursive: true, force: true });
  await rm(join(out, JOURNAL_FILE), { force: true });
  await rm(st, { recursive: true, force: true });
}

function checkRel(p: string): string {
  if (!p || p.startsWith('/') || p.split('/').some((s) => s === '..' || s === '.' || s === ''))
    throw new Error(`output transaction: bad entry '${p}'`);
  return p;
}

export class OutputTransaction {
  private done = false;
  private constructor(
    readonly out: string,
    readonly name: string,
  ) {}

  /** A new, empty staging folder in `out`. */
  static async begin(out: string): Promise<OutputTransaction> {
    const name = `${STAGING_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}`;
    await makeDirs(join(out, name));
    return new OutputTransaction(out, name);
  }

  /** The staging folder: write the new outputs here, at their paths relative to <out>. */
  get dir(): string {
    return join(this.out, this.name);
  }

  /** Switches `entries` (relative paths present in the staging folder) in and deletes `remove`. */
  async commit(entries: string[], remove: string[] = []): Promise<void> {
    if (this.done) throw new Error('output transaction: already finished');
    const j: Journal = { staging: this.name, entries: entries.map(checkRel), remove: remove.map(checkRel) };
    await writeFileAtomic(join(this.out, JOURNAL_FILE), JSON.stringify(j) + '\n');
    this.done = true;
    await applyJournal(this.out, j);
  }

  /** Drops the staging folder (the previous outputs stay as they were). */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Call under the folder's lock before writing: finishes a commit that was killed midway and
 * deletes staging folders of runs that never committed. Returns what it did, in words (or null).
 */
export async function recoverOutputs(out: string): Promise<string | null> {
  const said: string[] = [];
  const text = await readFile(join(out, JOURNAL_FILE), 'utf8').catch(() => null);
  let keep = '';
  if (text !== null) {
    let j: Journal | null = null;
    try {
      j = JSON.parse(text) as Journal;
    } catch {
      j = null;
    }
    if (j && typeof j.staging === 'string' && j.staging.startsWith(STAGING_PREFIX) && Array.isArray(j.entries) && Array.isArray(j.remove)) {
      keep = j.staging;
      await applyJournal(out, { staging: j.staging, entries: j.entries.map(checkRel), remove: j.remove.map(checkRel) });
      said.push(`finished switching in the outputs of an interrupted run (${j.entries.join(', ')})`);
    } else {
      await rm(join(out, JOURNAL_FILE), { force: true }); // a torn journal: its commit never started
    }
  }
  let n = 0;
  for (const e of await readdir(out).catch(() => [] as string[])) {
    if (e.startsWith(STAGING_PREFIX) && e !== keep) {
      await rm(join(out, e), { recursive: true, force: true });
      n++;
    }
  }
  if (n > 0) said.push(`removed ${n} unfinished staging folder${n > 1 ? 's' : ''} of interrupted runs (their previous results were kept)`);
  return said.length ? said.join('; ') : null;
}
