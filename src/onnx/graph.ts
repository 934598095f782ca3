/**
 * A small ONNX graph builder: every compute graph of the project (backbones, MSM kernels) is
 * written with it and serialised to an ONNX ModelProto for onnxruntime-node.
 *
 *   const g = new GraphBuilder('msm');
 *   const a = g.input('a', 'float32', ['M', 64]);
 *   const w = g.constF32(weights, [64, 32]);
 *   g.output(g.op('MatMul', [a, w]), 'float32', ['M', 32]);
 *   const bytes = g.toBytes();
 *
 * Names are made unique by the builder; `op` returns the output name(s).
 */
import { openSync, writeSync, closeSync, renameSync, rmSync } from 'node:fs';
import { basename } from 'node:path';
import { createHash } from 'node:crypto';
import onnxProto from 'onnx-proto';
import { tempPathFor } from '../io/atomic.js';

const { onnx } = onnxProto;

export type ElemType = 'float32' | 'float16' | 'int64' | 'int32' | 'uint8' | 'int8' | 'bool';
const ELEM: Record<ElemType, number> = { float32: 1, float16: 10, int64: 7, int32: 6, uint8: 2, int8: 3, bool: 9 };

export type Dim = number | string;
export type AttrValue = number | number[] | string | { floats: number[] } | { float: number } | { tensor: onnxProto.onnx.ITensorProto };
export type Attrs = Record<string, AttrValue | undefined>;

export const DEFAULT_OPSET = 17;

export class GraphBuilder {
  private readonly nodes: onnxProto.onnx.INodeProto[] = [];
  private readonly inits: onnxProto.onnx.ITensorProto[] = [];
  private readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  private readonly used = new Set<string>();
  private counter = 0;

  constructor(
    readonly name: string,
    readonly opset = DEFAULT_OPSET,
  ) {}

  /** A fresh, unused value name with the given stem. */
  fresh(stem: string): string {
    let n = stem;
    while (this.used.has(n)) n = `${stem}_${++this.counter}`;
    this.used.add(n);
    return n;
  }

