/**
 * RFC 4180 CSV: fields holding a comma, a double quote, CR or LF are quoted, quotes doubled;
 * records end with CRLF... we write LF line ends (what every spreadsheet and pandas read), and the
 * parser accepts LF, CRLF and quoted line breaks.
 *
 * Formula injection (OWASP "CSV Injection"): a text cell starting with = + - @ TAB or CR would be
 * run as a formula by a spreadsheet, so it is written with a single quote in front ('=HYPERLINK(..)
 * becomes '=HYPERLINK(..)). Numbers are never prefixed ('-0.5', '-inf' stay numbers).
 * `restoreCell` undoes the prefix when musc reads its own CSV files back.
 */

export type CsvValue = string | number | null | undefined;

/** Characters that make a spreadsheet read a cell as a formula. */
const FORMULA_START = /^[=+\-@\t\r]/;
/** A plain number ('-0.5', '+1e-3', '-inf'): data, not a formula, so never prefixed. */
const NUMBER_TEXT = /^[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|inf|nan)$/;

/** A text cell made inert for spreadsheets: a single quote before a formula-starting character. */
export function neutraliseCell(s: string): string {
  return FORMULA_START.test(s) && !NUMBER_TEXT.test(s) ? `'${s}` : s;
}

/** The text of a cell written by `neutraliseCell` (the quote dropped again). */
export function restoreCell(s: string): string {
  return s.length > 1 && s[0] === "'" && FORMULA_START.test(s.slice(1)) ? s.slice(1) : s;
}

/** One field, quoted when needed (also when it has leading/trailing spaces, to keep them); text neutralised. */
export function csvField(v: CsvValue): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'number' ? formatNumber(v) : neutraliseCell(v);
  return /[",\r\n]|^\s|\s$/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** Shortest round-trip decimal; NaN and infinities spelled like numpy ('nan', 'inf', '-inf'). */
export function formatNumber(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  return String(x);
}

export function formatCsv(header: string[], rows: CsvValue[][]): string {
  const lines = [header.map(csvField).join(',')];
  for (const r of rows) lines.push(r.map(csvField).join(','));
  return lines.join('\n') + '\n';
}

/** Parses CSV text into rows of strings (RFC 4180 quoting; a UTF-8 BOM is dropped). */
export function parseCsv(text: string): string[][] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  let any = false;
  while (i < text.length) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
        i++;
        continue;
      }
      field += c;
      i++;
      continue;
    }
    if (c === '"') {
      quoted = true;
      any = true;
      i++;
    } else if (c === ',') {
      row.push(field);
      field = '';
      any = true;
      i++;
    } else if (c === '\r' || c === '\n') {
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      any = false;
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1;
    } else {
      field += c;
      any = true;
      i++;
    }
  }
  if (any || field.length || row.length) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}
