/**
 * safetensors reader and writer.
 *
 * Format: 8-byte little-endian header length n, then n bytes of JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {..}}`, then the raw
 * little-endian row-major data; offsets are relative to the end of the header.
 *
 * The reader parses only the header up front and reads each tensor by offset when asked, so
 * a 1 GB weight file costs only the tensors actually used. F16 and BF16 are converted to F32.
 */
import { openSync, readSync, closeSync, fstatSync } from 'node:fs';
import { writeFileAtomic } from './atomic.js';
import { fromFloat16 } from './float16.js';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export interface TensorInfo {
  dtype: SafetensorsDType;
  shape: number[];
  /** absolute byte offsets in the file */
  begin: number;
  end: number;
}

const BYTES: Record<SafetensorsDType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export class SafetensorsError extends Error {
  constructor(
    public readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'SafetensorsError';
  }
}

/** A float tensor read from a file, with its shape. */
export interface FloatTensor {
  data: Float32Array;
  shape: number[];
}

export class SafetensorsFile {
  readonly tensors = new Map<string, TensorInfo>();
  readonly metadata: Record<string, string> = {};
  private fd: number | null;
  private constructor(
    readonly path: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Opens a file and validates its header (dtype, shape/size agreement, bounds). */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new SafetensorsError(path, `cannot open: ${(e as Error).message}`);
    }
    const f = new SafetensorsFile(path, fd);
    try {
      f.parseHeader();
    } catch (e) {
      f.close();
      throw e;
    }
    return f;
  }

  private parseHeader(): void {
    const size = fstatSync(this.fd!).size;
    if (size < 8) throw new SafetensorsError(this.path, `not a safetensors file (only ${size} bytes)`);
    const lenBuf = Buffer.alloc(8);
    readSync(this.fd!, lenBuf, 0, 8, 0);
    const n = Number(lenBuf.readBigUInt64LE(0));
    if (n <= 1 || n > 100 * 1024 * 1024 || 8 + n > size) {
      throw new SafetensorsError(this.path, `not a safetensors file (header length ${n} for a ${size}-byte file)`);
    }
    const hb = Buffer.alloc(n);
    readSync(this.fd!, hb, 0, n, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(hb.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new SafetensorsError(this.path, 'not a safetensors file (header is not JSON)');
    }
    const dataStart = 8 + n;
    for (const [name, v] of Object.entries(header)) {
      if (name === '__metadata__') {
        Object.assign(this.metadata, v as Record<string, string>);
        continue;
      }
      const info = v as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
      if (
        !info ||
        typeof info.dtype !== 'string' ||
        !(info.dtype in BYTES) ||
        !Array.isArray(info.shape) ||
        !Array.isArray(info.data_offsets)
      ) {
        throw new SafetensorsError(this.path, `tensor '${name}' has a malformed header entry (dtype ${String(info?.dtype)})`);
      }
      const dtype = info.dtype as SafetensorsDType;
      const count = info.shape.reduce((a, b) => a * b, 1);
      const [b, e] = info.data_offsets;
      if (e - b !== count * BYTES[dtype]) {
        throw new SafetensorsError(
          this.path,
          `tensor '${name}' has ${e - b} bytes, expected ${count * BYTES[dtype]} for ${dtype}[${info.shape.join(',')}]`,
        );
      }
      if (dataStart + e > size) {
        throw new SafetensorsError(this.path, `tensor '${name}' extends past the end of the file (file truncated?)`);
      }
      this.tensors.set(name, { dtype, shape: info.shape.slice(), begin: dataStart + b, end: dataStart + e });
    }
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new SafetensorsError(this.path, `no tensor named '${name}'`);
    return t;
  }

  /** Raw bytes of one tensor (little-endian). */
  raw(name: string): Buffer {
    if (this.fd === null) throw new SafetensorsError(this.path, 'file is closed');
    const t = this.info(name);
    const buf = Buffer.alloc(t.end - t.begin);
    let off = 0;
    while (off < buf.length) {
      const got = readSync(this.fd, buf, off, buf.length - off, t.begin + off);
      if (got <= 0) throw new SafetensorsError(this.path, `short read of '${name}'`);
      off += got;
    }
    return buf;
  }

  /** Little-endian uint16 values of a raw buffer (copied: the buffer may be unaligned). */
  private float16Bits(raw: Buffer, n: number): Uint16Array {
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i++) bits[i] = raw.readUInt16LE(i * 2);
    return bits;
  }

  /** Reads an F16 tensor as its half-precision bit patterns (see io/float16.ts), not widened. */
  float16(name: string): { data: Uint16Array; shape: number[] } {
    const t = this.info(name);
    if (t.dtype !== 'F16') throw new SafetensorsError(this.path, `tensor '${name}' has dtype ${t.dtype}, expected F16`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    return { data: this.float16Bits(this.raw(name), n), shape: t.shape.slice() };
  }

  /** Reads a floating-point tensor as float32 (F64 is rounded, F16/BF16 widened). */
  float32(name: string): FloatTensor {
    const t = this.info(name);
    const raw = this.raw(name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    switch (t.dtype) {
      case 'F32':
        for (let i = 0; i < n; i++) out[i] = raw.readFloatLE(i * 4);
        break;
      case 'F64':
        for (let i = 0; i < n; i++) out[i] = raw.readDoubleLE(i * 8);
        break;
      case 'F16':
        fromFloat16(this.float16Bits(raw, n), out);
        break;
      case 'BF16': {
        const u = new Uint32Array(1);
        const f = new Float32Array(u.buffer);
        for (let i = 0; i < n; i++) {
          u[0] = raw.readUInt16LE(i * 2) << 16;
          out[i] = f[0];
        }
        break;
      }
      default:
        throw new SafetensorsError(this.path, `tensor '${name}' has dtype ${t.dtype}, expected a float type (F32, F16, BF16, F64)`);
    }
    return { data: out, shape: t.shape.slice() };
  }

  /** Reads any numeric tensor as float64 (exact for F32/F64/I32; I64 via Number). */
  float64(name: string): { data: Float64Array; shape: number[] } {
    const t = this.info(name);
    const raw = this.raw(name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const out = new Float64Array(n);
    switch (t.dtype) {
      case 'F64':
        for (let i = 0; i < n; i++) out[i] = raw.readDoubleLE(i * 8);
        break;
      case 'F32':
        for (let i = 0; i < n; i++) out[i] = raw.readFloatLE(i * 4);
        break;
      case 'I64':
        for (let i = 0; i < n; i++) out[i] = Number(raw.readBigInt64LE(i * 8));
        break;
      case 'I32':
        for (let i = 0; i < n; i++) out[i] = raw.readInt32LE(i * 4);
        break;
      case 'U8':
      case 'BOOL':
        for (let i = 0; i < n; i++) out[i] = raw[i];
        break;
      default: {
        const f = this.float32(name);
        out.set(f.data);
      }
    }
    return { data: out, shape: t.shape.slice() };
  }

  /** Reads an integer tensor as Int32 (I64 values must fit). */
  int32(name: string): { data: Int32Array; shape: number[] } {
    const f = this.float64(name);
    return { data: Int32Array.from(f.data), shape: f.shape };
  }

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}

export interface TensorToWrite {
  /** F16 data are half-precision bit patterns (io/float16.ts) */
  dtype: 'F32' | 'F64' | 'F16' | 'I32' | 'I64' | 'U8';
  shape: number[];
  data: Float32Array | Float64Array | Uint16Array | Int32Array | BigInt64Array | Uint8Array;
}

/** Encodes tensors as a safetensors buffer (names sorted, header padded to 8 bytes). */
export function encodeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Buffer {
  const names = Object.keys(tensors).sort();
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors[name];
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor '${name}': shape [${t.shape}] holds ${count} values, data has ${t.data.length}`);
    const bytes = count * BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const hb = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + hb.length + offset);
  out.writeBigUInt64LE(BigInt(hb.length), 0);
  hb.copy(out, 8);
  let pos = 8 + hb.length;
  for (const name of names) {
    const d = tensors[name].data;
    const src = Buffer.from(d.buffer, d.byteOffset, d.byteLength); // platform is little-endian (x86/arm)
    src.copy(out, pos);
    pos += src.length;
  }
  return out;
}

/** Writes a safetensors file atomically (temporary name, then rename). */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
