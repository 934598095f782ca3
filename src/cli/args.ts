/** Flag value parsers of every musc command (a bad value is a usage error, exit 2). */
import { InvalidArgumentError } from 'commander';
import { checkInterval, checkRList, parseIntList, parseNumberList } from '../config.js';
import { parseDecisionRule } from '../threshold.js';

/** A parser whose errors become commander usage errors (exit 2). */
export const wrapArg =
  <T>(f: (s: string) => T) =>
  (s: string): T => {
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

/** An integer in [min, max], named in the error. */
export const intRangeArg = (name: string, min: number, max: number) =>
  wrapArg((v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v.trim()) || !Number.isInteger(n) || n < min || n > max) throw new Error(`${name} must be an integer from ${min} to ${max}`);
    return n;
  });

export const posNumberArg = wrapArg((s) => {
  const v = Number(s);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`expected a positive number, got '${s}'`);
  return v;
});

export const intListArg = (what: string) => wrapArg((s) => parseIntList(s, what));

/** --interval lo,hi (0 <= lo < hi <= 1) */
export const intervalArg = wrapArg((s) => {
  const v = parseNumberList(s, '--interval');
  checkInterval(v, '--interval');
  return v as [number, number];
});

/** --r-list: odd LNAMD degrees */
export const rListArg = wrapArg((s) => {
  const v = parseIntList(s, '--r-list');
  checkRList(v, '--r-list');
  return v;
});

/** --decision mad | mad:K | otsu */
export const decisionRuleArg = wrapArg((s) => {
  parseDecisionRule(s);
  return s.trim();
});
