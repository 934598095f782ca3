/** PLACEHOLDER: the ResNet backbone (tfjs ResNet50 from npm, torchvision/timm safetensors) is being written. */
import type { BackboneLoader } from './types.js';

export const loadResNet: BackboneLoader = async () => {
  throw new Error('resnet backbone not implemented yet');
};
