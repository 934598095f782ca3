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
 *
 * Masks that are not 0/255 (blurred edges, regions scaled to 1 or 127, coloured masks: any value
 * other than 0 and 255 after the maximum over colour channels) would mostly vanish under the
 * 'reference' rule, so they are binarised with the 'nonzero' rule instead; a MaskNotes collector
 * counts them and the masks that are empty after binarisation, for one warning each in run.json.
 */
import { decodeMask } from '../image/decode.js';
import { resizePilGray, resizeNearestGray } from '../image/resample.js';
import type { DatasetKind } from './types.js';

export type MaskRule = 'reference' | 'nonzero';
export const MASK_RULES: readonly MaskRule[] = ['reference', 'nonzero'];

/** Binarises one decoded mask [h, w] to [size, size] 0/1 with the rule. */
export function binariseMask(
  gray: Uint8Array,
  w: number,
  h: number,
  size: number,
  rule: MaskRule,
  kind: DatasetKind = 'mvtec',
): Uint8Array {
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

/** True when a decoded mask holds a value other than 0 and 255. */
export function isNonBinary(gray: Uint8Array): boolean {
  for (let i = 0; i < gray.length; i++) if (gray[i] !== 0 && gray[i] !== 255) return true;
  return false;
}

/** What loadMask noticed over a category: non-binary masks (binarised with 'nonzero') and empty ones. */
export class MaskNotes {
  readonly nonBinary: string[] = [];
  readonly empty: string[] = [];

  /** One warning per kind of problem (empty when there is none). */
  warnings(): string[] {
    const list = (a: string[]): string => `${a.slice(0, 3).join(', ')}${a.length > 3 ? `, ... (${a.length} in all)` : ''}`;
    const out: string[] = [];
    const n = (a: string[]): string => `${a.length} ground-truth mask${a.length > 1 ? 's are' : ' is'}`;
    if (this.nonBinary.length) {
      out.push(
        `${n(this.nonBinary)} not 0/255 (blurred, scaled or coloured): ` +
          `binarised with the any-nonzero rule instead of the reference rule: ` +
          list(this.nonBinary),
      );
    }
    if (this.empty.length) {
      out.push(
        `${n(this.empty)} empty after binarisation (no defective pixel): ` +
          `pixel metrics count these images as defect-free: ${list(this.empty)}`,
      );
    }
    return out;
  }
}

/**
 * Loads and binarises the union of `files` -> [size, size] 0/1 (all zero when files is null/empty);
 * `onDecoded` sees each file's size; `notes` collects non-binary and empty masks.
 */
export async function loadMask(
  files: string[] | null,
  size: number,
  rule: MaskRule,
  kind: DatasetKind = 'mvtec',
  onDecoded?: (file: string, width: number, height: number) => void,
  notes?: MaskNotes,
): Promise<Uint8Array> {
  const out = new Uint8Array(size * size);
  for (const f of files ?? []) {
    const m = await decodeMask(f);
    onDecoded?.(f, m.width, m.height);
    const nonBinary = rule === 'reference' && kind !== 'visa' && isNonBinary(m.data);
    if (nonBinary) notes?.nonBinary.push(f);
    const b = binariseMask(m.data, m.width, m.height, size, nonBinary ? 'nonzero' : rule, kind);
    for (let i = 0; i < out.length; i++) out[i] = out[i]! | b[i]!;
  }
  if (files && files.length > 0 && !out.includes(1)) notes?.empty.push(files.join('+'));
  return out;
}
