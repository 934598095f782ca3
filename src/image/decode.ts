/**
 * Image decoding: sharp (libvips) for everything it reads, with the real format sniffed from
 * the bytes (never from the extension) and a BMP fallback, since libvips does not read BMP.
 *
 * Every image comes out as 8-bit RGB [H, W, 3] after EXIF orientation, like PIL's
 * `Image.open(p).convert('RGB')`: grayscale is replicated, palette expanded, CMYK converted,
 * 16-bit scaled to 8 bits, alpha dropped (not composited, as PIL's convert does).
 */
import { lstat, readFile } from 'node:fs/promises';
import sharp from 'sharp';
import bmp from 'bmp-js';

/** 8-bit RGB pixels, row-major [H, W, 3]. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** A single-channel 8-bit mask [H, W] (the maximum over colour channels). */
export interface GrayImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export class ImageDecodeError extends Error {
  constructor(
    public readonly file: string,
    public readonly reason: string,
  ) {
    super(`${file}: ${reason}`);
    this.name = 'ImageDecodeError';
  }
}

export interface DecodeOptions {
  /** refuse images with more pixels than this (decompression bombs); default 100 megapixels */
  maxPixels?: number;
}

export const DEFAULT_MAX_PIXELS = 100_000_000;

export type SniffedFormat = 'png' | 'jpeg' | 'bmp' | 'tiff' | 'gif' | 'webp' | 'unknown';

/** The real format from the file's first bytes. */
export function sniffFormat(b: Uint8Array): SniffedFormat {
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d) return 'bmp';
  if (
    b.length >= 4 &&
    ((b[0] === 0x49 && b[1] === 0x49 && b[2] === 0x2a && b[3] === 0) || (b[0] === 0x4d && b[1] === 0x4d && b[2] === 0 && b[3] === 0x2a))
  )
    return 'tiff';
  if (b.length >= 6 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return 'gif';
  if (b.length >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45) return 'webp';
  return 'unknown';
}

/** Why a file cannot be read, in words (errno code -> reason). */
async function readFailure(file: string, e: unknown): Promise<string> {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ELOOP') return 'symbolic link loop';
  if (code === 'EISDIR') return 'is a directory';
  if (code === 'ENOENT') {
    try {
      if ((await lstat(file)).isSymbolicLink()) return 'broken symbolic link (its target does not exist)';
    } catch {
      // not there at all
    }
    return 'file not found';
  }
  return (e as Error).message;
}

/** Reads an image file's bytes; errors are ImageDecodeError with the reason in words. */
export async function readImageBytes(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (e) {
    throw new ImageDecodeError(file, `cannot read: ${await readFailure(file, e)}`);
  }
}
const readBytes = readImageBytes;

/** Decodes to interleaved 8-bit pixels with `channels` channels (1 = max over colours, 3 = RGB). */
async function decodePixels(
  file: string,
  bytes: Buffer,
  channels: 1 | 3,
  opts: DecodeOptions,
): Promise<{ width: number; height: number; data: Uint8Array }> {
  if (bytes.length === 0) throw new ImageDecodeError(file, 'empty file (0 bytes)');
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const format = sniffFormat(bytes);
  if (format === 'bmp') return decodeBmp(file, bytes, channels, maxPixels);
  if (format === 'unknown') throw new ImageDecodeError(file, 'not an image (unrecognised file signature)');
  try {
    // the header first (no pixel limit: it decodes nothing), so that a bomb is named with its size
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    if (!meta.width || !meta.height) throw new ImageDecodeError(file, `cannot read the dimensions of this ${format} file`);
    if (meta.width * meta.height > maxPixels) {
      throw new ImageDecodeError(
        file,
        `image is ${meta.width}x${meta.height} = ${meta.width * meta.height} pixels, ` +
          `over the limit of ${maxPixels} (decompression bomb? raise it with --max-pixels)`,
      );
    }
    const img = sharp(bytes, { limitInputPixels: maxPixels, failOn: 'error', sequentialRead: true });
    const { data, info } = await img
      .rotate() // EXIF orientation
      .removeAlpha()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    return toChannels(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), info.width, info.height, info.channels, channels);
  } catch (e) {
    if (e instanceof ImageDecodeError) throw e;
    const msg = (e as Error).message;
    if (/pixel limit/i.test(msg)) throw new ImageDecodeError(file, `image exceeds the pixel limit of ${maxPixels} (decompression bomb?)`);
    throw new ImageDecodeError(file, `corrupt or truncated ${format} file (${msg.split('\n')[0]})`);
  }
}

const BMP_INFO_SIZES = new Set([40, 52, 56, 64, 108, 124]);
const BMP_BITS = new Set([1, 4, 8, 15, 16, 24, 32]);

/**
 * The BMP header's dimensions, after checking that it is one (a text file starting with "BM" is
 * not): DIB header size, planes = 1, a bit depth bmp-js decodes, compression none, RLE or bit fields.
 */
