/**
 * Cooperative interruption (Ctrl-C): the signal handler calls `requestInterrupt()`; the pipeline
 * calls `checkInterrupted()` between steps (each backbone batch, each subset, each category's
 * writes) and stops there with an InterruptedError. Stopping between steps, not inside one,
 * matters: exiting while ONNX Runtime is inside a call in the compute worker aborts the process.
 */
import { computeWorker } from '../compute/worker.js';

export class InterruptedError extends Error {
  constructor(readonly signal: NodeJS.Signals = 'SIGINT') {
    super(`interrupted (${signal})`);
    this.name = 'InterruptedError';
  }
}

let requested: NodeJS.Signals | null = null;

export function requestInterrupt(signal: NodeJS.Signals = 'SIGINT'): void {
  requested ??= signal;
  // scoring in the compute worker polls this between block products, so a long subset stops too
  computeWorker().cancel();
}

export function interruptRequested(): NodeJS.Signals | null {
  return requested;
}

/** Throws InterruptedError when an interruption was requested. */
export function checkInterrupted(): void {
  if (requested) throw new InterruptedError(requested);
}
