/**
 * The compute worker: runs heavy functions (ONNX Runtime sessions, MSM, LNAMD) off the main
 * thread, so the event loop stays free for progress bars, signals and I/O.
 *
 * `computeWorker().call(moduleUrl, exportName, args, transfer)` imports `moduleUrl` inside the
 * worker and calls `exportName(...args, ctx)`; `ctx.progress(done, total, label)` reports back.
 * The worker is long-lived (sessions cached in its module state) and unref'd while idle.
 */
import { Worker, type TransferListItem } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import type { FeatureData, FeatureStorage } from '../core/types.js';

export interface WorkerContext {
  progress(done: number, total: number, label?: string): void;
  /** true once the main thread asked the running work to stop (Ctrl-C); long loops poll it */
  cancelled(): boolean;
}

export type ProgressListener = (done: number, total: number, label?: string) => void;

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
  onProgress?: ProgressListener;
}

export class ComputeWorker {
  private worker: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** [0] = 1 when cancellation was requested; shared with the worker */
  private readonly cancelFlag = new Int32Array(new SharedArrayBuffer(4));

  /** Asks the running calls to stop at their next check (they reject with InterruptedError). */
  cancel(): void {
    Atomics.store(this.cancelFlag, 0, 1);
  }

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(fileURLToPath(new URL('./worker-main.js', import.meta.url)), { workerData: { cancelFlag: this.cancelFlag } });
    w.on(
      'message',
      (m: {
        id: number;
        kind: 'ok' | 'err' | 'progress';
        value?: unknown;
        error?: { name: string; message: string; stack?: string };
        done?: number;
        total?: number;
        label?: string;
      }) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        if (m.kind === 'progress') {
          p.onProgress?.(m.done!, m.total!, m.label);
          return;
        }
        this.pending.delete(m.id);
        if (this.pending.size === 0) {
          w.unref();
          // a cancel ends the calls it found running; later calls start afresh
          Atomics.store(this.cancelFlag, 0, 0);
        }
        if (m.kind === 'ok') p.resolve(m.value);
        else {
          const e = new Error(m.error!.message);
          e.name = m.error!.name;
          if (m.error!.stack) e.stack = m.error!.stack;
          p.reject(e);
        }
      },
    );
    w.on('error', (e) => this.failAll(e));
    w.on('exit', (code) => {
      this.worker = null;
      if (this.pending.size) this.failAll(new Error(`compute worker exited with code ${code}`));
    });
    w.unref();
    this.worker = w;
    return w;
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  call<T>(
    moduleUrl: string,
    exportName: string,
    args: unknown[],
    transfer: TransferListItem[] = [],
    onProgress?: ProgressListener,
  ): Promise<T> {
    const w = this.ensure();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, onProgress });
      w.ref();
      w.postMessage({ id, moduleUrl, exportName, args }, transfer);
    });
  }

  async terminate(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}

/**
 * A float32 array on a SharedArrayBuffer: passed to the compute worker, it is shared, not copied
 * (stage features of a large batch are hundreds of MB).
 */
export function sharedFloat32(length: number): Float32Array {
  return new Float32Array(new SharedArrayBuffer(length * 4));
}

/** A shared feature array of `length` values in the given storage (float16: half bit patterns). */
export function sharedFeatures(storage: FeatureStorage, length: number): FeatureData {
  return storage === 'float16' ? new Uint16Array(new SharedArrayBuffer(length * 2)) : sharedFloat32(length);
}

let shared: ComputeWorker | null = null;

/** The process-wide compute worker. */
export function computeWorker(): ComputeWorker {
  shared ??= new ComputeWorker();
  return shared;
}

export async function shutdownCompute(): Promise<void> {
  if (shared) await shared.terminate();
  shared = null;
}
