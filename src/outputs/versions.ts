/** Versions reported in run.json: musc (package.json), node, onnxruntime-node, sharp. */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import sharp from 'sharp';

export interface Versions {
  musc: string;
  node: string;
  onnxruntime: string;
  sharp: string;
  libvips: string;
}

/** The nearest package.json named 'musc' above this module. */
function muscVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      try {
        const j = JSON.parse(readFileSync(p, 'utf8')) as { name?: string; version?: string };
        if (j.name === 'musc') return j.version ?? 'unknown';
      } catch {
        /* keep looking */
      }
    }
    dir = dirname(dir);
  }
  return 'unknown';
}

function ortVersion(): string {
  try {
    const req = createRequire(import.meta.url);
    return (req('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

let cached: Versions | null = null;

export function versions(): Versions {
  if (!cached) {
    const sv = (sharp as unknown as { versions?: Record<string, string> }).versions ?? {};
    cached = {
      musc: muscVersion(),
      node: process.versions.node,
      onnxruntime: ortVersion(),
      sharp: sv.sharp ?? 'unknown',
      libvips: sv.vips ?? 'unknown',
    };
  }
  return cached;
}
