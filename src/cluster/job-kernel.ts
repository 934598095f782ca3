/**
 * The ONNX Runtime kernel of a job process (block, basis and scale jobs): single-threaded, so that
 * its GEMMs sum every entry in the standard chunks whatever the block shape (block.ts MIN_GEMM_COLS).
 */
import { OnnxPairKernel } from '../compute/msm-kernel.js';
import type { Device } from '../compute/session.js';
import type { MsmPrecision } from '../core/kernel.js';

const kernels = new Map<string, Promise<OnnxPairKernel>>();

/** One single-threaded kernel per (device, precision) for the life of the job process. */
export function blockKernel(device: Device, precision: MsmPrecision): Promise<OnnxPairKernel> {
  const key = `${device}/${precision}`;
  let k = kernels.get(key);
  if (!k) {
    k = OnnxPairKernel.create(true, device, 1, precision);
    k.catch(() => kernels.delete(key));
    kernels.set(key, k);
  }
  return k;
}
