/**
 * The output folder, checked and created before any work (before the backbone is loaded):
 *   - not empty (`--out ''` would mean the working directory), not under /proc, /sys or /dev;
 *   - not an existing file or device (`/dev/null`);
 *   - not the data folder nor inside it, unless a hidden folder on the way keeps it out of the
 *     dataset listing (`--data D --out D/.musc`): a second run would score its own heatmaps;
 *   - created with one mkdir per missing component (io/dirs.ts: never loops), then writable
 *     (the lock file is the probe, see lock.ts).
 * Problems are ConfigErrors (exit 2) naming the folder.
 */
import { realpath, stat } from 'node:fs/promises';
import { basename, dirname, relative, resolve, sep } from 'node:path';
import { ConfigError } from '../config.js';
import { makeDirs } from '../io/dirs.js';

const SYSTEM_ROOTS = ['/proc', '/sys', '/dev'];

/** realpath of `p`, or of its nearest existing ancestor joined with the rest. */
async function realpathLoose(p: string): Promise<string> {
  const rest: string[] = [];
  let d = resolve(p);
  for (;;) {
    try {
      return resolve(await realpath(d), ...rest.reverse());
    } catch {
      const up = dirname(d);
      if (up === d) return resolve(p);
      rest.push(basename(d));
      d = up;
    }
  }
}

const within = (root: string, p: string): boolean => p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);

/** Why `out` may not be used with `data`, or null. */
export async function outInsideData(out: string, data: string): Promise<string | null> {
  const o = await realpathLoose(out);
  const d = await realpathLoose(data);
  if (!within(d, o)) return null;
  const rel = relative(d, o);
  if (rel.split(sep).some((s) => s.startsWith('.'))) return null; // hidden: not listed as data
  return o === d
    ? `--out ${out} is the data folder itself: a second run would score its own heatmaps and report images as inputs; choose another folder`
    : `--out ${out} is inside --data ${data}: a second run would score its own heatmaps and report images as inputs; ` +
        `choose a folder outside the data, or a hidden one (e.g. ${resolve(data, '.musc-out')}), which the dataset listing skips`;
}

function reason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EROFS') return 'read-only file system';
  if (code === 'ENOTDIR') return 'a part of the path is a file, not a folder';
  if (code === 'ENOSPC') return 'no space left on the device';
  return code ?? (e as Error).message;
}

/** An output file (`musc tokens --out`): checked and its folder created before any work; returns its absolute path. */
export async function prepareOutputFile(file: string, flag = '--out'): Promise<string> {
  if (file.trim() === '') throw new ConfigError(`${flag} is empty: give an output file`);
  const abs = resolve(file);
  for (const sys of SYSTEM_ROOTS)
    if (within(sys, abs)) throw new ConfigError(`${flag} ${file} is under ${sys}, a system folder: choose a normal file`);
  const st = await stat(abs).catch(() => null);
  if (st && !st.isFile())
    throw new ConfigError(`${flag} ${file} exists and is not a file (${st.isDirectory() ? 'a folder' : 'a device or special file'})`);
  try {
    await makeDirs(dirname(abs));
  } catch (e) {
    throw new ConfigError(`cannot create the folder of ${flag} ${file}: ${reason(e)}`);
  }
  return abs;
}

/** Checks, then creates, the output folder; returns its absolute path. `data` enables the inside-data check. */
export async function prepareOutputFolder(out: string, data?: string): Promise<string> {
  if (out.trim() === '') throw new ConfigError("--out is empty: give an output folder (use '.' for the working directory)");
  const abs = resolve(out);
  const real = await realpathLoose(abs);
  for (const sys of SYSTEM_ROOTS) {
    if (within(sys, abs) || within(sys, real))
      throw new ConfigError(`--out ${out} is under ${sys}, a system folder: choose a normal folder`);
  }
  const st = await stat(abs).catch(() => null);
  if (st && !st.isDirectory())
    throw new ConfigError(`--out ${out} exists and is not a folder (${st.isFile() ? 'a file' : 'a device or special file'})`);
  if (data !== undefined) {
    const why = await outInsideData(abs, data);
    if (why) throw new ConfigError(why);
  }
  try {
    await makeDirs(abs);
  } catch (e) {
    throw new ConfigError(`cannot create the output folder ${out}: ${reason(e)}`);
  }
  return abs;
}

/** The lock creation error, as a ConfigError about the folder (exit 2) when it is a permission or file-system problem. */
export function unwritableOutput(out: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  return code ? new ConfigError(`the output folder ${out} is not writable: ${reason(e)}`) : e;
}
