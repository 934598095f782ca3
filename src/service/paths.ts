/**
 * A relative folder from a request, resolved under a configured root: no absolute paths, no
 * '..' or '.' segments, no backslashes or NUL; the real path (links followed) must stay inside
 * the root's real path and be a folder.
 */
import { realpath, stat } from 'node:fs/promises';
import { resolve, sep } from 'node:path';

export class PathRefusedError extends Error {
  override name = 'PathRefusedError';
}

function inside(root: string, p: string): boolean {
  return p === root || p.startsWith(root.endsWith(sep) ? root : root + sep);
}

export async function folderUnder(root: string, rel: string): Promise<string> {
  const shown = rel.slice(0, 200);
  if (rel.includes('\0') || rel.includes('\\')) throw new PathRefusedError(`folder '${shown}': NUL or backslash`);
  if (rel.startsWith('/')) throw new PathRefusedError(`folder '${shown}': must be relative to the data root`);
  if (rel.split('/').some((s) => s === '..' || s === '.'))
    throw new PathRefusedError(`folder '${shown}': '.' and '..' segments are not allowed`);
  const rootReal = await realpath(root);
  let real: string;
  try {
    real = await realpath(resolve(rootReal, rel));
  } catch {
    throw new PathRefusedError(`folder '${shown}' not found under the data root`);
  }
  if (!inside(rootReal, real)) throw new PathRefusedError(`folder '${shown}' leads outside the data root`);
  if (!(await stat(real)).isDirectory()) throw new PathRefusedError(`'${shown}' is not a folder`);
  return real;
}
