/**
 * One graph builder for bottleneck ResNets (ResNet50/101/152, WideResNet50-2/101-2), from two
 * weight conventions:
 *
 * - Keras / tfjs (`resnetFromKeras`): ResNet v1 as in keras.applications: kernels HWIO, conv biases,
 *   BatchNormalization eps 1e-3 (read from each layer's config), stem ZeroPadding2D(3) + 7x7/2
 *   'valid' conv, ZeroPadding2D(1) + MaxPooling2D 3x3/2 'valid', 'same' 3x3 convs, and the stride
 *   of each layer's first block on the first 1x1 conv and the 1x1 shortcut.
 * - torchvision / timm (`resnetFromTorch`): `conv1`, `bn1`, `layer{1-4}.{j}.conv{1,2,3}` /
 *   `.bn{1,2,3}`, `.downsample.0/.1`, `fc`; kernels OIHW, no conv biases, BatchNorm eps 1e-5,
 *   stem 7x7/2 pad 3, MaxPool2d(3, 2, padding=1) (pads with -inf), stride on the 3x3 conv2
 *   ("ResNet v1.5"). WideResNet = the same network with the bottleneck inner width x2.
 *
 * Both become a `ResNetNet` (convs in OIHW with explicit pads/strides and their batch norms), and
 * `buildResNetGraph` writes it as ONNX with every batch norm folded into its conv:
 *
 *   s = gamma / sqrt(var + eps);   W'[o] = W[o] * s[o];   b'[o] = (b[o] - mean[o]) * s[o] + beta[o]
 *
 * Bottleneck block (both conventions): y = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))))))))
 * + shortcut(x)), shortcut = bn(conv1x1(x)) in the first block of a layer, identity otherwise.
 *
 * Graph: input `pixels` [B, 3, S, S] (or [B, 3, H, W]) float32 NCHW (already normalised); outputs `layer{k}` for the
 * requested layers as channels-last [B, H, W, C], `tokens` = global average pool of layer4 [B, C],
 * and with a classifier `logits` [B, K] and `probs` = softmax(logits) [B, K].
 */
import { BackboneConfigError } from './errors.js';
import { GraphBuilder } from '../onnx/graph.js';
import type { SafetensorsFile } from '../io/safetensors.js';
import type { TfjsLayer, TfjsModel } from './tfjs.js';

/** [top, left, bottom, right] */
export type Pad2d = [number, number, number, number];

export interface BatchNorm {
  gamma: Float32Array;
  beta: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
  eps: number;
}

/** A conv (+ optional batch norm) in ONNX layout. */
export interface ConvBn {
  /** source name, for error messages */
  name: string;
  /** OIHW [out, in, kh, kw] */
  weight: Float32Array;
  shape: [number, number, number, number];
  /** conv bias [out] */
  bias?: Float32Array;
  bn?: BatchNorm;
  stride: number;
  /** explicit zero pads, or TensorFlow 'same' (extra padding at the bottom/right) */
  padding: Pad2d | 'same_upper';
}

export interface BottleneckBlock {
  conv1: ConvBn;
  conv2: ConvBn;
  conv3: ConvBn;
  downsample?: ConvBn;
}

export interface ResNetNet {
  convention: 'keras' | 'torchvision';
  stem: ConvBn;
  /** max pool after the stem ReLU; padValue 'zero' = Keras ZeroPadding2D, '-inf' = torch MaxPool2d padding */
  pool: { kernel: number; stride: number; pads: Pad2d; padValue: 'zero' | '-inf' };
  /** 4 layers of bottleneck blocks */
  layers: BottleneckBlock[][];
  /** classifier: weight [K, C], bias [K] */
  fc?: { weight: Float32Array; bias: Float32Array; classes: number };
}

