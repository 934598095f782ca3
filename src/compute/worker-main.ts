/** Entry point of the compute worker thread (see worker.ts). */
import { parentPort, workerData } from 'node:worker_threads';
import type { WorkerContext } from './worker.js';

const port = parentPort!;
const cancelFlag = (workerData as { cancelFlag: Int32Array }).cancelFlag;
const modules = new Map<string, Promise<Record<string, unknown>>>();

// Calls run one at a time: ONNX Runtime already uses every core inside a call.
let queue: Promise<void> = Promise.resolve();

port.on('message', (m: { id: number; moduleUrl: string; exportName: string; args: unknown[] }) => {
  queue = queue.then(() => handle(m));
});

async function handle(m: { id: number; moduleUrl: string; exportName: string; args: unknown[] }): Promise<void> {
  const ctx: WorkerContext = {
    progress(done, total, label) {
      port.postMessage({ id: m.id, kind: 'progress', done, total, label });
    },
    cancelled: () => Atomics.load(cancelFlag, 0) === 1,
  };
  try {
    let mod = modules.get(m.moduleUrl);
    if (!mod) {
      mod = import(m.moduleUrl) as Promise<Record<string, unknown>>;
      modules.set(m.moduleUrl, mod);
    }
    const fn = (await mod)[m.exportName];
    if (typeof fn !== 'function') throw new Error(`compute worker: ${m.moduleUrl} has no function ${m.exportName}`);
    const value = await (fn as (...a: unknown[]) => unknown)(...m.args, ctx);
    port.postMessage({ id: m.id, kind: 'ok', value }, transferablesOf(value));
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    port.postMessage({ id: m.id, kind: 'err', error: { name: err.name, message: err.message, stack: err.stack } });
  }
}

/** Typed-array buffers found one level deep in a result, to transfer rather than copy. */
function transferablesOf(v: unknown): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  const visit = (x: unknown, depth: number): void => {
    if (!x || depth > 3) return;
    if (ArrayBuffer.isView(x)) {
      if (x.buffer instanceof ArrayBuffer && x.byteOffset === 0 && x.byteLength === x.buffer.byteLength) out.add(x.buffer);
      return;
    }
    if (Array.isArray(x)) x.forEach((y) => visit(y, depth + 1));
    else if (typeof x === 'object') Object.values(x as object).forEach((y) => visit(y, depth + 1));
  };
  visit(v, 0);
  return [...out];
}
