import { relative, sep } from 'node:path';

/** `p` relative to `root`, with '/' separators on every platform. */
export function relPosix(root: string, p: string): string {
  const r = relative(root, p);
  return sep === '/' ? r : r.split(sep).join('/');
}
