/**
 * The banks the service knows: NAME.bank entries of the configured banks folder, by name only.
 * A name from a request is checked against BANK_NAME and joined to the folder; nothing else from
 * a request reaches the filesystem. Loading a name that is already loaded opens the new version
 * first, then swaps the reference: requests that already hold the old bank finish with it.
 */
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { OpenedBank, ServiceEngine } from './engine.js';

export const BANK_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const BANK_SUFFIX = '.bank';

export class BankNameError extends Error {
  override name = 'BankNameError';
}
export class BankNotFoundError extends Error {
  override name = 'BankNotFoundError';
}

export function checkBankName(name: string): string {
  if (!BANK_NAME.test(name)) throw new BankNameError(`invalid bank name '${name.slice(0, 80)}': letters, digits, '_' and '-', at most 64`);
  return name;
}

export interface LoadedBank {
  name: string;
  bank: OpenedBank;
  /** 1 for the first load, +1 for each swap */
  version: number;
  loadedAt: string;
  /** requests using it now */
  users: number;
  /** replaced or unloaded: released when its last user is done */
  retired: boolean;
}

export interface BankListing {
  name: string;
  loaded: boolean;
  version?: number;
  loadedAt?: string;
  info?: Record<string, unknown>;
}

export class BankRegistry {
  private readonly loaded = new Map<string, LoadedBank>();
  private readonly loading = new Map<string, Promise<LoadedBank>>();

  constructor(
    private readonly dir: string,
    private readonly engine: ServiceEngine,
  ) {}

  pathOf(name: string): string {
    return join(this.dir, checkBankName(name) + BANK_SUFFIX);
  }

  /** names on disk (valid names only) with their load state */
  async list(): Promise<BankListing[]> {
    const entries = await readdir(this.dir).catch(() => [] as string[]);
    const names = new Set(
      entries
        .filter((e) => e.endsWith(BANK_SUFFIX))
        .map((e) => e.slice(0, -BANK_SUFFIX.length))
        .filter((n) => BANK_NAME.test(n)),
    );
    for (const n of this.loaded.keys()) names.add(n);
    return [...names].sort().map((name) => {
      const l = this.loaded.get(name);
      return l ? { name, loaded: true, version: l.version, loadedAt: l.loadedAt, info: l.bank.info } : { name, loaded: false };
    });
  }

  get(name: string): LoadedBank {
    const l = this.loaded.get(checkBankName(name));
    if (!l) throw new BankNotFoundError(`bank '${name}' is not loaded (POST /v1/banks/${name}/load)`);
    return l;
  }

  /** the loaded bank for one request; call done() when the request no longer needs it */
  use(name: string): { loaded: LoadedBank; done: () => void } {
    const l = this.get(name);
    l.users++;
    let ended = false;
    return {
      loaded: l,
      done: () => {
        if (ended) return;
        ended = true;
        l.users--;
        this.releaseIfUnused(l);
      },
    };
  }

  private retire(l: LoadedBank | undefined): void {
    if (!l) return;
    l.retired = true;
    this.releaseIfUnused(l);
  }

  private releaseIfUnused(l: LoadedBank): void {
    if (l.retired && l.users === 0) void this.engine.release(l.bank).catch(() => undefined);
  }

  /** unloads every bank (shutdown) */
  clear(): void {
    for (const name of [...this.loaded.keys()]) this.unload(name);
  }

  get size(): number {
    return this.loaded.size;
  }

  /** opens NAME.bank and makes it the one used by new requests (loads of one name run one at a time) */
  async load(name: string): Promise<LoadedBank> {
    const path = this.pathOf(name);
    const before = this.loading.get(name) ?? Promise.resolve(null);
    const next = before
      .catch(() => null)
      .then(async () => {
        const exists = await stat(path).then(
          () => true,
          () => false,
        );
        if (!exists) throw new BankNotFoundError(`no bank named '${name}' in the banks folder`);
        const bank = await this.engine.open(path);
        const prev = this.loaded.get(name);
        const l: LoadedBank = {
          name,
          bank,
          version: (prev?.version ?? 0) + 1,
          loadedAt: new Date().toISOString(),
          users: 0,
          retired: false,
        };
        this.loaded.set(name, l);
        this.retire(prev);
        return l;
      });
    this.loading.set(name, next);
    try {
      return await next;
    } finally {
      if (this.loading.get(name) === next) this.loading.delete(name);
    }
  }

  /** forgets the bank (requests holding it finish with it); false when it was not loaded */
  unload(name: string): boolean {
    const l = this.loaded.get(checkBankName(name));
    this.loaded.delete(name);
    this.retire(l);
    return l !== undefined;
  }
}
