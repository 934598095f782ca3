/**
 * Settings of `musc api` and the binding rule: loopback (127.0.0.1, ::1, localhost) needs no
 * token; any other address needs a bearer token (from a file or the MUSC_API_TOKEN variable)
 * and gets a warning. The rule is a pure function (checkBinding) so that it is tested without
 * binding a non-loopback address.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../config.js';
import { isLoopbackAddress } from '../report/serve.js';

export const TOKEN_ENV = 'MUSC_API_TOKEN';
/** shortest accepted token (characters) */
export const MIN_TOKEN_LENGTH = 16;

export interface ServiceConfig {
  host: string;
  /** 0 = any free port */
  port: number;
  /** the only folder banks are read from and written to (NAME.bank) */
  banksDir: string;
  /** server-side folders a build job may read (relative paths under it); none = builds from uploads only */
  dataRoot?: string;
  /** predictions admitted beyond the one being computed; more get 429 */
  queueDepth: number;
  /** largest request body (bytes) */
  maxBodyBytes: number;
  /** most images in one batch request or upload */
  maxBatch: number;
  /** images with more pixels are refused (decompression bombs) */
  maxPixels: number;
  /** bearer token; required off loopback */
  token?: string;
  /** SIGTERM: how long in-flight requests may take before connections are cut (ms) */
  drainTimeoutMs: number;
  /** build jobs waiting behind the running one; more get 429 */
  maxPendingJobs: number;
}

export const DEFAULT_SERVICE_CONFIG: Omit<ServiceConfig, 'banksDir'> = {
  host: '127.0.0.1',
  port: 8780,
  queueDepth: 8,
  maxBodyBytes: 32 * 1024 * 1024,
  maxBatch: 16,
  maxPixels: 50_000_000,
  drainTimeoutMs: 30_000,
  maxPendingJobs: 4,
};

/** a usage error of `musc api` (exit code 2) */
export class ServiceConfigError extends ConfigError {}

/** Throws unless the address may be bound with this token; returns the warnings to print. */
export function checkBinding(host: string, token: string | undefined): string[] {
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH) {
    throw new ServiceConfigError(`the API token is too short (${token.length} characters; at least ${MIN_TOKEN_LENGTH})`);
  }
  if (isLoopbackAddress(host)) return [];
  if (token === undefined) {
    throw new ServiceConfigError(`binding ${host} (not loopback) requires a bearer token: --token-file FILE or ${TOKEN_ENV}`);
  }
  return [
    `listening on ${host}, reachable from other machines: every request except /, /healthz and /readyz needs the bearer token; ` +
      'use TLS in front (a reverse proxy) on untrusted networks',
  ];
}

/** The token from --token-file (first line, trimmed) or else the environment variable. */
export async function loadToken(tokenFile: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (tokenFile !== undefined) {
    let text: string;
    try {
      text = await readFile(tokenFile, 'utf8');
    } catch (e) {
      throw new ServiceConfigError(`token file ${tokenFile}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    const t = text.split(/\r?\n/, 1)[0]!.trim();
    if (!t) throw new ServiceConfigError(`token file ${tokenFile} is empty`);
    return t;
  }
  const v = env[TOKEN_ENV]?.trim();
  return v ? v : undefined;
}