/** The description of a bottleneck ResNet. */
export interface ResNetArch {
  name: string;
  /** bottleneck blocks per layer, e.g. [3, 4, 6, 3] */
  blocks: number[];
  /** stem output channels (64) */
  stemWidth: number;
  /** planes per layer ([64, 128, 256, 512]); block output = planes * expansion */
  planes: number[];
  /** bottleneck inner width = planes * widthFactor (1: ResNet, 2: WideResNet-2) */
  widthFactor: number;
  expansion: number;
  /** where the stride 2 of a layer's first block is: Keras v1 on the 1x1 conv1, torchvision v1.5 on the 3x3 conv2 */
  strideOn: 'conv1' | 'conv2';
}

const STANDARD_PLANES = [64, 128, 256, 512];

export const RESNET50: ResNetArch = {
  name: 'resnet50',
  blocks: [3, 4, 6, 3],
  stemWidth: 64,
  planes: STANDARD_PLANES,
  widthFactor: 1,
  expansion: 4,
  strideOn: 'conv2',
};
export const WIDE_RESNET50_2: ResNetArch = { ...RESNET50, name: 'wide_resnet50_2', widthFactor: 2 };

export class ResNetWeightsError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'ResNetWeightsError';
  }
}

// ---------------------------------------------------------------------------------------------
// shapes

/** Output size of a conv/pool along one axis. */
export function convOutSize(size: number, kernel: number, stride: number, padBefore: number, padAfter: number): number {
  return Math.floor((size + padBefore + padAfter - kernel) / stride) + 1;
}

function outSize(c: ConvBn, h: number, w: number): [number, number] {
  if (c.padding === 'same_upper') return [Math.ceil(h / c.stride), Math.ceil(w / c.stride)];
  const [t, l, b, r] = c.padding;
  return [convOutSize(h, c.shape[2], c.stride, t, b), convOutSize(w, c.shape[3], c.stride, l, r)];
}

/** Per-layer output shapes [H, W, C] (layers 1..4 at index 0..3) for an S x S (or H x W) input. */
export function resnetStageShapes(net: ResNetNet, imageSize: number, imageWidth = imageSize): [number, number, number][] {
  let [h, w] = outSize(net.stem, imageSize, imageWidth);
  const p = net.pool;
  h = convOutSize(h, p.kernel, p.stride, p.pads[0], p.pads[2]);
  w = convOutSize(w, p.kernel, p.stride, p.pads[1], p.pads[3]);
  const out: [number, number, number][] = [];
  for (const layer of net.layers) {
    for (const blk of layer) {
      for (const c of [blk.conv1, blk.conv2, blk.conv3]) [h, w] = outSize(c, h, w);
    }
    out.push([h, w, layer[layer.length - 1].conv3.shape[0]]);
  }
  return out;
}

/** Reads the description back from a net (and checks that channels chain). */
export function describeResNet(net: ResNetNet, name = 'resnet'): ResNetArch {
  const where = `${net.convention} ResNet`;
  const chain = (c: ConvBn, inC: number): number => {
    if (c.shape[1] !== inC) throw new ResNetWeightsError(where, `${c.name} expects ${c.shape[1]} input channels, gets ${inC}`);
    return c.shape[0];
  };
  let ch = chain(net.stem, 3);
  const planes: number[] = [];
  const factors = new Set<number>();
  const strideOn = new Set<'conv1' | 'conv2'>();
  for (const [li, layer] of net.layers.entries()) {
    if (!layer.length) throw new ResNetWeightsError(where, `layer${li + 1} has no blocks`);
    for (const [bi, blk] of layer.entries()) {
      const inC = ch;
      ch = chain(blk.conv3, chain(blk.conv2, chain(blk.conv1, inC)));
      const sc = blk.downsample ? chain(blk.downsample, inC) : inC;
      if (sc !== ch)
        throw new ResNetWeightsError(
          where,
          `layer${li + 1}.${bi}: shortcut gives ${sc} channels, the residual ${ch}${blk.downsample ? '' : ' (a downsample conv is missing)'}`,
        );
      if (blk.conv1.stride > 1) strideOn.add('conv1');
      if (blk.conv2.stride > 1) strideOn.add('conv2');
      if (blk.conv3.stride > 1) throw new ResNetWeightsError(where, `${blk.conv3.name} has stride ${blk.conv3.stride}`);
      const stride = blk.conv1.stride * blk.conv2.stride;
      if (blk.downsample && blk.downsample.stride !== stride)
        throw new ResNetWeightsError(where, `${blk.downsample.name} has stride ${blk.downsample.stride}, the residual ${stride}`);
      if (!blk.downsample && stride !== 1)
        throw new ResNetWeightsError(where, `layer${li + 1}.${bi} has stride ${stride} without a downsample conv`);
    }
    // bottleneck: out = planes * 4, inner width = planes * widthFactor
    const out = layer[0].conv3.shape[0];
    const width = layer[0].conv1.shape[0];
    planes.push(out / 4);
    factors.add(width / (out / 4));
  }
  if (factors.size !== 1)
    throw new ResNetWeightsError(where, `inconsistent bottleneck widths across layers (width/planes = ${[...factors]})`);
  return {
    name,
    blocks: net.layers.map((l) => l.length),
    stemWidth: net.stem.shape[0],
    planes,
    widthFactor: [...factors][0],
    expansion: 4,
    strideOn: strideOn.has('conv1') ? 'conv1' : 'conv2',
  };
}

