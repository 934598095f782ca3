/**
 * Opening a dataset: layout (given or detected), its categories, and each category's items.
 */
import { RSCIN_K_MVTEC, RSCIN_K_VISA } from '../core/rscin.js';
import { basename, join, resolve } from 'node:path';
import { isDir } from './fs-utils.js';
import { detectLayout } from './detect.js';
import { loadMvtecCategory, mvtecCategories } from './mvtec.js';
import { loadLocoCategory } from './loco.js';
import { loadVisaCategory, visaCategories } from './visa.js';
import { loadFolderCategory } from './folder.js';
import { DatasetError, type Category, type DatasetKind } from './types.js';

export * from './types.js';
export { divideSubsets, divideSubsetsAt } from './divide.js';
export { detectLayout } from './detect.js';

export interface OpenedDataset {
  root: string;
  kind: DatasetKind;
  /** every category found, sorted */
  categories: string[];
  load(name: string): Promise<Category>;
}

/** The RsCIN k_list default per dataset (models/musc.py make_category_data: visa [1,8,9], else [1,2,3]). */
export function defaultKList(kind: DatasetKind): number[] {
  return kind === 'visa' ? [...RSCIN_K_VISA] : [...RSCIN_K_MVTEC];
}

export async function openDataset(dataDir: string, kind?: DatasetKind): Promise<OpenedDataset> {
  const root = resolve(dataDir);
  if (!(await isDir(root))) throw new DatasetError(`data folder not found: ${dataDir}`);
  const k = kind ?? (await detectLayout(root));
  if (k === 'visa') {
    return { root, kind: k, categories: await visaCategories(root), load: (name) => loadVisaCategory(root, name) };
  }
  if (k === 'folder') {
    const name = basename(root);
    return { root, kind: k, categories: [name], load: () => loadFolderCategory(root, name) };
  }
  // MVTec-like: the root is one category (has test/) or holds category folders
  const single = await isDir(join(root, 'test'));
  const categories = single ? [basename(root)] : await mvtecCategories(root);
  const dirOf = (name: string): string => (single ? root : join(root, name));
  return {
    root,
    kind: k,
    categories,
    load: (name) => (k === 'loco' ? loadLocoCategory(root, dirOf(name), name) : loadMvtecCategory(root, dirOf(name), name, k)),
  };
}

/** Resolves `--category NAME|all` (comma-separated names allowed) against the categories found. */
export function selectCategories(ds: OpenedDataset, category: string | undefined): string[] {
  if (ds.categories.length === 0) {
    throw new DatasetError(`no categories found in ${ds.root} (layout ${ds.kind}): expected <category>/test/<type>/<image> folders`);
  }
  if (!category || category.toLowerCase() === 'all') return ds.categories;
  const wanted = category.split(',').map((s) => s.trim()).filter(Boolean);
  for (const w of wanted) {
    if (!ds.categories.includes(w)) {
      throw new DatasetError(`unknown category '${w}' in ${ds.root} (layout ${ds.kind}); available: ${ds.categories.join(', ')}`);
    }
  }
  return wanted;
}
