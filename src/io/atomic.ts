/**
 * Atomic file output: write to a temporary name in the same folder, fsync, then rename over the
 * target. A reader (or an interrupted run) never sees a half-written file.
 */
import { open, rename, rm, mkdir } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Temporary files carry this marker so that clean-up code can find leftovers. */
export const TEMP_MARKER = '.musc-tmp-';

export function tempPathFor(path: string): string {
  return join(dirname(path), `${TEMP_MARKER}${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}`);
}

export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}
