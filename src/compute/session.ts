/**
 * ONNX Runtime sessions: one place that knows the execution providers and thread settings.
 * Sessions are created inside the compute worker (session.run blocks its thread).
 */
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';

export type Device = 'cpu' | 'cuda';

export interface SessionOptions {
  device?: Device;
  /** intra-op threads; default: every core */
  threads?: number;
}

export class DeviceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeviceError';
  }
}

/** Fails early, with a message saying what to do, when `device` cannot be used here. */
export function checkDevice(device: Device): void {
  if (device === 'cpu') return;
  const cuda = ort.listSupportedBackends().find((b) => b.name === 'cuda');
  if (!cuda || !cuda.bundled) {
    throw new DeviceError(
      "--device cuda needs the CUDA build of onnxruntime-node, which this install lacks. Reinstall it with " +
        "'npm install onnxruntime-node --onnxruntime-node-install=cuda12' on a machine with CUDA 12 and cuDNN 9, or use --device cpu.",
    );
  }
}

export function sessionOptions(opts: SessionOptions = {}): ort.InferenceSession.SessionOptions {
  const device = opts.device ?? 'cpu';
  return {
    executionProviders: device === 'cuda' ? ['cuda', 'cpu'] : ['cpu'],
    intraOpNumThreads: opts.threads ?? availableParallelism(),
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
    logSeverityLevel: 3,
    // no busy-waiting of idle pool threads between calls: the JS side does real work then
    extra: { session: { 'intra_op.allow_spinning': '0', 'inter_op.allow_spinning': '0' } },
  };
}

export async function createSession(model: Uint8Array | string, opts: SessionOptions = {}): Promise<ort.InferenceSession> {
  checkDevice(opts.device ?? 'cpu');
  if (typeof model === 'string') return ort.InferenceSession.create(model, sessionOptions(opts));
  return ort.InferenceSession.create(model, sessionOptions(opts));
}

export { ort };
