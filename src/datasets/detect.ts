/**
 * Layout detection from the folder tree:
 *   split_csv/1cls.csv                         -> visa
 *   <cat>/test/ok                              -> btad
 *   <cat>/ground_truth/<type>/<stem>/ folders  -> loco
 *   <cat>/test/<type>/                         -> mvtec (MPDD has the same layout; choose it with --dataset mpdd)
 *   anything else                              -> folder
 * `<cat>` may also be the data folder itself (a single category).
 */
import { join } from 'node:path';
import { isDir, isFile, listDirs } from './fs-utils.js';
import { VISA_CSV } from './visa.js';
import { mvtecCategories } from './mvtec.js';
import type { DatasetKind } from './types.js';

export async function detectLayout(root: string): Promise<DatasetKind> {
  if (await isFile(join(root, VISA_CSV))) return 'visa';
  const catDirs = (await isDir(join(root, 'test'))) ? [root] : (await mvtecCategories(root)).map((c) => join(root, c));
  if (catDirs.length === 0) return 'folder';
  const cat = catDirs[0]!;
  const types = await listDirs(join(cat, 'test'));
  if (types.includes('ok')) return 'btad';
  const gt = join(cat, 'ground_truth');
  if (await isDir(gt)) {
    for (const t of await listDirs(gt)) {
      if ((await listDirs(join(gt, t))).length > 0) return 'loco';
    }
  }
  return 'mvtec';
}