export function bmpHeader(file: string, bytes: Uint8Array): { width: number; height: number; bits: number } {
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b.length < 26) throw new ImageDecodeError(file, `not a valid bmp file (starts with 'BM' but is only ${b.length} bytes)`);
  const dib = b.readUInt32LE(14);
  if (dib === 12) throw new ImageDecodeError(file, 'unsupported bmp variant (OS/2 1.x core header); convert it to PNG');
  if (!BMP_INFO_SIZES.has(dib) || b.length < 14 + dib) {
    throw new ImageDecodeError(file, `not a valid bmp file (starts with 'BM' but its header size field is ${dib}, not a BMP header)`);
  }
  const planes = b.readUInt16LE(26);
  const bits = b.readUInt16LE(28);
  const compression = b.readUInt32LE(30);
  const offset = b.readUInt32LE(10);
  if (planes !== 1) throw new ImageDecodeError(file, `not a valid bmp file (${planes} colour planes; BMP has 1)`);
  if (!BMP_BITS.has(bits)) {
    throw new ImageDecodeError(file, `unsupported or invalid bmp bit depth ${bits} (supported: 1, 4, 8, 16, 24, 32)`);
  }
  if (compression > 3) {
    throw new ImageDecodeError(file, `unsupported bmp compression ${compression} (JPEG/PNG inside BMP); convert it to PNG`);
  }
  if (offset >= b.length) throw new ImageDecodeError(file, `truncated bmp file (pixel data would start at byte ${offset} of ${b.length})`);
  const width = b.readInt32LE(18);
  const height = Math.abs(b.readInt32LE(22));
  if (width <= 0 || height <= 0) throw new ImageDecodeError(file, `bmp file declares invalid dimensions ${width}x${height}`);
  return { width, height, bits };
}

function decodeBmp(file: string, bytes: Buffer, channels: 1 | 3, maxPixels: number): { width: number; height: number; data: Uint8Array } {
  const { width: w, height: h } = bmpHeader(file, bytes);
  if (w * h > maxPixels)
    throw new ImageDecodeError(
      file,
      `image is ${w}x${h} = ${w * h} pixels, over the limit of ${maxPixels} (decompression bomb? raise it with --max-pixels)`,
    );
  let dec: { width: number; height: number; data: Buffer };
  try {
    dec = bmp.decode(bytes);
  } catch (e) {
    const msg = (e as Error).message;
    // bmp-js's own errors are about its internals ('this[bitn] is not a function', 'out of range')
    const internal = /is not a function|Cannot read|undefined/.test(msg);
    throw new ImageDecodeError(file, `corrupt or truncated bmp file${internal ? '' : ` (${msg})`}`);
  }
  if (dec.data.length < dec.width * dec.height * 4) throw new ImageDecodeError(file, 'truncated bmp file');
  // bmp-js gives ABGR bytes per pixel
  const n = dec.width * dec.height;
  const rgb = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    rgb[3 * i] = dec.data[4 * i + 3];
    rgb[3 * i + 1] = dec.data[4 * i + 2];
    rgb[3 * i + 2] = dec.data[4 * i + 1];
  }
  return toChannels(rgb, dec.width, dec.height, 3, channels);
}

function toChannels(
  src: Uint8Array,
  width: number,
  height: number,
  cin: number,
  cout: 1 | 3,
): { width: number; height: number; data: Uint8Array } {
  const n = width * height;
  if (cin === cout) return { width, height, data: src };
  const out = new Uint8Array(n * cout);
  if (cout === 3) {
    for (let i = 0; i < n; i++) {
      const v = src[i * cin];
      out[3 * i] = v;
      out[3 * i + 1] = cin >= 3 ? src[i * cin + 1] : v;
      out[3 * i + 2] = cin >= 3 ? src[i * cin + 2] : v;
    }
  } else {
    for (let i = 0; i < n; i++) {
      let m = 0;
      for (let c = 0; c < Math.min(cin, 3); c++) m = Math.max(m, src[i * cin + c]);
      out[i] = m;
    }
  }
  return { width, height, data: out };
}

/** Why an image would not be read (header checks only: readable, known format, dimensions within the limit), or null. */
export async function probeImage(file: string, maxPixels = DEFAULT_MAX_PIXELS): Promise<string | null> {
  try {
    const bytes = await readBytes(file);
    if (bytes.length === 0) return 'empty file (0 bytes)';
    const format = sniffFormat(bytes);
    if (format === 'unknown') return 'not an image (unrecognised file signature)';
    const { width, height } = format === 'bmp' ? bmpHeader(file, bytes) : await sharp(bytes, { limitInputPixels: false }).metadata();
    if (!width || !height) return `cannot read the dimensions of this ${format} file`;
    return width * height > maxPixels ? `image is ${width}x${height} pixels, over the limit of ${maxPixels}` : null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Decodes an image file to 8-bit RGB, whatever its extension says. */
export async function decodeRgb(file: string, opts: DecodeOptions = {}): Promise<RgbImage> {
  return decodePixels(file, await readBytes(file), 3, opts);
}

/** Decodes a mask file to one channel: the maximum over its colour channels (0 = good). */
export async function decodeMask(file: string, opts: DecodeOptions = {}): Promise<GrayImage> {
  return decodePixels(file, await readBytes(file), 1, opts);
}

/** Decodes from bytes already in memory (`name` is used in error messages). */
export async function decodeRgbBytes(name: string, bytes: Buffer, opts: DecodeOptions = {}): Promise<RgbImage> {
  return decodePixels(name, bytes, 3, opts);
}
