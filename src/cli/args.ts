/** Flag value parsers shared by the paper commands (a bad value is a usage error, exit 2). */
import { InvalidArgumentError } from 'commander';
import { parseIntList } from '../config.js';

export const wrapArg = <T>(f: (s: string) => T) => (s: string): T => {
  try {
    return f(s);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
};

export const posIntArg = wrapArg((s) => {
  const v = Number(s);
  if (!/^\s*\d+\s*$/.test(s) || !Number.isInteger(v) || v < 1) throw new Error(`expected a positive integer, got '${s}'`);
  return v;
});

export const intListArg = (what: string) => wrapArg((s) => parseIntList(s, what));