// ---------------------------------------------------------------------------------------------
// the graph

export interface ResNetGraphOptions {
  /** input height (and width, unless imageWidth is given) */
  imageSize: number;
  imageWidth?: number;
  /** layers (1..4) whose outputs are returned as `layer{k}` [B, H, W, C] */
  stages: number[];
  /** add `logits` and `probs` (needs net.fc) */
  head?: boolean;
  name?: string;
}

export interface ResNetGraph {
  bytes: Uint8Array;
  /** stage output name -> [H, W, C] */
  stageShapes: { name: string; layer: number; h: number; w: number; c: number }[];
  tokenDim: number;
  classes: number;
}

/** Folds a conv's batch norm into its weights: returns OIHW weight and bias [out]. */
export function foldBatchNorm(c: ConvBn): { weight: Float32Array; bias: Float32Array } {
  const [o, i, kh, kw] = c.shape;
  const per = i * kh * kw;
  const weight = new Float32Array(o * per);
  const bias = new Float32Array(o);
  for (let oc = 0; oc < o; oc++) {
    const b0 = c.bias ? c.bias[oc] : 0;
    let s = 1;
    let shift = b0;
    if (c.bn) {
      s = c.bn.gamma[oc] / Math.sqrt(c.bn.variance[oc] + c.bn.eps);
      shift = (b0 - c.bn.mean[oc]) * s + c.bn.beta[oc];
    }
    for (let k = 0; k < per; k++) weight[oc * per + k] = c.weight[oc * per + k] * s;
    bias[oc] = shift;
  }
  return { weight, bias };
}

function addConv(g: GraphBuilder, x: string, c: ConvBn, relu: boolean): string {
  const { weight, bias } = foldBatchNorm(c);
  const W = g.constF32(weight, c.shape, 'W');
  const B = g.constF32(bias, [c.shape[0]], 'B');
  const attrs =
    c.padding === 'same_upper'
      ? { kernel_shape: [c.shape[2], c.shape[3]], strides: [c.stride, c.stride], auto_pad: 'SAME_UPPER' }
      : {
          kernel_shape: [c.shape[2], c.shape[3]],
          strides: [c.stride, c.stride],
          pads: [c.padding[0], c.padding[1], c.padding[2], c.padding[3]],
        };
  const y = g.op('Conv', [x, W, B], attrs, 'conv');
  return relu ? g.op('Relu', [y], {}, 'relu') : y;
}

