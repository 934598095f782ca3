/**
 * A plain folder of images (unlabeled): every image file below the root, recursively, sorted by
 * relative path. Defect type = the relative sub-folder ('' at the top level); labels unknown.
 * Symbolic links to files are followed; links to folders are not (no loops). Image-named entries
 * that cannot be used (non-UTF-8 names, link loops, broken links) are listed as unreadable.
 */
import { readdir } from 'node:fs/promises';
import { join, basename } from 'node:path';
import { byName, listImageEntries } from './fs-utils.js';
import { relPosix } from './paths.js';
import type { Category, DatasetItem } from './types.js';

async function walk(dir: string, out: string[], bad: { path: string; reason: string }[]): Promise<void> {
  const { names, problems } = await listImageEntries(dir);
  for (const n of names) out.push(join(dir, n));
  for (const p of problems) bad.push({ path: join(dir, p.name), reason: p.reason });
  const ents = await readdir(dir, { withFileTypes: true });
  for (const e of ents) {
    if (e.name.startsWith('.') || !e.isDirectory()) continue;
    await walk(join(dir, e.name), out, bad);
  }
}

export async function loadFolderCategory(root: string, name = basename(root)): Promise<Category> {
  const files: string[] = [];
  const bad: { path: string; reason: string }[] = [];
  await walk(root, files, bad);
  const rels = files.map((f) => relPosix(root, f)).sort(byName);
  const items: DatasetItem[] = rels.map((rel) => {
    const k = rel.lastIndexOf('/');
    return { path: join(root, rel), rel, defect: k >= 0 ? rel.slice(0, k) : '', label: null, masks: null };
  });
  const unreadable = bad.map((b) => ({ ...b, rel: relPosix(root, b.path) })).sort((a, b) => byName(a.rel, b.rel));
  return { name, kind: 'folder', root, items, warnings: [], unreadable };
}
