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

const probed = new Map<Device, Promise<void>>();

/**
 * Fails early, with a message saying what to do, when `device` cannot be used here: for CUDA, a
 * one-node session is created with the CUDA execution provider alone (its provider library is
 * only present in the CUDA build of onnxruntime-node).
 */
export function checkDevice(device: Device): Promise<void> {
  if (device === 'cpu') return Promise.resolve();
  let p = probed.get(device);
  if (!p) {
    p = (async () => {
      const { GraphBuilder } = await import('../onnx/graph.js');
      const g = new GraphBuilder('probe');
      g.output(g.op('Identity', [g.input('x', 'float32', [1])]), 'float32', [1], 'y');
      const level = ort.env.logLevel;
      ort.env.logLevel = 'fatal';
      try {
        const s = await ort.InferenceSession.create(g.toBytes(), { executionProviders: ['cuda'], logSeverityLevel: 4 });
        await s.release();
      } catch (e) {
        throw new DeviceError(
          `--device cuda is not available here (${(e as Error).message.split('\n')[0]}). It needs the CUDA build of onnxruntime-node: ` +
            "'npm install onnxruntime-node --onnxruntime-node-install=cuda12' on a machine with an NVIDIA GPU, " +
            'CUDA 12 and cuDNN 9; or use --device cpu.',
        );
      } finally {
        ort.env.logLevel = level;
      }
    })();
    probed.set(device, p);
  }
  return p;
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
  await checkDevice(opts.device ?? 'cpu');
  if (typeof model === 'string') return ort.InferenceSession.create(model, sessionOptions(opts));
  return ort.InferenceSession.create(model, sessionOptions(opts));
}

export { ort };