/** Builds the ONNX graph of a net (see the file comment for inputs and outputs). */
export function buildResNetGraph(net: ResNetNet, opts: ResNetGraphOptions): ResNetGraph {
  const S = opts.imageSize;
  const SW = opts.imageWidth ?? S;
  for (const k of opts.stages)
    if (!Number.isInteger(k) || k < 1 || k > 4) throw new BackboneConfigError(`ResNet stages are layer numbers 1..4, got ${k}`);
  if (opts.head && !net.fc) throw new Error('this ResNet has no classifier (fc) weights');
  describeResNet(net); // validates the channel chain
  const shapes = resnetStageShapes(net, S, SW);
  if (shapes.some(([h, w]) => h < 1 || w < 1)) throw new BackboneConfigError(`image size ${S} x ${SW} is too small for this ResNet`);
  const g = new GraphBuilder(opts.name ?? 'resnet');
  const B = 'batch';
  let x = g.input('pixels', 'float32', [B, 3, S, SW]);
  x = addConv(g, x, net.stem, true);
  const p = net.pool;
  if (p.padValue === 'zero' && p.pads.some((v) => v > 0)) {
    // Keras: ZeroPadding2D then a 'valid' pool; ONNX pads order [x1_begin, x2_begin, ..., x1_end, ...]
    const pads = g.constI64([0, 0, p.pads[0], p.pads[1], 0, 0, p.pads[2], p.pads[3]]);
    x = g.op('Pad', [x, pads], { mode: 'constant' }, 'pad');
    x = g.op('MaxPool', [x], { kernel_shape: [p.kernel, p.kernel], strides: [p.stride, p.stride] }, 'pool');
  } else {
    // ONNX MaxPool pads behave like torch's (padded cells never win)
    x = g.op('MaxPool', [x], { kernel_shape: [p.kernel, p.kernel], strides: [p.stride, p.stride], pads: [...p.pads] }, 'pool');
  }
  const stageShapes: ResNetGraph['stageShapes'] = [];
  for (const [li, layer] of net.layers.entries()) {
    for (const blk of layer) {
      let y = addConv(g, x, blk.conv1, true);
      y = addConv(g, y, blk.conv2, true);
      y = addConv(g, y, blk.conv3, false);
      const sc = blk.downsample ? addConv(g, x, blk.downsample, false) : x;
      x = g.op('Relu', [g.op('Add', [y, sc], {}, 'add')], {}, 'relu');
    }
    const k = li + 1;
    if (opts.stages.includes(k)) {
      const [h, w, c] = shapes[li];
      const name = `layer${k}`;
      g.output(g.op('Transpose', [x], { perm: [0, 2, 3, 1] }, 'nhwc'), 'float32', [B, h, w, c], name);
      stageShapes.push({ name, layer: k, h, w, c });
    }
  }
  const C = shapes[3][2];
  // global average pool over H, W: [B, C, H, W] -> [B, C]
  const tokens = g.op('ReduceMean', [x], { axes: [2, 3], keepdims: 0 }, 'gap');
  g.output(tokens, 'float32', [B, C], 'tokens');
  let classes = 0;
  if (opts.head && net.fc) {
    classes = net.fc.classes;
    const W = g.constF32(net.fc.weight, [classes, C], 'fcW');
    const b = g.constF32(net.fc.bias, [classes], 'fcB');
    const logits = g.op('Gemm', [tokens, W, b], { transB: 1 }, 'fc');
    g.output(logits, 'float32', [B, classes], 'logits');
    g.output(g.op('Softmax', [logits], { axis: 1 }, 'softmax'), 'float32', [B, classes], 'probs');
  }
  stageShapes.sort((a, b) => a.layer - b.layer);
  return { bytes: g.toBytes(), stageShapes, tokenDim: C, classes };
}

// ---------------------------------------------------------------------------------------------
// Keras / tfjs

function numPair(v: unknown, what: string): [number, number] {
  if (typeof v === 'number') return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((e) => typeof e === 'number')) return [v[0] as number, v[1] as number];
  throw new Error(`${what}: expected a number or a pair, got ${JSON.stringify(v)}`);
}

