/**
 * The shared store of a cluster run: a key -> bytes store every worker and the coordinator reach.
 * Everything in it is content-addressed (the key is a hash of what produced the bytes), so a
 * duplicated or retried job writes the same bytes under the same key: writes are idempotent.
 *
 * `DirStore` keeps the entries as files under a directory that every machine mounts (NFS, EFS,
 * or a local folder when all workers run on one machine); each write is atomic (io/atomic.ts),
 * so a reader never sees half an entry. An object store (S3 and the like: GET with a byte range,
 * PUT, HEAD) fits the same interface.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';

export interface SharedStore {
  /** where it lives, for messages */
  readonly location: string;
  has(key: string): Promise<boolean>;
  /** the whole entry, or null when absent */
  get(key: string): Promise<Buffer | null>;
  /** `length` bytes from `offset` (streaming part of a large entry); throws when absent or short */
  getRange(key: string, offset: number, length: number): Promise<Buffer>;
  /** writes atomically; writing the same key twice is harmless (same content) */
  put(key: string, bytes: Uint8Array): Promise<void>;
}

/** Keys are `<kind>/<64 hex>`; a key names its content. */
export function contentKey(kind: string, what: unknown): string {
  return `${kind}/${createHash('sha256')
    .update(typeof what === 'string' ? what : JSON.stringify(what))
    .digest('hex')}`;
}

/** The key of raw bytes (their sha256). */
export function bytesKey(kind: string, bytes: Uint8Array): string {
  return `${kind}/${createHash('sha256').update(bytes).digest('hex')}`;
}

const KEY = /^[a-z0-9-]+\/[0-9a-f]{64}$/;

/** A store in a directory: key `kind/hash` is the file `<dir>/kind/<hash[0..2]>/<hash>`. */
export class DirStore implements SharedStore {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  get location(): string {
    return this.dir;
  }

  pathOf(key: string): string {
    if (!KEY.test(key)) throw new Error(`invalid store key '${key}'`);
    const [kind, hash] = key.split('/') as [string, string];
    return join(this.dir, kind, hash.slice(0, 2), hash);
  }

  async has(key: string): Promise<boolean> {
    return existsSync(this.pathOf(key));
  }

  async get(key: string): Promise<Buffer | null> {
    try {
      return await readFile(this.pathOf(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    const path = this.pathOf(key);
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(length);
      const { bytesRead } = await fh.read(buf, 0, length, offset);
      if (bytesRead !== length)
        throw new Error(`${path}: expected ${length} bytes at offset ${offset}, read ${bytesRead} (truncated store entry?)`);
      return buf;
    } finally {
      await fh.close();
    }
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    await writeFileAtomic(this.pathOf(key), bytes);
  }
}

/** The feature folder inside a directory store (the feature cache's layout; see cluster/features.ts). */
export function featureDir(store: DirStore): string {
  return join(store.dir, 'features');
}
