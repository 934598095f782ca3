/**
 * One musc process per output folder: `<out>/.musc-lock` holds the owner's pid, its start time
 * (field 22 of /proc/PID/stat, where available), host name and command. A second run into the
 * same folder fails with an OutputLockError naming the owner. A lock whose process is gone
 * (SIGKILL, power loss) or whose pid now belongs to a different process (start time differs) is
 * stale and taken over. Re-entrant within a process (the run and its report share it); released
 * on exit, also on process.exit().
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { readFileSync, rmSync } from 'node:fs';
import { link, open, readFile, rename, rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';

export const LOCK_FILE = '.musc-lock';

export interface LockInfo {
  pid: number;
  /** process start time in clock ticks since boot (Linux), null where unknown */
  start: string | null;
  host: string;
  command: string;
  since: string;
}

export class OutputLockError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OutputLockError';
  }
}

/** A process's start time (/proc/PID/stat field 22), or null where /proc is not available. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Is the lock's owner still running? (another host's lock is assumed alive) */
export function lockOwnerAlive(info: LockInfo): boolean {
  if (info.host !== hostname()) return true;
  if (info.pid === process.pid) return true;
  try {
    process.kill(info.pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (info.start !== null) {
    const now = processStartTime(info.pid);
    if (now !== null && now !== info.start) return false; // the pid was reused
  }
  return true;
}

function parseLock(text: string): LockInfo | null {
  try {
    const j = JSON.parse(text) as Partial<LockInfo>;
    return typeof j.pid === 'number' && Number.isInteger(j.pid) && j.pid > 0
      ? { pid: j.pid, start: j.start ?? null, host: j.host ?? '', command: j.command ?? '', since: j.since ?? '' }
      : null;
  } catch {
    return null;
  }
}

const held = new Map<string, { count: number; file: string; text: string }>();
let exitHook = false;

function removeHeldSync(): void {
  for (const h of held.values()) {
    try {
      if (readFileSync(h.file, 'utf8') === h.text) rmSync(h.file, { force: true });
    } catch {
      // already gone
    }
  }
  held.clear();
}

async function tryCreate(file: string, text: string): Promise<boolean> {
  try {
    const fh = await open(file, 'wx');
    try {
      await fh.writeFile(text);
    } finally {
      await fh.close();
    }
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  }
}

/** Moves a stale lock away; false when it changed meanwhile (another process took it over first). */
async function removeStale(file: string, staleText: string): Promise<boolean> {
  const aside = `${file}.stale-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await rename(file, aside);
  } catch {
    return true; // gone already: try to create it
  }
  const got = await readFile(aside, 'utf8').catch(() => '');
  if (got !== staleText) {
    await link(aside, file).catch(() => undefined); // put back the newer lock (never overwrites)
    await rm(aside, { force: true });
    return false;
  }
  await rm(aside, { force: true });
  return true;
}

/** Takes the lock of output folder `dir` (which must exist); resolves to its release function. */
export async function acquireOutputLock(dir: string): Promise<() => Promise<void>> {
  const mine = held.get(dir);
  const release = async (): Promise<void> => {
    const h = held.get(dir);
    if (!h || --h.count > 0) return;
    held.delete(dir);
    const now = await readFile(h.file, 'utf8').catch(() => '');
    if (now === h.text) await rm(h.file, { force: true });
  };
  if (mine) {
    mine.count++;
    return release;
  }
  const file = join(dir, LOCK_FILE);
  const info: LockInfo = {
    pid: process.pid,
    start: processStartTime(process.pid),
    host: hostname(),
    command: process.argv.slice(1).join(' '),
    since: new Date().toISOString(),
  };
  const text = JSON.stringify(info) + '\n';
  for (let attempt = 0; attempt < 5; attempt++) {
    if (await tryCreate(file, text)) {
      held.set(dir, { count: 1, file, text });
      if (!exitHook) {
        exitHook = true;
        process.on('exit', removeHeldSync);
      }
      return release;
    }
    const otherText = await readFile(file, 'utf8').catch(() => null);
    if (otherText === null) continue; // released meanwhile
    const other = parseLock(otherText);
    if (other === null && attempt < 2) {
      await new Promise((r) => setTimeout(r, 100)); // being written
      continue;
    }
    if (other && lockOwnerAlive(other)) {
      throw new OutputLockError(
        `output folder ${dir} is in use by another musc process (pid ${other.pid}${other.host ? ` on ${other.host}` : ''}, ` +
          `since ${other.since}: ${other.command}); wait for it to finish or choose another --out ` +
          `(if no such process runs, delete ${file})`,
      );
    }
    if (!(await removeStale(file, otherText))) continue;
  }
  throw new OutputLockError(`cannot take the lock ${file}: other processes keep taking it`);
}
