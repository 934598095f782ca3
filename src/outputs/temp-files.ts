/**
 * Temporary files of atomic writes (src/io/atomic.ts names them
 * `.musc-tmp-<name>.<pid>.<random>` next to their target):
 *   - `removeStaleTemporaries(dir)`: at the start of a run, deletes the leftovers of runs that
 *     were killed (SIGKILL, power loss) — only those whose process is gone;
 *   - `removeOwnTemporariesSync()`: on Ctrl-C (SIGINT) or SIGTERM, deletes this process's own
 *     temporaries in the folders registered with `registerOutputDir`, synchronously, just before
 *     exiting (a rename that has not happened yet never will).
 */
import { type Dirent, readdirSync, rmSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TEMP_MARKER } from '../io/atomic.js';

const TEMP_RE = /\.(\d+)\.[0-9a-f]{8}$/;

const registered = new Set<string>();

/** Folders (searched recursively) whose temporaries belong to this run. */
export function registerOutputDir(dir: string): void {
  registered.add(dir);
}

export function registeredOutputDirs(): string[] {
  return [...registered];
}

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid in a temporary file's name, or null when the name is not a temporary. */
export function temporaryOwner(name: string): number | null {
  if (!name.startsWith(TEMP_MARKER)) return null;
  const m = TEMP_RE.exec(name);
  return m ? Number(m[1]) : null;
}

/** Deletes temporaries of dead processes below `dir`; returns how many. */
export async function removeStaleTemporaries(dir: string): Promise<number> {
  let n = 0;
  let ents: Dirent[];
  try {
    ents = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of ents) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += await removeStaleTemporaries(p);
    else if (e.isFile()) {
      const pid = temporaryOwner(e.name);
      if (pid !== null && !pidAlive(pid)) {
        await rm(p, { force: true });
        n++;
      }
    }
  }
  return n;
}

/** Lists every temporary below `dir` (tests, checks). */
export function listTemporariesSync(dir: string): string[] {
  const out: string[] = [];
  let ents: Dirent[];
  try {
    ents = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const e of ents) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...listTemporariesSync(p));
    else if (temporaryOwner(e.name) !== null) out.push(p);
  }
  return out;
}

/** Deletes this process's temporaries below the registered folders (synchronous: for signal handlers). */
export function removeOwnTemporariesSync(): number {
  let n = 0;
  for (const dir of registered) {
    for (const p of listTemporariesSync(dir)) {
      const name = p.slice(p.lastIndexOf('/') + 1);
      if (temporaryOwner(name) === process.pid) {
        try {
          rmSync(p, { force: true });
          n++;
        } catch {
          // best effort
        }
      }
    }
  }
  return n;
}
