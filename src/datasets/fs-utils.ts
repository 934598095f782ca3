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

/** Sorted names of the image files in `dir` (not recursive). */
export async function listImages(dir: string): Promise<string[]> {
  const ents = await readdir(dir, { withFileTypes: true });
  const out: string[] = [];
  for (const e of ents) {
    if (!isImageName(e.name)) continue;
    if (e.isFile() || (e.isSymbolicLink() && (await isFile(`${dir}/${e.name}`)))) out.push(e.name);
  }
  return out.sort(byName);
}

/** The file name without its last extension. */
export function stemOf(name: string): string {
  const ext = extname(name);
  return ext ? name.slice(0, -ext.length) : name;
}
