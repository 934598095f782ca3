/**
 * Shapes shared by the MuSc core. All feature tensors are row-major typed arrays.
 */

/**
 * One stage's patch features for a batch: data is [N, H, W, C] (channels last, class token
 * already removed). ViT stages have H = W = image_size / patch; CNN stages may differ per stage.
 */
export interface StageFeatures {
  n: number;
  h: number;
  w: number;
  c: number;
  data: Float32Array;
}

/** Image-level tokens for RsCIN: data is [N, D]. */
export interface ImageTokens {
  n: number;
  d: number;
  data: Float32Array;
}

/** What a backbone gives for a batch of images. */
export interface BackboneFeatures {
  stages: StageFeatures[];
  imageTokens: ImageTokens;
}

/** The MSM interval [lo, hi) as fractions of the N-1 other images (>= 1 means an absolute count). */
export type Interval = [number, number];
