/**
 * `--project K` on a cluster: every (stage, r) bank Z is projected on K directions of the whole
 * batch (core/project.ts). Block jobs see only their images, so a first pass of basis jobs, one per
 * (stage, r) pass, computes each basis: a job reads its stage bank a chunk of images at a time,
 * runs LNAMD on the chunk and adds it to a BasisAccumulator (the same sums in the same order, the
 * same kept rows as projectionBasis of the whole Z, without holding it), then writes the basis
 * [K, C] float32 to the store. Block jobs (and int8's scale jobs) project their images on it.
 *
 * The products run on the job process's single-threaded ONNX Runtime Gemm, the one-process
 * engine's on its multi-threaded one, which may sum an entry in other chunks: the scores then
 * agree with one process to float rounding, not bit for bit (tested).
 */
import { aggregateStage, layerNormImages, unitRows, type AggregateOptions } from '../core/lnamd.js';
import { BasisAccumulator, projectRows } from '../core/project.js';
import { readBankRows } from './bank.js';
import { blockKernel } from './job-kernel.js';
import type { Device } from '../compute/session.js';
import type { MatMul } from '../core/kernel.js';
import type { BankRef, BasisJobData, ProjectRef } from './jobs.js';
import { contentKey, type SharedStore } from './store.js';

/** Basis jobs [stage][k]: one per (stage, r) pass (rLists[l]: the stage's r list, scorer.ts stageRLists). */
export function basisJobs(
  banks: BankRef[],
  target: AggregateOptions,
  rLists: number[][],
  K: number,
  chunk: number,
  run: string,
  device: Device,
): BasisJobData[][] {
  if (rLists.length !== banks.length) throw new Error(`basis jobs: ${rLists.length} r lists for ${banks.length} stages`);
  return banks.map((bank, l) =>
    rLists[l]!.map((r) => ({ run, bank, target, r, K, chunk, device, done: contentKey('basis', { v: 1, bank: bank.key, target, r, K }) })),
  );
}

/** (worker) The basis [K, C] of one (stage, r) bank, to the store as float32. */
export async function runBasisJob(store: SharedStore, d: BasisJobData): Promise<{ rows: number }> {
  const P = d.target.gridH * d.target.gridW,
    C = d.target.channels;
  const acc = new BasisAccumulator(d.bank.n * P, C);
  for (let i0 = 0; i0 < d.bank.n; i0 += d.chunk) {
    const stage = await readBankRows(store, d.bank, i0, Math.min(d.bank.n, i0 + d.chunk));
    acc.add(aggregateStage(stage, layerNormImages(stage), d.r, d.target));
  }
  const basis = await acc.basis(d.K, (await blockKernel(d.device, 'fast')).matMul);
  await store.put(d.done, new Uint8Array(basis.buffer, basis.byteOffset, basis.byteLength));
  return { rows: acc.rows };
}

/** (worker) A basis [K, C] from the store, its size checked. */
export async function readBasis(store: SharedStore, key: string, K: number, C: number): Promise<Float32Array> {
  const bytes = await store.get(key);
  if (!bytes || bytes.byteLength !== 4 * K * C)
    throw new Error(
      `basis ${key} is ${bytes ? `${bytes.byteLength} bytes, expected ${4 * K * C}` : 'missing'} in the store ${store.location}`,
    );
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** A job's projection: Z [n, P, C] of some images -> [n, P, K] on its stored basis (projectRows; the identity without one). */
export async function projectorOf(
  store: SharedStore,
  target: AggregateOptions,
  basis: ProjectRef | undefined,
  mm: MatMul,
): Promise<(z: Float32Array) => Promise<Float32Array> | Float32Array> {
  if (!basis) return (z) => z;
  const b = await readBasis(store, basis.key, basis.K, target.channels);
  return (z) => projectRows(z, target.channels, b, mm, !unitRows(target));
}
