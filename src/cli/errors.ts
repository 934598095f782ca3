/**
 * Exit codes of the `musc` command:
 *   0  success
 *   1  runtime failure (backbone, compute, unexpected error)
 *   2  usage or configuration error (bad flag, bad value, bad config file, bad weight file)
 *   3  data error (data folder missing, unknown category, no images, unreadable image with --strict)
 *   130 interrupted (Ctrl-C)
 */

import { isBackboneConfigError } from '../backbones/errors.js';
import { ConfigError } from '../config.js';
import { DatasetError } from '../datasets/types.js';
import { ImageSkipError } from '../pipeline/run-category.js';

export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;
export const EXIT_DATA = 3;
export const EXIT_INTERRUPTED = 130;

export function exitCodeFor(e: unknown): number {
  if (e instanceof ConfigError || isBackboneConfigError(e)) return EXIT_USAGE;
  if ((e as Error | undefined)?.name === 'InterruptedError') return EXIT_INTERRUPTED;
  if (e instanceof DatasetError || e instanceof ImageSkipError) return EXIT_DATA;
  const name = (e as Error | undefined)?.name;
  if (name === 'ImageDecodeError' || name === 'BankError') return EXIT_DATA;
  return EXIT_RUNTIME;
}

/** The one-line message shown to the user (a stack trace only with MUSC_DEBUG=1). */
export function formatError(e: unknown): string {
  if (process.env.MUSC_DEBUG === '1' && e instanceof Error && e.stack) return e.stack;
  if (e instanceof Error) return e.message;
  return String(e);
}
