/**
 * MSM block jobs: the worker side (compute one block) and the coordinator side (read it back).
 *
 * A block job loads the rows of its query images [i0, i1) and reference images [j0, j1) from the
 * stage bank, runs LNAMD on them (per image, so the same values as over the whole batch), runs the
 * ONNX pair kernel once (computeBlock) and writes the PairResult to the store under its content
 * key. Memory: (A + B) images of stage features and of Z, plus the kernel's [A P, B P] product.
 */

import { type IndexedPairResult, type MsmPrecision, type PairResult, quantizeBank } from '../core/kernel.js';
import type { AggregateOptions } from '../core/lnamd.js';
import { aggregateStage, layerNormImages, unitRows } from '../core/lnamd.js';
import { computeBlock, computeIndexedBlock, euclideanBank, type TableBlock } from '../core/msm.js';
import type { StageFeatures } from '../core/types.js';
import { readBankRows } from './bank.js';
import { projectorOf } from './basis.js';
import { blockKernel } from './job-kernel.js';
import type { BankRef, BlockJobData, ProjectRef } from './jobs.js';
import { contentKey, type SharedStore } from './store.js';

/** Z [n, P, C'] of some images of a stage, for one r. */
function aggregate(stage: StageFeatures, r: number, target: AggregateOptions): Float32Array {
  return aggregateStage(stage, layerNormImages(stage), r, target);
}

/**
 * Exactness whatever the block shape. ONNX Runtime's CPU GEMM (MLAS sgemm.cpp) sums the C'
 * products of an entry in chunks of 128 (the rounding of a sum depends on its chunks), except
 * when the GEMM (or a thread's slice of it) has at most 64 columns: then it widens the chunks.
 * A block job therefore runs its kernel on one thread (no column slices; the worker runs one
 * process per concurrency slot instead) and pads the reference side to more than 64 columns
 * with zero images, whose results are dropped. Every entry is then summed in the standard
 * chunks, as in a one-process run whose GEMM slices have more than 64 columns (for P x B >= 130
 * per thread; see docs/scaling.md).
 */
export const MIN_GEMM_COLS = 65;

/** Keeps the first b of bPad reference images of a result: rowd2 [A, P, bPad] -> [A, P, b], cold2 [A, bPad, P] -> [A, b, P]. */
export function dropPadding<R extends PairResult>(res: R, a: number, p: number, b: number, bPad: number): R {
  if (b === bPad) return res;
  const rows = <T extends Float32Array | Int32Array>(x: T): T => {
    const out = new (x.constructor as new (n: number) => T)(a * p * b);
    for (let r = 0; r < a * p; r++) out.set(x.subarray(r * bPad, r * bPad + b), r * b);
    return out;
  };
  const cols = <T extends Float32Array | Int32Array>(x: T): T => {
    const out = new (x.constructor as new (n: number) => T)(a * b * p);
    for (let i = 0; i < a; i++) out.set(x.subarray(i * bPad * p, (i * bPad + b) * p), i * b * p);
    return out;
  };
  const out: PairResult = { rowd2: rows(res.rowd2), cold2: cols(res.cold2!) };
  const idx = res as unknown as Partial<IndexedPairResult>;
  return (idx.rowArg ? { ...out, rowArg: rows(idx.rowArg), colArg: cols(idx.colArg!) } : out) as R;
}

/** The store key of a block's result: a hash of everything it depends on (maxAbs: int8's scale; basis: --project's). */
export function blockKey(
  bank: BankRef,
  target: AggregateOptions,
  r: number,
  block: TableBlock,
  precision: string,
  maxAbs?: number,
  basis?: ProjectRef,
  indexed?: boolean,
): string {
  return contentKey('block', { v: 1, bank: bank.key, target, r, block, precision, maxAbs, basis, ...(indexed ? { indexed } : {}) });
}

/** The result keys of one (stage, r)'s blocks (block jobs and merge jobs agree through this). */
export function passKeys(
  bank: BankRef,
  target: AggregateOptions,
  r: number,
  blocks: TableBlock[],
  precision: MsmPrecision,
  maxAbs: number | undefined,
  basis?: ProjectRef,
  indexed?: boolean,
): string[] {
  return blocks.map((b) => blockKey(bank, target, r, b, precision, precision === 'int8' ? maxAbs : undefined, basis, indexed));
}

/** rowd2 [A, P, B] then cold2 [A, B, P] (float32, little-endian); with indices then rowarg [A, P, B], colarg [A, B, P] (int32) */
export function encodePairResult(res: PairResult | IndexedPairResult): Uint8Array {
  if (!res.cold2) throw new Error('a block result needs both directions');
  const idx = res as Partial<IndexedPairResult>;
  const parts = [res.rowd2, res.cold2, ...(idx.rowArg ? [idx.rowArg, idx.colArg!] : [])];
  const out = new Uint8Array(parts.reduce((s, x) => s + x.byteLength, 0));
  let o = 0;
  for (const x of parts) {
    out.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), o);
    o += x.byteLength;
  }
  return out;
}

