/**
 * MVTec LOCO AD layout:
 *   <cat>/test/<type>/<stem>.png
 *   <cat>/ground_truth/<type>/<stem>/*.png   one folder per defective image; the mask is the union
 *                                           of every file in it (one file per defect region).
 * Order: sorted types, then sorted files (as the MVTec layout).
 */
import { join } from 'node:path';
import { listDirs, listImages, isDir, stemOf } from './fs-utils.js';
import { DatasetError, type Category, type DatasetItem } from './types.js';
import { relPosix } from './paths.js';
import { GOOD_TYPES, listTestType } from './mvtec.js';

export async function loadLocoCategory(dataRoot: string, catDir: string, name: string): Promise<Category> {
  const testDir = join(catDir, 'test');
  if (!(await isDir(testDir)))
    throw new DatasetError(`${catDir}: no 'test' folder (expected the loco layout <category>/test/<type>/<image>)`);
  const warnings: string[] = [];
  const items: DatasetItem[] = [];
  const unreadable: NonNullable<Category['unreadable']> = [];
  for (const type of await listDirs(testDir)) {
    const images = await listTestType(dataRoot, testDir, type, unreadable);
    const good = GOOD_TYPES.has(type);
    let missing = 0;
    for (const img of images) {
      const path = join(testDir, type, img);
      let masks: string[] | null = null;
      if (!good) {
        const dir = join(catDir, 'ground_truth', type, stemOf(img));
        const files = (await isDir(dir)) ? await listImages(dir) : [];
        if (files.length) masks = files.map((f) => join(dir, f));
        else missing++;
      }
      items.push({ path, rel: relPosix(dataRoot, path), defect: type, label: good ? 0 : 1, masks });
    }
    if (missing)
      warnings.push(
        `${name}/${type}: ${missing} of ${images.length} images have no mask folder under ${join(catDir, 'ground_truth', type)}`,
      );
  }
  return { name, kind: 'loco', root: dataRoot, items, warnings, unreadable };
}
