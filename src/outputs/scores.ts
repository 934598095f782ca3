/**
 * scores.csv: one row per scored image, in dataset order.
 *   path,defect,label,score,score_rscin
 * path is relative to the data root; label is 0/1 or empty when unknown; score is the raw image
 * score (the image score of the map: --image-score, default the top-2.5% mean), score_rscin the RsCIN score (the one the image metrics use).
 * With a label-free decision (--decision), a last column `decision` holds OK or NG.
 * Text cells starting with = + - @ TAB CR get a leading single quote (csv.ts; undone by parseScoresCsv).
 * Deterministic: no timestamps, shortest round-trip number formatting.
 */
import { formatCsv, parseCsv, restoreCell } from '../io/csv.js';
import type { CategoryResult } from './result.js';

export const SCORES_HEADER = ['path', 'defect', 'label', 'score', 'score_rscin'];

export function formatScoresCsv(
  r: Pick<CategoryResult, 'items' | 'imageScores' | 'rscinScores'> & Pick<Partial<CategoryResult>, 'decisions'>,
): string {
  const dec = r.decisions?.decisions;
  const rows = r.items.map((it, i) => [
    it.rel,
    it.defect,
    it.label === null ? '' : it.label,
    r.imageScores[i]!,
    r.rscinScores[i]!,
    ...(dec ? [dec[i]!] : []),
  ]);
  return formatCsv(dec ? [...SCORES_HEADER, 'decision'] : SCORES_HEADER, rows);
}

export interface ScoreRow {
  path: string;
  defect: string;
  label: 0 | 1 | null;
  score: number;
  score_rscin: number;
  /** present when the file has a decision column */
  decision?: 'OK' | 'NG';
}

const num = (s: string): number => (s === 'nan' ? NaN : s === 'inf' ? Infinity : s === '-inf' ? -Infinity : Number(s));

/** Reads scores.csv back (for tests and tools). */
export function parseScoresCsv(text: string): ScoreRow[] {
  const rows = parseCsv(text);
  const header = rows[0]?.join(',');
  const withDecision = header === [...SCORES_HEADER, 'decision'].join(',');
  if (header !== SCORES_HEADER.join(',') && !withDecision) throw new Error(`scores.csv: unexpected header '${header}'`);
  return rows.slice(1).map((r) => ({
    path: restoreCell(r[0] ?? ''),
    defect: restoreCell(r[1] ?? ''),
    label: r[2] === '' ? null : r[2] === '1' ? 1 : 0,
    score: num(r[3] ?? ''),
    score_rscin: num(r[4] ?? ''),
    ...(withDecision ? { decision: r[5] === 'NG' ? 'NG' : 'OK' } : {}),
  }));
}
