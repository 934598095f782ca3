/**
 * The accuracy levers of issue 17 on one category: features extracted once per input geometry,
 * patch scores cached per r (MUSC_LEVERS_CACHE, default <tmpdir>/musc-levers), then every row's
 * post-processing (r list, map smoothing, image score rule, RsCIN windows and tokens) evaluated
 * on them. Rows are specs 'key=value/...' (or 'base' = today's reference defaults):
 *   g=squash|letterbox|mirror16|mirror32   input geometry (mirrorP = the backbone's border padding P)
 *   s=224  st=2.3  r=1.3.5  c=1024 (LNAMD channels)  sig=4 (Gaussian map smoothing)
 *   top=0.025 (image score = mean of the top fraction; 0 = max)  k=1.2.3 (RsCIN; 0 = off)  tok=l4|l3|l2
 *   node dist/bench/levers.js CATEGORY ROW[,ROW...]      (data: $MUSC_SHARED/data or ../shared/data)
 * Prints one JSON line per row (metrics in %, pixel metrics with any non-zero mask pixel = defect).
 */
import { dirname, join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { openDataset } from '../src/datasets/index.js';
import { loadMask } from '../src/datasets/masks.js';
import { decodeRgb, type RgbImage } from '../src/image/decode.js';
import { loadBackbone } from '../src/backbones/registry.js';
import { type Backbone, inputSide } from '../src/backbones/types.js';
import type { StageFeatures, ImageTokens } from '../src/core/types.js';
import { scorePatches, rscin } from '../src/scoring/musc.js';
import { upsampleAlignCorners, gaussianSmooth, imageScores, MAX_IMAGE_SCORE } from '../src/core/maps.js';
import { computeMetrics } from '../src/metrics/index.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { readMaps } from '../src/outputs/maps.js';

type Geometry = 'squash' | 'letterbox' | 'mirror16' | 'mirror32';
interface Row {
  geometry: Geometry;
  size: number;
  stages: number[];
  rList: number[];
  channels?: number;
  sigma: number;
  kList: number[];
  /** image score: 0 = map max, else mean of the top fraction of map pixels */
  top: number;
  /** RsCIN token: 'l4' (backbone's), or 'l2'/'l3' = L2-normalised mean of that stage */
  token: string;
}
const BASE: Row = { geometry: 'squash', size: 224, stages: [2, 3], rList: [1, 3, 5], sigma: 0, kList: [1, 2, 3], top: 0, token: 'l4' };
/** 'base' or 'g=letterbox/s=320/st=3/r=1.3.5/c=1024/sig=4/k=1.2.3' */
function parseRow(spec: string): Row {
  const row: Row = { ...BASE };
  if (spec === 'base') return row;
  for (const kv of spec.split('/')) {
    const [k, v] = kv.split('=') as [string, string];
    const nums = () => v.split('.').map(Number);
    if (k === 'g') row.geometry = v as Geometry;
    else if (k === 's') row.size = Number(v);
    else if (k === 'st') row.stages = nums();
    else if (k === 'r') row.rList = nums();
    else if (k === 'c') row.channels = Number(v);
    else if (k === 'sig') row.sigma = Number(v);
    else if (k === 'k') row.kList = nums();
    else if (k === 'top') row.top = Number(v);
    else if (k === 'tok') row.token = v;
    else throw new Error(`bad row key ${k}`);
  }
  return row;
}

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Border padding of a 'mirrorP' geometry (the backbone's borderPad), else 0. */
const padOf = (row: Row): number => (row.geometry.startsWith('mirror') ? Number(row.geometry.slice(6)) : 0);

/** image -> S x S RGB and the content box inside it. */
async function geometryOf(img: RgbImage, S: number, g: Geometry): Promise<{ img: RgbImage; box: Box }> {
  if (g === 'squash') return { img, box: { x: 0, y: 0, w: S, h: S } };
  if (g.startsWith('mirror')) return { img, box: { x: 0, y: 0, w: S, h: S } }; // the backbone pads (borderPad)
  const s = S / Math.max(img.width, img.height);
  const w = Math.max(1, Math.round(img.width * s)),
    h = Math.max(1, Math.round(img.height * s));
  const x = (S - w) >> 1,
    y = (S - h) >> 1;
  const src = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  const px = await sharp(src, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(w, h, { fit: 'fill', kernel: 'cubic' })
    .extend({ left: x, right: S - w - x, top: y, bottom: S - h - y, extendWith: 'mirror' })
    .raw()
    .toBuffer();
  return { img: { width: S, height: S, data: new Uint8Array(px) }, box: { x, y, w, h } };
}

interface Extracted {
  stages: StageFeatures<Float32Array>[];
  tokens: ImageTokens;
  boxes: Box[];
}

async function extract(bb: Backbone, paths: string[], g: Geometry, S: number): Promise<Extracted> {
  const per: { st: StageFeatures<Float32Array>[]; tok: Float32Array; d: number }[] = [];
  const boxes: Box[] = [];
  for (let i = 0; i < paths.length; i += 4) {
    const chunk = paths.slice(i, i + 4);
    const inputs: Float32Array[] = [];
    for (const p of chunk) {
      const gi = await geometryOf(await decodeRgb(p), S, g);
      boxes.push(gi.box);
      inputs.push(await bb.preprocess(gi.img));
    }
    const SS = inputSide(bb);
    const batch = new Float32Array(inputs.length * 3 * SS * SS);
    inputs.forEach((x, k) => batch.set(x, k * 3 * SS * SS));
    const f = await bb.extract(batch, inputs.length);
    per.push({ st: f.stages, tok: f.imageTokens.data, d: f.imageTokens.d });
  }
  const stages = per[0]!.st.map((s0, si) => {
    const { h, w, c } = s0;
    const data = new Float32Array(paths.length * h * w * c);
    let off = 0;
    for (const b of per) {
      data.set(b.st[si]!.data, off);
      off += b.st[si]!.data.length;
    }
    return { n: paths.length, h, w, c, data };
  });
  const d = per[0]!.d;
  const tok = new Float32Array(paths.length * d);
  let off = 0;
  for (const b of per) {
    tok.set(b.tok, off);
    off += b.tok.length;
  }
  return { stages, tokens: { n: paths.length, d, data: tok }, boxes };
}

/** maps [N, S, S] -> each image's content box resized back to S x S (bilinear), as the squashed masks. */
function uncrop(maps: Float32Array, n: number, S: number, boxes: Box[]): Float32Array {
  const out = new Float32Array(maps.length);
  for (let i = 0; i < n; i++) {
    const b = boxes[i]!;
    if (b.w === S && b.h === S) {
      out.set(maps.subarray(i * S * S, (i + 1) * S * S), i * S * S);
      continue;
    }
    for (let y = 0; y < S; y++) {
      const sy = Math.min(b.h - 1, Math.max(0, ((y + 0.5) * b.h) / S - 0.5));
      const y0 = Math.floor(sy),
        y1 = Math.min(b.h - 1, y0 + 1),
        fy = sy - y0;
      for (let x = 0; x < S; x++) {
        const sx = Math.min(b.w - 1, Math.max(0, ((x + 0.5) * b.w) / S - 0.5));
        const x0 = Math.floor(sx),
          x1 = Math.min(b.w - 1, x0 + 1),
          fx = sx - x0;
        const at = (yy: number, xx: number) => maps[i * S * S + (b.y + yy) * S + b.x + xx]!;
        out[i * S * S + y * S + x] = (1 - fy) * ((1 - fx) * at(y0, x0) + fx * at(y0, x1)) + fy * ((1 - fx) * at(y1, x0) + fx * at(y1, x1));
      }
    }
  }
  return out;
}

const CACHE = process.env.MUSC_LEVERS_CACHE ?? join(tmpdir(), 'musc-levers');
const DATA = join(process.env.MUSC_SHARED ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared'), 'data');

/** Patch scores per r for one feature config, cached on disk: { n, h, w, per r: Float64Array [N, h, w] }. */
async function components(
  cat: string,
  items: { path: string }[],
  row: Row,
): Promise<{ n: number; h: number; w: number; perR: Map<number, Float64Array>; tokens: ImageTokens; boxes: Box[]; maps?: Float32Array }> {
  const key = `${cat}-${row.geometry}-${row.size}-${row.stages.join('_')}-${row.channels ?? 'first'}`;
  mkdirSync(CACHE, { recursive: true });
  const metaFile = join(CACHE, `${key}.json`);
  const meta = existsSync(metaFile) ? JSON.parse(readFileSync(metaFile, 'utf8')) : null;
  let f: Extracted | null = null;
  const perR = new Map<number, Float64Array>();
  let h = meta?.h ?? 0,
    w = meta?.w ?? 0;
  const extractOnce = async (): Promise<Extracted> => {
    if (f) return f;
    const t0 = performance.now();
    const pad = row.geometry.startsWith('mirror') ? Number(row.geometry.slice(6)) : 0;
    const bb = await loadBackbone('resnet50', { imageSize: row.size + 2 * pad, stages: row.stages, borderPad: 0 });
    f = await extract(
      bb,
      items.map((it) => it.path),
      row.geometry,
      row.size,
    );
    const tok = Buffer.from(f.tokens.data.buffer, f.tokens.data.byteOffset, f.tokens.data.byteLength);
    writeFileSync(join(CACHE, `${key}-tokens.f32`), tok);
    writeFileSync(
      metaFile,
      JSON.stringify({
        boxes: f.boxes,
        d: f.tokens.d,
        n: items.length,
        h: 0,
        w: 0,
        extract_s: (performance.now() - t0) / 1000,
        score_s: {},
      }),
    );
    return f;
  };
  for (const r of row.rList) {
    const file = join(CACHE, `${key}-r${r}.f64`);
    if (existsSync(file)) {
      const b = readFileSync(file);
      perR.set(r, new Float64Array(b.buffer, b.byteOffset, b.byteLength / 8).slice());
      continue;
    }
    const feats = await extractOnce();
    const t1 = performance.now();
    const ps = await scorePatches(feats.stages, { rList: [r], ...(row.channels ? { targetChannels: row.channels } : {}) });
    const sec = (performance.now() - t1) / 1000;
    h = ps.h;
    w = ps.w;
    writeFileSync(file, Buffer.from(ps.data.buffer, ps.data.byteOffset, ps.data.byteLength));
    const m = JSON.parse(readFileSync(metaFile, 'utf8'));
    m.h = h;
    m.w = w;
    m.score_s[r] = sec;
    writeFileSync(metaFile, JSON.stringify(m));
    perR.set(r, ps.data);
  }
  if (!existsSync(join(CACHE, `${key}-tokens.f32`))) await extractOnce();
  const m = JSON.parse(readFileSync(metaFile, 'utf8'));
  const tb = readFileSync(join(CACHE, `${key}-tokens.f32`));
  const tokens = { n: m.n, d: m.d, data: new Float32Array(tb.buffer, tb.byteOffset, tb.byteLength / 4).slice() };
  return { n: m.n, h: m.h, w: m.w, perR, tokens, boxes: m.boxes };
}

const stageTok = new Map<string, ImageTokens>();
/** tokens = L2-normalised spatial mean of stage l2 or l3 (squash geometry, pad 0) */
async function stageTokens(cat: string, items: { path: string }[], row: Row): Promise<ImageTokens> {
  const key = `${cat}|${row.size}|${row.token}|${row.geometry}`;
  if (!stageTok.has(key)) {
    const layer = Number(row.token.slice(1));
    const bb = await loadBackbone('resnet50', { imageSize: row.size, stages: [layer], borderPad: padOf(row) });
    const f = await extract(
      bb,
      items.map((it) => it.path),
      row.geometry,
      row.size,
    );
    const st = f.stages[0]!;
    const P = st.h * st.w;
    const data = new Float32Array(st.n * st.c);
    for (let i = 0; i < st.n; i++) {
      for (let p = 0; p < P; p++) for (let ch = 0; ch < st.c; ch++) data[i * st.c + ch] += st.data[(i * P + p) * st.c + ch]! / P;
      let ss = 0;
      for (let ch = 0; ch < st.c; ch++) ss += data[i * st.c + ch]! ** 2;
      for (let ch = 0; ch < st.c; ch++) data[i * st.c + ch] /= Math.sqrt(ss) || 1;
    }
    stageTok.set(key, { n: st.n, d: st.c, data });
  }
  return stageTok.get(key)!;
}

/** Maps [N, S, S] of a musc run (dataset order checked) and the tokens of the squash geometry. */
async function runMaps(file: string, cat: string, items: { path: string; rel: string }[], row: Row) {
  const r = await readMaps(file);
  if (r.n !== items.length || r.size !== row.size || r.paths.some((p, i) => !items[i]!.path.endsWith(p)))
    throw new Error(`${file}: not the maps of ${cat} at ${row.size} px in dataset order`);
  const c = await components(cat, items, { ...row, rList: [] });
  return { ...c, n: r.n, h: 0, w: 0, perR: new Map<number, Float64Array>(), maps: r.maps };
}

async function main(): Promise<void> {
  const [cat, rowArg] = process.argv.slice(2);
  if (!cat || !rowArg) throw new Error('usage: levers CATEGORY ROW[,ROW...]');
  const ds = await openDataset(DATA);
  const category = await ds.load(cat);
  const items = category.items;
  const labels = Uint8Array.from(items, (it) => it.label ?? 0);
  const masksBySize = new Map<number, Uint8Array>();
  for (const name of rowArg.split(',')) {
    const row = parseRow(name);
    const fromRun = process.env.MUSC_LEVERS_MAPS; // a musc run's maps.safetensors: post-processing rows at its settings
    const c = fromRun ? await runMaps(fromRun, cat, items, row) : await components(cat, items, row);
    const S = row.size;
    if (!masksBySize.has(S)) {
      const m = new Uint8Array(items.length * S * S);
      for (let i = 0; i < items.length; i++) m.set(await loadMask(items[i]!.masks, S, 'nonzero', category.kind), i * S * S);
      masksBySize.set(S, m);
    }
    const P = c.n * c.h * c.w;
    const patch = new Float64Array(P);
    for (const r of row.rList) {
      const a = c.perR.get(r)!;
      for (let k = 0; k < P; k++) patch[k] += a[k]! / row.rList.length;
    }
    let maps = c.maps ?? upsampleAlignCorners(patch, c.n, c.h, c.w, S, S);
    if (row.geometry !== 'squash') maps = uncrop(maps, c.n, S, c.boxes);
    if (row.sigma > 0) maps = gaussianSmooth(maps, c.n, S, S, row.sigma);
    const img = imageScores(maps, c.n, row.top > 0 ? { kind: 'top', fraction: row.top } : MAX_IMAGE_SCORE);
    const rs = rscin(img, row.token === 'l4' ? c.tokens : await stageTokens(cat, items, row), row.kList);
    const m = computeMetrics({ imageScores: rs, imageLabels: labels, maps, masks: masksBySize.get(S)!, height: S, width: S });
    const out = {
      cat,
      row: name,
      image_auroc: +(m.image_auroc! * 100).toFixed(2),
      pixel_auroc: +(m.pixel_auroc! * 100).toFixed(2),
      pro: +(m.pixel_pro! * 100).toFixed(2),
      image_auroc_raw: +(computeMetrics({ imageScores: img, imageLabels: labels }).image_auroc! * 100).toFixed(2),
      ...row,
    };
    console.log(JSON.stringify(out));
    if (process.env.MUSC_LEVERS_LOG) appendFileSync(process.env.MUSC_LEVERS_LOG, `${JSON.stringify(out)}\n`);
  }
  await shutdownCompute();
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
