/**
 * A plain folder of images (unlabeled): every image file below the root, recursively, sorted by
 * relative path. Defect type = the relative sub-folder ('' at the top level); labels unknown.
 */
import { readdir } from 'node:fs/promises';
import { join, basename } from 'node:path';
import { byName, isImageName } from './fs-utils.js';
import { relPosix } from './paths.js';
import type { Category, DatasetItem } from './types.js';

async function walk(dir: string, out: string[]): Promise<void> {
  const ents = await readdir(dir, { withFileTypes: true });
  for (const e of ents) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (e.isFile() && isImageName(e.name)) out.push(p);
  }
}

export async function loadFolderCategory(root: string, name = basename(root)): Promise<Category> {
  const files: string[] = [];
  await walk(root, files);
  const rels = files.map((f) => relPosix(root, f)).sort(byName);
  const items: DatasetItem[] = rels.map((rel) => {
    const k = rel.lastIndexOf('/');
    return { path: join(root, rel), rel, defect: k >= 0 ? rel.slice(0, k) : '', label: null, masks: null };
  });
  return { name, kind: 'folder', root, items, warnings: [] };
}
