/** Small directory helpers for the dataset layouts (sorted like Python's sorted(os.listdir())). */
import { readdir, stat } from 'node:fs/promises';
import { extname } from 'node:path';

/** Image extensions the layouts pick up (case-insensitive). */
export const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.gif']);

export function isImageName(name: string): boolean {
  return !name.startsWith('.') && IMAGE_EXTENSIONS.has(extname(name).toLowerCase());
}

/** Code-unit order, the same as Python's sorted() for names in the Basic Multilingual Plane. */
export function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

export async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** Sorted names of the sub-folders of `dir` (hidden ones skipped). */
export async function listDirs(dir: string): Promise<string[]> {
  const ents = await readdir(dir, { withFileTypes: true });
  const out: string[] = [];
  for (const e of ents) {
    if (e.name.startsWith('.')) continue;
    if (e.isDirectory() || (e.isSymbolicLink() && (await isDir(`${dir}/${e.name}`)))) out.push(e.name);
  }
  return out.sort(byName);
}

/** An image-named directory entry that cannot be used, and why. */
export interface ListingProblem {
  /** the entry's name as shown (invalid UTF-8 bytes become U+FFFD) */
  name: string;
  reason: string;
}

/** Why a symbolic link cannot be followed (null when it leads to a file). */
async function linkProblem(path: string): Promise<string | null> {
  try {
    return (await stat(path)).isFile() ? null : 'symbolic link to a non-file';
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return 'symbolic link loop';
    if (code === 'ENOENT') return 'broken symbolic link (its target does not exist)';
    if (code === 'EACCES') return 'symbolic link target: permission denied';
    return `symbolic link: ${(e as Error).message}`;
  }
}

/**
 * Sorted names of the image files in `dir` (not recursive), and the image-named entries that
 * cannot be read: names that are not valid UTF-8 (Node cannot open them by a string path),
 * symbolic link loops and broken links.
 */
export async function listImageEntries(dir: string): Promise<{ names: string[]; problems: ListingProblem[] }> {
  const ents = await readdir(dir, { withFileTypes: true, encoding: 'buffer' });
  const names: string[] = [];
  const problems: ListingProblem[] = [];
  for (const e of ents) {
    const bytes = e.name as unknown as Buffer;
    const name = bytes.toString('utf8');
    if (!isImageName(name)) continue;
    if (!Buffer.from(name, 'utf8').equals(bytes)) {
      problems.push({ name, reason: 'file name is not valid UTF-8 (rename the file)' });
      continue;
    }
    if (e.isFile()) names.push(name);
    else if (e.isSymbolicLink()) {
      const why = await linkProblem(`${dir}/${name}`);
      if (why) problems.push({ name, reason: why });
      else names.push(name);
    }
  }
  return { names: names.sort(byName), problems: problems.sort((a, b) => byName(a.name, b.name)) };
}

/** Sorted names of the image files in `dir` (not recursive). */
export async function listImages(dir: string): Promise<string[]> {
  return (await listImageEntries(dir)).names;
}

/** The file name without its last extension. */
export function stemOf(name: string): string {
  const ext = extname(name);
  return ext ? name.slice(0, -ext.length) : name;
}