  input(name: string, type: ElemType, dims: Dim[]): string {
    if (this.used.has(name)) throw new Error(`graph ${this.name}: duplicate input name ${name}`);
    this.used.add(name);
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Declares `value` as a graph output, renamed to `name` via Identity if needed. */
  output(value: string, type: ElemType, dims: Dim[], name?: string): string {
    let out = value;
    if (name && name !== value) {
      if (this.used.has(name)) throw new Error(`graph ${this.name}: duplicate output name ${name}`);
      this.used.add(name);
      this.nodes.push({ opType: 'Identity', input: [value], output: [name], name: `identity_${name}` });
      out = name;
    }
    this.outputs.push(valueInfo(out, type, dims));
    return out;
  }

  /** A float32 initializer (weights). */
  constF32(values: Float32Array | number[], dims: number[], stem = 'w'): string {
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    checkCount(data.length, dims, stem);
    const name = this.fresh(stem);
    this.inits.push({
      name,
      dataType: ELEM.float32,
      dims,
      // a view, not a copy: large models (ViT-L: 1.2 GB of weights) must not be held twice
      rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    });
    return name;
  }

  /** An int64 initializer (shapes, axes, indices). */
  constI64(values: number[], dims: number[] = [values.length], stem = 'i'): string {
    checkCount(values.length, dims, stem);
    const name = this.fresh(stem);
    const b = new BigInt64Array(values.map((v) => BigInt(v)));
    this.inits.push({ name, dataType: ELEM.int64, dims, rawData: new Uint8Array(b.buffer) });
    return name;
  }

  /** An 8-bit integer initializer (quantization zero points). */
  constI8(values: number[], type: 'uint8' | 'int8', dims: number[] = [values.length], stem = 'z'): string {
    checkCount(values.length, dims, stem);
    const name = this.fresh(stem);
    const b = type === 'uint8' ? Uint8Array.from(values) : new Uint8Array(Int8Array.from(values).buffer);
    this.inits.push({ name, dataType: ELEM[type], dims, rawData: b });
    return name;
  }

  /** A scalar float32 constant. */
  scalar(v: number, stem = 'c'): string {
    return this.constF32([v], [], stem);
  }

  /** Adds a node; returns its single output name. */
  op(opType: string, inputs: string[], attrs: Attrs = {}, stem?: string): string {
    return this.opN(opType, inputs, 1, attrs, stem)[0];
  }

  /** Adds a node with `nOut` outputs; returns their names. Empty input names mean "absent". */
  opN(opType: string, inputs: string[], nOut: number, attrs: Attrs = {}, stem?: string): string[] {
    const base = stem ?? opType.toLowerCase();
    const outs = Array.from({ length: nOut }, (_, i) => this.fresh(nOut === 1 ? base : `${base}_o${i}`));
    const attribute: onnxProto.onnx.IAttributeProto[] = [];
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined) continue;
      attribute.push(attr(k, v));
    }
    this.nodes.push({ opType, input: inputs, output: outs, name: this.fresh(`n_${base}`), attribute });
    return outs;
  }

  /** Serialises the model (IR version 8, default domain at this.opset). */
  toBytes(): Uint8Array {
    return this.encode(this.inits);
  }

  private encode(inits: onnxProto.onnx.ITensorProto[]): Uint8Array {
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'musc',
      opsetImport: [{ domain: '', version: this.opset }],
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: inits,
        input: this.inputs,
        output: this.outputs,
      },
    });
    return onnx.ModelProto.encode(model).finish();
  }

  /**
   * Writes the model as `onnxPath` plus `onnxPath.data` holding every initializer of at least
   * `minBytes` (ONNX external data, 4096-aligned offsets), so that a large model is never
   * serialised into one buffer: a ViT-L's 1.2 GB of weights are written straight from the weight
   * arrays. Both files are written under temporary names and renamed. Load it by path.
   * Returns the sha256 of each file.
   */
  writeExternal(onnxPath: string, minBytes = 1024): { onnxSha256: string; dataSha256: string; dataBytes: number } {
    const dataPath = `${onnxPath}.data`;
    const tmpData = tempPathFor(dataPath);
    const tmpOnnx = tempPathFor(onnxPath);
    const dataHash = createHash('sha256');
    const ALIGN = 4096;
    const pad = new Uint8Array(ALIGN);
    let offset = 0;
    const inits: onnxProto.onnx.ITensorProto[] = [];
    try {
      const fd = openSync(tmpData, 'w');
      try {
        for (const t of this.inits) {
          const raw = t.rawData as Uint8Array;
          if (!raw || raw.length < minBytes) {
            inits.push(t);
            continue;
          }
          const gap = (ALIGN - (offset % ALIGN)) % ALIGN;
          if (gap) {
            writeSync(fd, pad, 0, gap);
            dataHash.update(pad.subarray(0, gap));
            offset += gap;
          }
          for (let o = 0; o < raw.length; o += 1 << 26) {
            const part = raw.subarray(o, Math.min(raw.length, o + (1 << 26)));
            writeSync(fd, part);
            dataHash.update(part);
          }
          inits.push({
            name: t.name,
            dataType: t.dataType,
            dims: t.dims,
            dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
            externalData: [
              { key: 'location', value: basename(dataPath) },
              { key: 'offset', value: String(offset) },
              { key: 'length', value: String(raw.length) },
            ],
          });
          offset += raw.length;
        }
      } finally {
        closeSync(fd);
      }
      const bytes = this.encode(inits);
      const fo = openSync(tmpOnnx, 'w');
      try {
        writeSync(fo, bytes);
      } finally {
        closeSync(fo);
      }
      renameSync(tmpData, dataPath);
      renameSync(tmpOnnx, onnxPath);
      return { onnxSha256: createHash('sha256').update(bytes).digest('hex'), dataSha256: dataHash.digest('hex'), dataBytes: offset };
    } catch (e) {
      rmSync(tmpData, { force: true });
      rmSync(tmpOnnx, { force: true });
      throw e;
    }
  }

  get nodeCount(): number {
    return this.nodes.length;
  }
}

function checkCount(n: number, dims: number[], what: string): void {
  const expect = dims.reduce((a, b) => a * b, 1);
  if (expect !== n) throw new Error(`initializer ${what}: dims [${dims}] need ${expect} values, got ${n}`);
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attr(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use {float: x} for float attributes`);
    return { name, type: T.INT, i: v };
  }
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  if ('float' in v) return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.TENSOR, t: v.tensor };
}