/**
 * (coordinator) The parts of a block result that the merge of one row block needs: rowd2 [A, P, B]
 * when `rows`, cold2 [A, B, P] when `cols` (the other left empty), read as byte ranges.
 */
export async function readPairResult(
  store: SharedStore,
  key: string,
  block: TableBlock,
  p: number,
  parts: { rows: boolean; cols: boolean },
): Promise<PairResult> {
  const len = (block.i1 - block.i0) * (block.j1 - block.j0) * p;
  const part = async (want: boolean, offset: number): Promise<Float32Array> => {
    if (!want) return new Float32Array(0);
    return new Float32Array(await readPart(store, key, block, offset, 4 * len));
  };
  return { rowd2: await part(parts.rows, 0), cold2: await part(parts.cols, 4 * len) };
}

/** readPairResult's indices of an indexed block result (BlockJobData.indexed): rowArg when `rows`, colArg when `cols`. */
export async function readPairIndices(
  store: SharedStore,
  key: string,
  block: TableBlock,
  p: number,
  parts: { rows: boolean; cols: boolean },
): Promise<Pick<IndexedPairResult, 'rowArg' | 'colArg'>> {
  const len = (block.i1 - block.i0) * (block.j1 - block.j0) * p;
  const part = async (want: boolean, offset: number): Promise<Int32Array> =>
    want ? new Int32Array(await readPart(store, key, block, offset, 4 * len)) : new Int32Array(0);
  return { rowArg: await part(parts.rows, 8 * len), colArg: await part(parts.cols, 12 * len) };
}

/** Bytes [offset, offset + length) of a block result, as an ArrayBuffer of its own. */
async function readPart(store: SharedStore, key: string, block: TableBlock, offset: number, length: number): Promise<ArrayBuffer> {
  let buf: Buffer;
  try {
    buf = await store.getRange(key, offset, length);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new Error(`block result ${key} is missing from the store ${store.location}`);
    throw new Error(`block result ${key} (block ${JSON.stringify(block)}): ${(e as Error).message}`);
  }
  if (buf.byteLength !== length)
    throw new Error(`block result ${key} (block ${JSON.stringify(block)}): ${buf.byteLength} bytes at ${offset}, expected ${length}`);
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

/** (worker) Computes one block and writes it to the store; returns milliseconds spent (load, LNAMD, kernel). */
export async function runBlockJob(store: SharedStore, d: BlockJobData): Promise<{ loadMs: number; lnamdMs: number; gemmMs: number }> {
  if (d.precision === 'int8' && d.maxAbs === undefined) throw new Error("an int8 block job needs the bank's scale (maxAbs)");
  const { i0, i1, j0, j1 } = d.block;
  let t = performance.now();
  const q = await readBankRows(store, d.bank, i0, i1);
  const ref = await readBankRows(store, d.bank, j0, j1);
  const loadMs = performance.now() - t;
  t = performance.now();
  const kernel = await blockKernel(d.device, d.precision);
  const project = await projectorOf(store, d.target, d.basis, kernel.matMul); // --project: on the batch's basis
  const zq = await project(aggregate(q, d.r, d.target));
  const zr = await project(aggregate(ref, d.r, d.target));
  const a = i1 - i0,
    b = j1 - j0,
    P = d.target.gridH * d.target.gridW,
    C = d.basis?.K ?? d.target.channels;
  const bPad = Math.max(b, Math.ceil(MIN_GEMM_COLS / P));
  const z = new Float32Array(zq.length + (zr.length / b) * bPad); // [A + bPad, P, C'], zero padding last
  z.set(zq, 0);
  z.set(zr, zq.length);
  const lnamdMs = performance.now() - t;
  t = performance.now();
  // int8: the block's images quantised with the whole bank's scale, as a one-process run does
  const bank8 = d.precision === 'int8' ? quantizeBank(z, a + bPad, P, C, d.maxAbs) : null;
  const euclidean = unitRows(d.target) ? undefined : euclideanBank(z, C);
  const sub = { i0: 0, i1: a, j0: a, j1: a + bPad };
  const res = d.indexed
    ? await computeIndexedBlock(z, sub, P, C, kernel, euclidean)
    : await computeBlock(z, bank8, sub, P, C, kernel, euclidean);
  const gemmMs = performance.now() - t;
  await store.put(d.done, encodePairResult(dropPadding(res, a, P, b, bPad)));
  return { loadMs, lnamdMs, gemmMs };
}
