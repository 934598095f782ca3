/**
 * Stage banks: one stage's features of a scoring batch, [n, h, w, c] in the run's feature storage,
 * written once to the store by the coordinator (content-addressed by their bytes). A block job
 * reads only the rows of its own images (byte ranges), so its memory is bounded by its block,
 * not by the batch.
 */
import type { FeatureData, StageFeatures } from '../core/types.js';
import type { BankRef } from './jobs.js';
import { bytesKey, type SharedStore } from './store.js';

function bytesOf(data: FeatureData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Writes a stage's features to the store (skipped when already there) and returns its reference. */
export async function putBank(store: SharedStore, stage: StageFeatures): Promise<BankRef> {
  const bytes = bytesOf(stage.data);
  const key = bytesKey('bank', bytes);
  if (!(await store.has(key))) await store.put(key, bytes);
  const dtype = stage.data instanceof Uint16Array ? 'float16' : 'float32';
  return { key, n: stage.n, h: stage.h, w: stage.w, c: stage.c, dtype };
}

/** Images [i0, i1) of a bank as StageFeatures (read from the store, nothing else loaded). */
export async function readBankRows(store: SharedStore, bank: BankRef, i0: number, i1: number): Promise<StageFeatures> {
  if (!(i0 >= 0 && i1 <= bank.n && i0 < i1)) throw new Error(`bank ${bank.key}: rows [${i0}, ${i1}) outside [0, ${bank.n})`);
  const per = bank.h * bank.w * bank.c;
  const elem = bank.dtype === 'float16' ? 2 : 4;
  const buf = await store.getRange(bank.key, i0 * per * elem, (i1 - i0) * per * elem);
  const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength); // aligned copy
  const data = bank.dtype === 'float16' ? new Uint16Array(ab) : new Float32Array(ab);
  return { n: i1 - i0, h: bank.h, w: bank.w, c: bank.c, data };
}
