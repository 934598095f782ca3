/**
 * ONNX models run in the compute worker. `RemoteModel` is the main-thread handle; the exported
 * `workerLoad` / `workerRun` / `workerUnload` functions execute inside the worker, where the
 * sessions live (cached by key).
 */
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { computeWorker } from './worker.js';
import type { SessionOptions } from './session.js';

/** A float32 or int64 tensor crossing the thread boundary. */
export interface PlainTensor {
  type: 'float32' | 'int64';
  dims: number[];
  data: Float32Array | BigInt64Array;
}

const sessions = new Map<string, InferenceSession>();

/** (worker) Creates a session from ONNX bytes or a file path. */
export async function workerLoad(
  key: string,
  model: Uint8Array | string,
  opts: SessionOptions,
): Promise<{ inputs: string[]; outputs: string[] }> {
  const { createSession } = await import('./session.js');
  const old = sessions.get(key);
  if (old) await old.release();
  const s = await createSession(model, opts);
  sessions.set(key, s);
  return { inputs: [...s.inputNames], outputs: [...s.outputNames] };
}

/** (worker) Runs a loaded session. */
export async function workerRun(key: string, feeds: Record<string, PlainTensor>, outputs?: string[]): Promise<Record<string, PlainTensor>> {
  const s = sessions.get(key);
  if (!s) throw new Error(`model ${key} is not loaded`);
  const { ort } = await import('./session.js');
  const f: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) f[k] = new ort.Tensor(v.type, v.data, v.dims);
  const res = outputs ? await s.run(f, outputs) : await s.run(f);
  const out: Record<string, PlainTensor> = {};
  for (const [k, t] of Object.entries(res)) {
    out[k] = { type: t.type as 'float32' | 'int64', dims: [...t.dims], data: t.data as Float32Array | BigInt64Array };
  }
  return out;
}

/** (worker) Releases a session. */
export async function workerUnload(key: string): Promise<void> {
  const s = sessions.get(key);
  sessions.delete(key);
  if (s) await s.release();
}

const SELF = import.meta.url;

/** Main-thread handle of a model living in the compute worker. */
export class RemoteModel {
  private constructor(
    readonly key: string,
    readonly inputNames: string[],
    readonly outputNames: string[],
  ) {}

  static async load(key: string, model: Uint8Array | string, opts: SessionOptions = {}): Promise<RemoteModel> {
    const io = await computeWorker().call<{ inputs: string[]; outputs: string[] }>(SELF, 'workerLoad', [key, model, opts]);
    return new RemoteModel(key, io.inputs, io.outputs);
  }

  run(feeds: Record<string, PlainTensor>, outputs?: string[]): Promise<Record<string, PlainTensor>> {
    return computeWorker().call(SELF, 'workerRun', [this.key, feeds, outputs]);
  }

  dispose(): Promise<void> {
    return computeWorker().call(SELF, 'workerUnload', [this.key]);
  }
}
