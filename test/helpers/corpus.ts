/**
 * A corpus of bad and unusual inputs in the MVTec AD layout, generated on the fly (nothing is
 * checked in). `buildCorpus(root)` writes:
 *
 *   <root>/mixed/test/good/...      readable oddities (scored) and broken files (skipped), see CASES
 *   <root>/mixed/test/scratch/...   3 defective images; masks: one of the wrong size, one extra mask
 *   <root>/mixed/test/loop -> .     a directory symlink loop
 *   <root>/few/test/...             4 images (N < 5)
 *   <root>/single/test/good/a.png   1 image (N < 2)
 *   <root>/empty/test/good/         no images (a readme)
 *   <root>/nomask/test/...          5 good + 2 defective, one defective without a mask
 *
 * `buildClean(root, corpus)` writes the same 'mixed' category with only the files that must be
 * scored (same names and bytes), so that a run on it gives the reference results for the
 * readable images of the corpus.
 */
import { chmod, mkdir, symlink, writeFile, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import sharp from 'sharp';
import { lcg } from './lcg.js';

/** Deterministic textured RGB image [h, w, 3]: smooth waves + a seeded speckle. */
export function texture(w: number, h: number, seed: number, defect = false): Uint8Array {
  const out = new Uint8Array(w * h * 3);
  const rnd = lcg((seed * 2654435761) >>> 0, 1664525, 1013904223);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const base = 120 + 40 * Math.sin(x * 0.4) * Math.cos(y * 0.3);
      for (let c = 0; c < 3; c++) {
        let v = base + 12 * (rnd() - 0.5) + c * 10;
        if (defect && Math.abs(x - w / 2) < w / 8 && Math.abs(y - h / 2) < h / 5) v = 250 - c * 30;
        out[(y * w + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  return out;
}

export async function pngOf(w: number, h: number, seed: number, defect = false): Promise<Buffer> {
  return sharp(texture(w, h, seed, defect), { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

const raw = (w: number, h: number, seed: number) => sharp(texture(w, h, seed), { raw: { width: w, height: h, channels: 3 } });

/** A minimal 24-bit bottom-up BMP [h, w] (BGR rows padded to 4 bytes). */
export function bmpOf(w: number, h: number, seed: number): Buffer {
  const px = texture(w, h, seed);
  const stride = Math.ceil((w * 3) / 4) * 4;
  const size = 54 + stride * h;
  const b = Buffer.alloc(size);
  b.write('BM', 0, 'ascii');
  b.writeUInt32LE(size, 2);
  b.writeUInt32LE(54, 10);
  b.writeUInt32LE(40, 14);
  b.writeInt32LE(w, 18);
  b.writeInt32LE(h, 22);
  b.writeUInt16LE(1, 26);
  b.writeUInt16LE(24, 28);
  b.writeUInt32LE(stride * h, 34);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      const o = 54 + (h - 1 - y) * stride + x * 3;
      const i = (y * w + x) * 3;
      b[o] = px[i + 2]!;
      b[o + 1] = px[i + 1]!;
      b[o + 2] = px[i]!;
    }
  return b;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(b: Buffer): number {
  let c = 0xffffffff;
  for (const v of b) c = CRC_TABLE[(c ^ v) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** A valid PNG header declaring w x h 8-bit RGB, with one tiny (wrong) IDAT: a decompression bomb's header. */
export function bombPng(w: number, h: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', Buffer.from([0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01])),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

export type Expect = 'scored' | 'skipped';

export interface CorpusCase {
  /** what the case is */
  what: string;
  /** path relative to the corpus root ('/' separators); for a non-UTF-8 name, the name as Node shows it */
  rel: string;
  expect: Expect;
  /** for skipped files: the reason the run must give */
  reason?: RegExp;
}

export interface Corpus {
  root: string;
  cases: CorpusCase[];
  /** true when this process cannot be denied reading a chmod 000 file (root) */
  rootReadsAnything: boolean;
}

const NON_UTF8 = Buffer.from([0x62, 0x61, 0x64, 0xff, 0xfe, 0x2e, 0x70, 0x6e, 0x67]); // "bad\xff\xfe.png"

async function put(file: string, data: Buffer | string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, data);
}

/** Writes the corpus under `root` (see the file comment). */
export async function buildCorpus(root: string): Promise<Corpus> {
  const cases: CorpusCase[] = [];
  const good = join(root, 'mixed', 'test', 'good');
  const add = async (name: string, what: string, data: Buffer | string, expect: Expect, reason?: RegExp): Promise<void> => {
    await put(join(good, name), data);
    cases.push({ what, rel: `mixed/test/good/${name}`, expect, ...(reason ? { reason } : {}) });
  };
  // ordinary images of mixed sizes
  const sizes: [number, number][] = [[48, 48], [64, 40], [40, 64], [56, 56], [48, 48], [72, 48]];
  for (let i = 0; i < sizes.length; i++) await add(`good_${i}.png`, `plain PNG ${sizes[i]![0]}x${sizes[i]![1]}`, await pngOf(sizes[i]![0], sizes[i]![1], i + 1), 'scored');
  // readable oddities
  await add('bmp_as_png.png', 'a BMP named .png', bmpOf(48, 48, 11), 'scored');
  await add('tiff_as_png.png', 'a TIFF named .png', await raw(48, 48, 12).tiff().toBuffer(), 'scored');
  await add('png16.png', '16-bit PNG', await raw(48, 48, 13).toColourspace('rgb16').png().toBuffer(), 'scored');
  await add('palette.png', 'palette PNG', await raw(48, 48, 14).png({ palette: true }).toBuffer(), 'scored');
  await add('cmyk.jpg', 'CMYK JPEG', await raw(48, 48, 15).toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer(), 'scored');
  await add('alpha.png', 'RGBA PNG', await raw(48, 48, 16).ensureAlpha(0.5).png().toBuffer(), 'scored');
  await add('exif_rot.jpg', 'JPEG with EXIF orientation 6', await raw(40, 56, 17).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer(), 'scored');
  await add('one_pixel.png', '1x1 image', await raw(1, 1, 18).png().toBuffer(), 'scored');
  await add('elongated.png', '400x3 image', await raw(400, 3, 19).png().toBuffer(), 'scored');
  const dup = await pngOf(48, 48, 20);
  await add('dup_a.png', 'duplicate (first copy)', dup, 'scored');
  await add('dup_b.png', 'duplicate (second copy)', dup, 'scored');
  await add('with space.png', 'a file name with spaces', await pngOf(48, 48, 21), 'scored');
  // unreadable by permissions (root reads it anyway)
  await add('no_perm.png', 'chmod 000', await pngOf(48, 48, 22), 'scored');
  await chmod(join(good, 'no_perm.png'), 0o000);
  let rootReadsAnything = false;
  try {
    await readFile(join(good, 'no_perm.png'));
    rootReadsAnything = true;
  } catch {
    const c = cases[cases.length - 1]!;
    c.expect = 'skipped';
    c.reason = /permission denied/;
  }
  // broken files
  const png = await pngOf(48, 48, 30);
  const jpg = await raw(48, 48, 31).jpeg().toBuffer();
  await add('zero.png', 'zero-byte file', Buffer.alloc(0), 'skipped', /empty file \(0 bytes\)/);
  await add('truncated.png', 'truncated PNG', png.subarray(0, png.length >> 1), 'skipped', /corrupt or truncated png/);
  await add('truncated.jpg', 'truncated JPEG', jpg.subarray(0, jpg.length >> 1), 'skipped', /corrupt or truncated jpeg/);
  await add('text.png', 'a text file named .png', 'this is not an image\n', 'skipped', /not an image \(unrecognised file signature\)/);
  await add('bomb.png', 'PNG declaring 100000x100000 pixels', bombPng(100_000, 100_000), 'skipped', /100000x100000 = 10000000000 pixels, over the limit of 100000000/);
  await symlink('loop.png', join(good, 'loop.png'));
  cases.push({ what: 'symlink loop', rel: 'mixed/test/good/loop.png', expect: 'skipped', reason: /symbolic link loop/ });
  await symlink('missing_target.png', join(good, 'dangling.png'));
  cases.push({ what: 'dangling symlink', rel: 'mixed/test/good/dangling.png', expect: 'skipped', reason: /broken symbolic link/ });
  await writeFile(Buffer.concat([Buffer.from(good + '/'), NON_UTF8]), await pngOf(48, 48, 32));
  cases.push({ what: 'non-UTF-8 file name', rel: `mixed/test/good/${NON_UTF8.toString('utf8')}`, expect: 'skipped', reason: /file name is not valid UTF-8/ });
  // a directory symlink loop: test/loop -> . (must not hang the listing)
  await symlink('.', join(root, 'mixed', 'test', 'loop'));

  // defective images with masks: 000 right size, 001 a mask of the wrong size, and an extra mask
  const scratch = join(root, 'mixed', 'test', 'scratch');
  const gt = join(root, 'mixed', 'ground_truth', 'scratch');
  for (let i = 0; i < 3; i++) {
    await put(join(scratch, `00${i}.png`), await pngOf(48, 48, 40 + i, true));
    cases.push({ what: 'defective image', rel: `mixed/test/scratch/00${i}.png`, expect: 'scored' });
    const mw = i === 1 ? 96 : 48;
    const m = new Uint8Array(mw * mw);
    for (let y = 0; y < mw; y++) for (let x = 0; x < mw; x++) if (Math.abs(x - mw / 2) < mw / 8 && Math.abs(y - mw / 2) < mw / 5) m[y * mw + x] = 255;
    await put(join(gt, `00${i}_mask.png`), await sharp(m, { raw: { width: mw, height: mw, channels: 1 } }).png().toBuffer());
  }
  await put(join(gt, '999_mask.png'), await sharp(new Uint8Array(48 * 48), { raw: { width: 48, height: 48, channels: 1 } }).png().toBuffer());

  // small categories
  for (let i = 0; i < 3; i++) await put(join(root, 'few', 'test', 'good', `${i}.png`), await pngOf(48, 48, 50 + i));
  await put(join(root, 'few', 'test', 'dent', '0.png'), await pngOf(48, 48, 53, true));
  await put(join(root, 'few', 'ground_truth', 'dent', '0_mask.png'), await sharp(new Uint8Array(48 * 48).fill(255), { raw: { width: 48, height: 48, channels: 1 } }).png().toBuffer());
  await put(join(root, 'single', 'test', 'good', 'a.png'), await pngOf(48, 48, 60));
  await put(join(root, 'empty', 'test', 'good', 'readme.txt'), 'no images here\n');
  for (let i = 0; i < 5; i++) await put(join(root, 'nomask', 'test', 'good', `${i}.png`), await pngOf(48, 48, 70 + i));
  for (let i = 0; i < 2; i++) await put(join(root, 'nomask', 'test', 'hole', `${i}.png`), await pngOf(48, 48, 80 + i, true));
  await put(join(root, 'nomask', 'ground_truth', 'hole', '0_mask.png'), await sharp(new Uint8Array(48 * 48).fill(255), { raw: { width: 48, height: 48, channels: 1 } }).png().toBuffer());
  return { root, cases, rootReadsAnything };
}

/** The 'mixed' category with only its readable images (same names, bytes and masks). */
export async function buildClean(root: string, corpus: Corpus): Promise<void> {
  for (const c of corpus.cases) {
    if (c.expect !== 'scored' || !c.rel.startsWith('mixed/')) continue;
    const src = join(corpus.root, c.rel);
    let data: Buffer;
    try {
      data = await readFile(src);
    } catch {
      continue;
    }
    await put(join(root, c.rel), data);
  }
  const gt = join(corpus.root, 'mixed', 'ground_truth', 'scratch');
  for (const m of ['000_mask.png', '001_mask.png', '002_mask.png', '999_mask.png']) await put(join(root, 'mixed', 'ground_truth', 'scratch', m), await readFile(join(gt, m)));
}