/** ZeroPadding2D `padding` -> [top, left, bottom, right]. */
function zeroPadding(layer: TfjsLayer): Pad2d {
  const p = layer.config.padding;
  if (typeof p === 'number') return [p, p, p, p];
  if (Array.isArray(p) && p.length === 2) {
    if (typeof p[0] === 'number') return [p[0], p[1] as number, p[0], p[1] as number];
    const [t, b] = numPair(p[0], layer.name);
    const [l, r] = numPair(p[1], layer.name);
    return [t, l, b, r];
  }
  throw new Error(`${layer.name}: unsupported ZeroPadding2D padding ${JSON.stringify(p)}`);
}

/** The old keras.applications names (res2a_branch2a, bn2a_branch2a, ...) and the tf.keras >= 2.3 ones (conv2_block1_1_conv, ...). */
interface KerasNames {
  stemConv: string;
  stemBn: string;
  /** layer (1..4), block (0-based), conv (1..3, or 0 for the shortcut) -> [conv, bn] names */
  block(layer: number, block: number, conv: number): [string, string];
}

const OLD_NAMES: KerasNames = {
  stemConv: 'conv1',
  stemBn: 'bn_conv1',
  block(layer, block, conv) {
    const id = `${layer + 1}${String.fromCharCode(97 + block)}`;
    const branch = conv === 0 ? 'branch1' : `branch2${'abc'[conv - 1]}`;
    return [`res${id}_${branch}`, `bn${id}_${branch}`];
  },
};

const NEW_NAMES: KerasNames = {
  stemConv: 'conv1_conv',
  stemBn: 'conv1_bn',
  block(layer, block, conv) {
    const id = `conv${layer + 1}_block${block + 1}_${conv}`;
    return [`${id}_conv`, `${id}_bn`];
  },
};

