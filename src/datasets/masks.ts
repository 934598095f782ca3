/**
 * Ground-truth masks at the model's input size S x S, binarised to 0/1.
 *
 * Rule 'reference' (default) reproduces the reference: the mask is opened with PIL, resized to
 * S x S with Image.BILINEAR (torchvision Resize on a PIL image), ToTensor divides by 255, and
 * models/musc.py casts with `.astype(np.int32)`, which truncates: only pixels whose resized value
 * is exactly 255 (1.0) become 1 (golden README §3, §7.7). VisA is the exception: VisaDataset
 * thresholds `transform_mask(mask) > 0`, so any non-zero resized pixel counts there.
 * Rule 'nonzero': nearest resize, any non-zero pixel is defective (the data README's advice).
 *
 * Several files (MVTec LOCO: one per defect region) are combined by union, after binarisation.
 */
import { decodeMask } from '../image/decode.js';
import { resizePilGray, resizeNearestGray } from '../image/resample.js';
import type { DatasetKind } from './types.js';

export type MaskRule = 'reference' | 'nonzero';
export const MASK_RULES: readonly MaskRule[] = ['reference', 'nonzero'];

/** Binarises one decoded mask [h, w] to [size, size] 0/1 with the rule. */
export function binariseMask(gray: Uint8Array, w: number, h: number, size: number, rule: MaskRule, kind: DatasetKind = 'mvtec'): Uint8Array {
  if (rule === 'nonzero') {
    const r = resizeNearestGray(gray, w, h, size, size);
    for (let i = 0; i < r.length; i++) r[i] = r[i]! > 0 ? 1 : 0;
    return r;
  }
  const r = resizePilGray(gray, w, h, size, size);
  const anyNonzero = kind === 'visa';
  for (let i = 0; i < r.length; i++) r[i] = anyNonzero ? (r[i]! > 0 ? 1 : 0) : r[i] === 255 ? 1 : 0;
  return r;
}

/** Loads and binarises the union of `files` -> [size, size] 0/1 (all zero when files is null/empty); `onDecoded` sees each file's size. */
export async function loadMask(files: string[] | null, size: number, rule: MaskRule, kind: DatasetKind = 'mvtec', onDecoded?: (file: string, width: number, height: number) => void): Promise<Uint8Array> {
  const out = new Uint8Array(size * size);
  for (const f of files ?? []) {
    const m = await decodeMask(f);
    onDecoded?.(f, m.width, m.height);
    const b = binariseMask(m.data, m.width, m.height, size, rule, kind);
    for (let i = 0; i < out.length; i++) out[i] = out[i]! | b[i]!;
  }
  return out;
}
