/** Redis connections of the cluster: one URL (redis://[user:password@]host[:port][/db]) for everything. */
import type { RedisOptions } from 'bullmq';
import { Redis } from 'ioredis';

export class ClusterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ClusterError';
  }
}

/** The run was cancelled (musc cancel). */
export class CancelledRunError extends ClusterError {}

/** ioredis options from a redis:// URL; a bad URL is a ClusterError naming it. */
export function redisOptions(url: string, opts: { blocking: boolean }): RedisOptions {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ClusterError(`--redis ${url}: not a URL (expected redis://host:port)`);
  }
  if (u.protocol !== 'redis:') throw new ClusterError(`--redis ${url}: expected a redis:// URL`);
  const db = u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new ClusterError(`--redis ${url}: bad database number '${u.pathname.slice(1)}'`);
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    // workers wait for Redis to come back; the coordinator fails fast and decides itself (coordinator.ts)
    maxRetriesPerRequest: opts.blocking ? null : 1,
    enableOfflineQueue: opts.blocking,
    retryStrategy: (times: number) => Math.min(200 * times, 2000),
  };
}

/** A plain client for the run's own keys (run list, cancel flags); fails fast when Redis is gone. */
export function openRedis(url: string): Redis {
  const r = new Redis(redisOptions(url, { blocking: false }));
  r.on('error', () => undefined); // reported through the failing calls
  return r;
}

/** Waits until a client is connected (a ClusterError after `ms`). */
export function clientReady(r: Redis, url: string, ms = 5000): Promise<void> {
  if (r.status === 'ready') return Promise.resolve();
  return new Promise((resolveP, reject) => {
    const t = setTimeout(() => {
      r.off('ready', ok);
      reject(new ClusterError(`cannot reach Redis at ${url} (no connection in ${ms} ms)`));
    }, ms);
    const ok = (): void => {
      clearTimeout(t);
      resolveP();
    };
    r.once('ready', ok);
  });
}