/** A Keras ResNet v1 (keras.applications ResNet50/101/152 layout) from a tfjs layers model. */
export function resnetFromKeras(model: TfjsModel): ResNetNet {
  const file = model.path;
  const err = (m: string) => new ResNetWeightsError(file, m);
  const names = model.layerByName.has(OLD_NAMES.stemBn) ? OLD_NAMES : model.layerByName.has(NEW_NAMES.stemBn) ? NEW_NAMES : null;
  if (!names) throw err(`not a Keras ResNet: no layer '${OLD_NAMES.stemBn}' or '${NEW_NAMES.stemBn}'`);
  const used = new Set<string>();

  const weight = (layer: string, w: string): Float32Array & { shape?: number[] } => {
    const t = model.weights.get(`${layer}/${w}`);
    if (!t) throw err(`weight ${layer}/${w} is missing`);
    return Object.assign(t.data, { shape: t.shape });
  };

  const convBn = (convName: string, bnName: string): ConvBn => {
    const layer = model.layerByName.get(convName);
    if (layer?.className !== 'Conv2D') throw err(`layer ${convName} is missing or not a Conv2D`);
    const bnLayer = model.layerByName.get(bnName);
    if (bnLayer?.className !== 'BatchNormalization') throw err(`layer ${bnName} is missing or not a BatchNormalization`);
    if (bnLayer.inbound[0] !== convName) throw err(`${bnName} does not follow ${convName}`);
    used.add(convName);
    const cfg = layer.config;
    const [dh, dw] = numPair(cfg.dilation_rate ?? 1, convName);
    if (dh !== 1 || dw !== 1) throw err(`${convName}: dilated convs are not supported`);
    if ((cfg.groups ?? 1) !== 1) throw err(`${convName}: grouped convs are not supported`);
    if (cfg.data_format !== undefined && cfg.data_format !== 'channels_last')
      throw err(`${convName}: data_format ${String(cfg.data_format)}`);
    if (cfg.activation !== undefined && cfg.activation !== 'linear')
      throw err(`${convName}: fused activation ${String(cfg.activation)} is not supported`);
    const [sh, sw] = numPair(cfg.strides ?? 1, convName);
    if (sh !== sw) throw err(`${convName}: unequal strides ${sh}x${sw}`);
    // HWIO [kh, kw, in, out] -> OIHW [out, in, kh, kw]
    const k = model.weights.get(`${convName}/kernel`);
    if (k?.shape.length !== 4) throw err(`weight ${convName}/kernel is missing or not 4-D`);
    const [kh, kw, ci, co] = k.shape;
    const oihw = new Float32Array(k.data.length);
    for (let y = 0; y < kh; y++)
      for (let x = 0; x < kw; x++)
        for (let i = 0; i < ci; i++)
          for (let o = 0; o < co; o++) oihw[((o * ci + i) * kh + y) * kw + x] = k.data[((y * kw + x) * ci + i) * co + o];
    const bias = cfg.use_bias === false ? undefined : weight(convName, 'bias');
    let padding: ConvBn['padding'];
    if (cfg.padding === 'valid') padding = [0, 0, 0, 0];
    else if (cfg.padding === 'same') {
      // TF 'same': total = max((ceil(n/s) - 1) * s + k - n, 0), floor(total/2) before, the rest after;
      // with stride 1 that is (k-1)/2 on both sides for odd k
      padding = sh === 1 && kh % 2 === 1 && kw % 2 === 1 ? [(kh - 1) / 2, (kw - 1) / 2, (kh - 1) / 2, (kw - 1) / 2] : 'same_upper';
    } else throw err(`${convName}: padding ${String(cfg.padding)}`);
    // a ZeroPadding2D right before a 'valid' conv (the stem) becomes conv padding
    const src = model.layerByName.get(layer.inbound[0]);
    if (src?.className === 'ZeroPadding2D') {
      if (padding === 'same_upper') throw err(`${convName}: ZeroPadding2D before a 'same' conv`);
      const zp = zeroPadding(src);
      padding = [padding[0] + zp[0], padding[1] + zp[1], padding[2] + zp[2], padding[3] + zp[3]];
    }
    const bc = bnLayer.config;
    const axis = Array.isArray(bc.axis) ? bc.axis[0] : bc.axis;
    if (axis !== undefined && axis !== 3 && axis !== -1)
      throw err(`${bnName}: batch norm over axis ${String(axis)}, expected the channel axis`);
    const ones = new Float32Array(co).fill(1);
    const bn: BatchNorm = {
      gamma: bc.scale === false ? ones : weight(bnName, 'gamma'),
      beta: bc.center === false ? new Float32Array(co) : weight(bnName, 'beta'),
      mean: weight(bnName, 'moving_mean'),
      variance: weight(bnName, 'moving_variance'),
      eps: typeof bc.epsilon === 'number' ? bc.epsilon : 1e-3,
    };
    for (const [n, v] of Object.entries(bn))
      if (v instanceof Float32Array && v.length !== co) throw err(`${bnName}/${n} has ${v.length} values for ${co} channels`);
    return { name: convName, weight: oihw, shape: [co, ci, kh, kw], bias, bn, stride: sh, padding };
  };

  const stem = convBn(names.stemConv, names.stemBn);
  const pools = model.layers.filter((l) => l.className === 'MaxPooling2D');
  if (pools.length !== 1) throw err(`expected one MaxPooling2D after the stem, found ${pools.length}`);
  const pl = pools[0];
  const [pk, pk2] = numPair(pl.config.pool_size ?? 2, pl.name);
  const [ps] = numPair(pl.config.strides ?? pk, pl.name);
  if (pk !== pk2) throw err(`${pl.name}: non-square pool`);
  let pads: Pad2d = [0, 0, 0, 0];
  if (pl.config.padding !== 'valid') throw err(`${pl.name}: pool padding ${String(pl.config.padding)} is not supported`);
  const pSrc = model.layerByName.get(pl.inbound[0]);
  if (pSrc?.className === 'ZeroPadding2D') pads = zeroPadding(pSrc);

  const layers: BottleneckBlock[][] = [];
  for (let li = 0; li < 4; li++) {
    const blocks: BottleneckBlock[] = [];
    for (let bi = 0; model.layerByName.has(names.block(li + 1, bi, 1)[0]); bi++) {
      const c = (j: number) => convBn(...names.block(li + 1, bi, j));
      const hasShortcut = model.layerByName.has(names.block(li + 1, bi, 0)[0]);
      blocks.push({ conv1: c(1), conv2: c(2), conv3: c(3), downsample: hasShortcut ? c(0) : undefined });
    }
    if (!blocks.length) throw err(`no blocks for layer${li + 1} (looked for ${names.block(li + 1, 0, 1)[0]})`);
    layers.push(blocks);
  }
  const convs = model.layers.filter((l) => l.className === 'Conv2D').map((l) => l.name);
  const unused = convs.filter((n) => !used.has(n));
  if (unused.length)
    throw err(`not a plain ResNet v1 layout: Conv2D layers ${unused.slice(0, 5).join(', ')} are not part of the bottleneck structure`);

  const dense = model.layers.filter((l) => l.className === 'Dense');
  let fc: ResNetNet['fc'];
  if (dense.length === 1) {
    const d = dense[0];
    const k = model.weights.get(`${d.name}/kernel`);
    if (k?.shape.length !== 2) throw err(`weight ${d.name}/kernel is missing or not 2-D`);
    const [C, K] = k.shape;
    // Dense kernel [C, K] -> Gemm weight [K, C]
    const w = new Float32Array(C * K);
    for (let c = 0; c < C; c++) for (let j = 0; j < K; j++) w[j * C + c] = k.data[c * K + j];
    const b = d.config.use_bias === false ? new Float32Array(K) : weight(d.name, 'bias');
    fc = { weight: w, bias: b, classes: K };
  }
  return { convention: 'keras', stem, pool: { kernel: pk, stride: ps, pads, padValue: 'zero' }, layers, fc };
}

