/**
 * MVTec AD layout, also used by MPDD and BTAD:
 *   <cat>/test/<type>/<image>            good images in test/good (BTAD: test/ok)
 *   <cat>/ground_truth/<type>/<stem>_mask.png   (BTAD: <stem>.png or <stem>.bmp)
 *
 * Order as the reference (datasets/mvtec.py and datasets/btad.py, `get_image_data`): sorted
 * type-folder names, then sorted file names within each. `good` is not moved: it sorts among the
 * other types (it comes last for bottle, as in the golden README, because 'good' > 'contamination').
 * The reference pairs masks with images by position in the sorted mask folder; we pair by stem
 * (`<stem>_mask.*` or `<stem>.*`) and fall back to the reference's positional pairing when the
 * names do not match but the counts do.
 */
import { join } from 'node:path';
import { listDirs, listImages, listImageEntries, isDir, stemOf } from './fs-utils.js';
import { DatasetError, type Category, type DatasetItem, type DatasetKind } from './types.js';
import { relPosix } from './paths.js';

/** Folder names meaning "good" (MVTec/MPDD 'good', BTAD 'ok'). */
export const GOOD_TYPES = new Set(['good', 'ok']);

/** Categories: sub-folders of `root` that hold a `test` folder (or `root` itself when it has one). */
export async function mvtecCategories(root: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await listDirs(root)) if (await isDir(join(root, d, 'test'))) out.push(d);
  return out;
}

/** Pairs each image stem of a defect type with its mask file(s) in `maskDir`. */
async function pairMasks(images: string[], maskDir: string, warnings: string[], typeLabel: string): Promise<(string[] | null)[]> {
  if (!(await isDir(maskDir))) {
    warnings.push(`${typeLabel}: no mask folder ${maskDir}`);
    return images.map(() => null);
  }
  const masks = await listImages(maskDir);
  const byStem = new Map<string, string>();
  for (const m of masks) {
    const s = stemOf(m);
    // first match wins: listImages is sorted, so this is deterministic
    if (!byStem.has(s)) byStem.set(s, m);
  }
  const out: (string[] | null)[] = [];
  let missing = 0;
  for (const img of images) {
    const s = stemOf(img);
    const m = byStem.get(`${s}_mask`) ?? byStem.get(s) ?? byStem.get(`${s}_gt`);
    if (m) out.push([join(maskDir, m)]);
    else {
      out.push(null);
      missing++;
    }
  }
  if (missing > 0 && masks.length === images.length) {
    // the reference's rule: i-th sorted mask belongs to the i-th sorted image
    warnings.push(`${typeLabel}: mask names do not match the image names; paired by position (the reference's rule)`);
    return masks.map((m) => [join(maskDir, m)]);
  }
  if (missing > 0) warnings.push(`${typeLabel}: ${missing} of ${images.length} images have no mask in ${maskDir}`);
  const used = new Set(out.flatMap((m) => m ?? []));
  const extra = masks.filter((m) => !used.has(join(maskDir, m)));
  if (extra.length > 0)
    warnings.push(
      `${typeLabel}: ${extra.length} mask${extra.length > 1 ? 's' : ''} without an image, ignored: ` +
        `${extra.slice(0, 5).join(', ')}${extra.length > 5 ? ', ...' : ''}`,
    );
  return out;
}

/** The images of one `<test>/<type>` folder; entries that cannot be read go to `unreadable`. */
export async function listTestType(
  dataRoot: string,
  testDir: string,
  type: string,
  unreadable: NonNullable<Category['unreadable']>,
): Promise<string[]> {
  const { names, problems } = await listImageEntries(join(testDir, type));
  for (const p of problems) {
    const path = join(testDir, type, p.name);
    unreadable.push({ path, rel: relPosix(dataRoot, path), reason: p.reason });
  }
  return names;
}

/** Lists one category of an MVTec-like dataset (mvtec, mpdd, btad). */
export async function loadMvtecCategory(dataRoot: string, catDir: string, name: string, kind: DatasetKind): Promise<Category> {
  const testDir = join(catDir, 'test');
  if (!(await isDir(testDir)))
    throw new DatasetError(`${catDir}: no 'test' folder (expected the ${kind} layout <category>/test/<type>/<image>)`);
  const warnings: string[] = [];
  const items: DatasetItem[] = [];
  const unreadable: NonNullable<Category['unreadable']> = [];
  for (const type of await listDirs(testDir)) {
    const images = await listTestType(dataRoot, testDir, type, unreadable);
    if (images.length === 0) continue;
    const good = GOOD_TYPES.has(type);
    const masks = good ? images.map(() => null) : await pairMasks(images, join(catDir, 'ground_truth', type), warnings, `${name}/${type}`);
    images.forEach((img, i) => {
      const path = join(testDir, type, img);
      items.push({ path, rel: relPosix(dataRoot, path), defect: type, label: good ? 0 : 1, masks: masks[i] });
    });
  }
  return { name, kind, root: dataRoot, items, warnings, unreadable };
}
