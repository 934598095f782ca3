/**
 * Dataset items: what the pipeline needs to know about one test image.
 */

/** The dataset layouts `musc run --dataset` understands. */
export type DatasetKind = 'mvtec' | 'btad' | 'mpdd' | 'visa' | 'loco' | 'folder';

export const DATASET_KINDS: readonly DatasetKind[] = ['mvtec', 'btad', 'mpdd', 'visa', 'loco', 'folder'];

/** One test image. */
export interface DatasetItem {
  /** absolute path of the image */
  path: string;
  /** path relative to the data root, with '/' separators (what scores.csv shows) */
  rel: string;
  /** defect type: the folder name ('good', 'broken_large', ...), VisA 'Normal'/'Anomaly'; '' when unknown */
  defect: string;
  /** 0 = good, 1 = defective, null = unknown (plain folders) */
  label: 0 | 1 | null;
  /** mask files (LOCO: several, their union is the mask); null = no mask (good, unknown or missing) */
  masks: string[] | null;
}

/** One category, its items in the reference's order. */
export interface Category {
  name: string;
  kind: DatasetKind;
  /** the folder that `rel` paths are relative to */
  root: string;
  items: DatasetItem[];
  /** non-fatal problems found while listing (missing masks, ...) */
  warnings: string[];
  /** image files found but unusable before decoding (non-UTF-8 names, link loops): skipped with the reason */
  unreadable?: { path: string; rel: string; reason: string }[];
}

/** A user-facing data problem (missing folder, unknown category, no images): exit code 3. */
export class DatasetError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DatasetError';
  }
}