// ---------------------------------------------------------------------------------------------
// torchvision / timm

/** Float tensors by name, e.g. a safetensors file. */
export interface TensorSource {
  path: string;
  names(): string[];
  float32(name: string): { data: Float32Array; shape: number[] };
}

export function safetensorsSource(f: SafetensorsFile): TensorSource {
  return { path: f.path, names: () => f.names(), float32: (n) => f.float32(n) };
}

/**
 * A torchvision/timm bottleneck ResNet (resnet50/101/152, wide_resnet50_2/101_2). With `arch`, the
 * file must match it (block counts, widths); without, the structure is read from the names and
 * shapes. Strides follow torchvision: on the 3x3 conv2 of each layer's first block (layers 2..4).
 */
export function resnetFromTorch(src: TensorSource, arch?: ResNetArch): ResNetNet {
  const file = src.path;
  const err = (m: string) => new ResNetWeightsError(file, m);
  const all = new Set(src.names());
  // tolerate one common prefix ('model.', 'backbone.', ...)
  let prefix = '';
  if (!all.has('conv1.weight')) {
    const hit = [...all].find((n) => n.endsWith('.conv1.weight') && !/layer\d/.test(n) && !/conv1\.\d/.test(n));
    if (!hit) {
      if ([...all].some((n) => /(^|\.)conv1\.0\.weight$/.test(n))) throw err('deep-stem ResNets (resnet50d and similar) are not supported');
      throw err("not a torchvision/timm ResNet: no 'conv1.weight'");
    }
    prefix = hit.slice(0, -'conv1.weight'.length);
  }
  const used = new Set<string>();
  const get = (n: string, shapeLen?: number): Float32Array & { shape: number[] } => {
    const full = prefix + n;
    if (!all.has(full)) throw err(`tensor ${full} is missing`);
    used.add(full);
    const t = src.float32(full);
    if (shapeLen !== undefined && t.shape.length !== shapeLen) throw err(`tensor ${full} has shape [${t.shape}], expected ${shapeLen}-D`);
    return Object.assign(t.data, { shape: t.shape });
  };
  const convBn = (conv: string, bn: string, stride: number, pad: number): ConvBn => {
    const w = get(`${conv}.weight`, 4);
    const [o, i, kh, kw] = w.shape;
    if (all.has(`${prefix}${conv}.bias`)) throw err(`${conv} has a bias; torchvision ResNets have none`);
    const b: BatchNorm = {
      gamma: get(`${bn}.weight`, 1),
      beta: get(`${bn}.bias`, 1),
      mean: get(`${bn}.running_mean`, 1),
      variance: get(`${bn}.running_var`, 1),
      eps: 1e-5,
    };
    if (all.has(`${prefix}${bn}.num_batches_tracked`)) used.add(`${prefix}${bn}.num_batches_tracked`);
    for (const [n, v] of Object.entries(b))
      if (v instanceof Float32Array && v.length !== o) throw err(`${bn}.${n} has ${v.length} values for ${o} channels`);
    return { name: conv, weight: w, shape: [o, i, kh, kw], bn: b, stride, padding: [pad, pad, pad, pad] };
  };

  const stem = convBn('conv1', 'bn1', 2, 3);
  if (stem.shape[2] !== 7) throw err(`conv1 is ${stem.shape[2]}x${stem.shape[3]}, expected the 7x7 stem`);
  if (all.has(`${prefix}layer1.0.conv1.weight`) && !all.has(`${prefix}layer1.0.conv3.weight`)) {
    throw err('basic-block ResNets (resnet18/34) are not supported, only bottleneck ResNets (resnet50 and up, wide_resnet50_2)');
  }
  const layers: BottleneckBlock[][] = [];
  for (let li = 1; li <= 4; li++) {
    const blocks: BottleneckBlock[] = [];
    for (let bi = 0; all.has(`${prefix}layer${li}.${bi}.conv1.weight`); bi++) {
      const p = `layer${li}.${bi}`;
      const stride = bi === 0 && li > 1 ? 2 : 1;
      const hasDown = all.has(`${prefix}${p}.downsample.0.weight`);
      blocks.push({
        conv1: convBn(`${p}.conv1`, `${p}.bn1`, 1, 0),
        conv2: convBn(`${p}.conv2`, `${p}.bn2`, stride, 1),
        conv3: convBn(`${p}.conv3`, `${p}.bn3`, 1, 0),
        downsample: hasDown ? convBn(`${p}.downsample.0`, `${p}.downsample.1`, stride, 0) : undefined,
      });
    }
    if (!blocks.length) throw err(`no blocks for layer${li}`);
    layers.push(blocks);
  }
  let fc: ResNetNet['fc'];
  if (all.has(`${prefix}fc.weight`)) {
    const w = get('fc.weight', 2);
    fc = { weight: w, bias: all.has(`${prefix}fc.bias`) ? get('fc.bias', 1) : new Float32Array(w.shape[0]), classes: w.shape[0] };
  }
  const net: ResNetNet = {
    convention: 'torchvision',
    stem,
    pool: { kernel: 3, stride: 2, pads: [1, 1, 1, 1], padValue: '-inf' },
    layers,
    fc,
  };
  const unused = [...all].filter((n) => n.startsWith(prefix) && !used.has(n));
  if (unused.length)
    throw err(`unexpected tensors for a torchvision ResNet: ${unused.slice(0, 5).join(', ')}${unused.length > 5 ? ', ...' : ''}`);
  if (arch) {
    const got = describeResNet(net, arch.name);
    const same =
      got.blocks.join() === arch.blocks.join() &&
      got.widthFactor === arch.widthFactor &&
      got.stemWidth === arch.stemWidth &&
      got.planes.join() === arch.planes.join();
    if (!same) {
      throw err(
        `holds blocks [${got.blocks}], planes [${got.planes}], width factor ${got.widthFactor}; ${arch.name} needs blocks [${arch.blocks}], planes [${arch.planes}], width factor ${arch.widthFactor}`,
      );
    }
  }
  return net;
}
