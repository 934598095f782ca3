/**
 * The service's one door to the bank / predict library (src/bank): open a bank, predict images,
 * render PNGs, build a bank. Everything else in src/service goes through this interface, so that
 * the routes, the queue and the tests do not depend on the library's internals.
 */

export type Verdict = 'OK' | 'NG';

/** One connected defect region, in original image pixels (the bank's type). */
import type { Region } from '../bank/types.js';
export type { Region };

/** The service's view of one prediction (src/bank ImagePrediction without maps). */
export interface ImagePrediction {
  name: string;
  score: number;
  imageScore: number;
  normalized: number;
  verdict: Verdict;
  threshold: number;
  pixelThreshold: number;
  width: number;
  height: number;
  regions: Region[];
  timings: Record<string, number>;
  warnings: string[];
}

export type RenderKind = 'mask' | 'heatmap' | 'composite';
export const RENDER_KINDS: readonly RenderKind[] = ['mask', 'heatmap', 'composite'];

export interface InputImage {
  name: string;
  bytes: Buffer;
}

/** An opened bank plus what the service shows about it. */
export interface OpenedBank {
  handle: unknown;
  info: Record<string, unknown>;
}

export interface PredictOutcome {
  prediction: ImagePrediction;
  /** PNGs asked for */
  renders: Partial<Record<RenderKind, Buffer>>;
}

export interface BuildRequest {
  /** folder of images (server-side, already validated) */
  images: string;
  /** bank path to write */
  out: string;
  /** images with more pixels are skipped */
  maxPixels: number;
  onProgress?: (done: number, total: number, label?: string) => void;
  /** aborted: the build stops at its next step and rejects (nothing is left at `out`) */
  signal?: AbortSignal;
}

export interface ServiceEngine {
  /** opens and verifies a bank */
  open(path: string): Promise<OpenedBank>;
  /** frees what an opened bank holds (called once no request uses it any more) */
  release(bank: OpenedBank): Promise<void>;
  /** scores images against the bank, with the PNGs asked for */
  predict(bank: OpenedBank, images: InputImage[], renders: readonly RenderKind[], opts: { maxPixels: number }): Promise<PredictOutcome[]>;
  /** writes a bank built from a folder of images; the warnings (skipped images, small bank) */
  build(req: BuildRequest): Promise<{ warnings: string[] }>;
  /** cancels the computation running in the compute worker (a build's scoring stops at its next check) */
  cancelCompute(): void;
  /** stops the compute worker (last) */
  close(): Promise<void>;
}
