/**
 * Atomic file output: write to a temporary name in the same folder, fsync, then rename over the
 * target. A reader (or an interrupted run) never sees a half-written file.
 *
 * A failed write (full disk, no permission, read-only file system, quota) is an OutputWriteError
 * naming the file and the number of bytes that could not be written; the temporary is removed.
 */
import { open, rename, rm } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { makeDirs } from './dirs.js';

/** Temporary files carry this marker so that clean-up code can find leftovers. */
export const TEMP_MARKER = '.musc-tmp-';

export function tempPathFor(path: string): string {
  return join(dirname(path), `${TEMP_MARKER}${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}`);
}

const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'the target is a folder',
  EFBIG: 'file too large for the file system',
};

/** A file output that failed: `path`, `bytes` and the errno `code` are in the message. */
export class OutputWriteError extends Error {
  constructor(readonly path: string, readonly bytes: number, readonly code: string, detail: string) {
    super(`cannot write ${path} (${bytes} bytes): ${REASONS[code] ?? detail}${REASONS[code] ? ` (${code})` : ''}`);
    this.name = 'OutputWriteError';
  }
}

/** Wraps a file-system error of writing `path` (`bytes` long) as an OutputWriteError; others pass through. */
export function outputWriteError(e: unknown, path: string, bytes: number): unknown {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (e instanceof OutputWriteError || !code) return e;
  return new OutputWriteError(path, bytes, code, (e as Error).message);
}

export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const bytes = typeof data === 'string' ? Buffer.byteLength(data) : data.byteLength;
  const tmp = tempPathFor(path);
  try {
    await makeDirs(dirname(path));
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw outputWriteError(e, path, bytes);
  }
}
