/** Small DOM helpers of the report page: element lookup and creation, number formatting. */

/** The element with this id (the page's HTML has every id the script uses). */
export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`report page: no element #${id}`);
  return e as T;
}

type Attr = string | number | boolean | null | undefined | ((e: Event) => void);
type Kid = Node | string | null | undefined;

/** An HTML element: attributes (class, text, on<event> handlers, others as attributes) and children. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs?: Record<string, Attr>, ...kids: Kid[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (typeof v === 'function') e.addEventListener(k.slice(2), v);
    else if (k === 'class') e.className = String(v);
    else if (k === 'text') e.textContent = String(v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids) if (c !== null && c !== undefined) e.append(c);
  return e;
}

const SVGNS = 'http://www.w3.org/2000/svg';

/** An SVG element with attributes and children. */
export function sv(tag: string, attrs?: Record<string, string | number | null | undefined>, ...kids: Node[]): SVGElement {
  const e = document.createElementNS(SVGNS, tag) as SVGElement;
  for (const [k, v] of Object.entries(attrs ?? {})) if (v !== null && v !== undefined) e.setAttribute(k, String(v));
  for (const c of kids) e.append(c);
  return e;
}

/** A number with `digits` significant digits ('-' when missing). */
export function fmt(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined || Number.isNaN(x)) return '-';
  if (!Number.isFinite(x)) return String(x);
  return String(Number(x.toPrecision(digits)));
}

/** A fraction in percent with one decimal ('-' when missing). */
export const pct = (x: number | null | undefined): string =>
  x === null || x === undefined || !Number.isFinite(x) ? '-' : (100 * x).toFixed(1);

export const labelText = (l: 0 | 1 | null, defect: string): string =>
  (l === 1 ? 'defective' : l === 0 ? 'good' : 'unlabelled') + (defect && defect !== 'good' && defect !== 'ok' ? ' · ' + defect : '');
