/**
 * VisA layout (as the reference reads it after datasets/visa_preprocess.py):
 *   <root>/split_csv/1cls.csv  columns object,split,label,image,mask; paths relative to <root>
 *   <root>/<cat>/Data/Images/{Normal,Anomaly}/*.JPG, <root>/<cat>/Data/Masks/Anomaly/*.png
 *
 * Order: the CSV's row order for split == 'test' (visa_preprocess.py keeps it in meta.json, and
 * VisaDataset.get_image_data iterates meta.json). Defect type = the image's parent folder
 * ('Normal' / 'Anomaly'), which is what the reference's sub_datasets groups by; label from the
 * CSV's label column ('anomaly' = 1); the mask only for anomalous rows.
 */
import { readFile } from 'node:fs/promises';
import { join, basename, dirname } from 'node:path';
import { parseCsv } from '../io/csv.js';
import { byName } from './fs-utils.js';
import { DatasetError, type Category, type DatasetItem } from './types.js';

export const VISA_CSV = join('split_csv', '1cls.csv');

interface VisaRow {
  object: string;
  split: string;
  label: string;
  image: string;
  mask: string;
}

async function readRows(root: string): Promise<VisaRow[]> {
  const file = join(root, VISA_CSV);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new DatasetError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const rows = parseCsv(text).filter((r) => r.length > 1 || (r[0] ?? '') !== '');
  if (rows.length === 0) throw new DatasetError(`${file}: empty file`);
  const header = rows[0]!.map((h) => h.trim().toLowerCase());
  const col = (name: string): number => {
    const i = header.indexOf(name);
    if (i < 0)
      throw new DatasetError(`${file}: no '${name}' column (expected columns object,split,label,image,mask; found ${header.join(',')})`);
    return i;
  };
  const [o, s, l, im, m] = [col('object'), col('split'), col('label'), col('image'), col('mask')];
  return rows.slice(1).map((r) => ({ object: r[o] ?? '', split: r[s] ?? '', label: r[l] ?? '', image: r[im] ?? '', mask: r[m] ?? '' }));
}

export async function visaCategories(root: string): Promise<string[]> {
  const rows = await readRows(root);
  return [...new Set(rows.filter((r) => r.split === 'test').map((r) => r.object))].sort(byName);
}

export async function loadVisaCategory(root: string, name: string): Promise<Category> {
  const rows = (await readRows(root)).filter((r) => r.split === 'test' && r.object === name);
  const items: DatasetItem[] = [];
  const warnings: string[] = [];
  for (const r of rows) {
    const anomalous = r.label.trim().toLowerCase() === 'anomaly';
    const rel = r.image.replace(/\\/g, '/');
    const path = join(root, rel);
    const mask = anomalous && r.mask.trim() !== '' ? join(root, r.mask.replace(/\\/g, '/')) : null;
    if (anomalous && !mask) warnings.push(`${rel}: anomalous but the CSV gives no mask`);
    items.push({ path, rel, defect: basename(dirname(path)), label: anomalous ? 1 : 0, masks: mask ? [mask] : null });
  }
  return { name, kind: 'visa', root, items, warnings };
}
