/**
 * Shapes shared by the MuSc core. All feature tensors are row-major typed arrays.
 */

/**
 * Stored feature values: float32, or float16 kept as half-precision bit patterns in a Uint16Array
 * (half the memory; io/float16.ts). Computation is always float32: a float16 stage is widened
 * one stage at a time when it is scored.
 */
export type FeatureData = Float32Array | Uint16Array;

/** How stage features are kept between the backbone and scoring (and in the feature cache). */
export type FeatureStorage = 'float32' | 'float16';

/**
 * One stage's patch features for a batch: data is [N, H, W, C] (channels last, class token
 * already removed). ViT stages have H = W = image_size / patch; CNN stages may differ per stage.
 */
export interface StageFeatures<D extends FeatureData = FeatureData> {
  n: number;
  h: number;
  w: number;
  c: number;
  data: D;
}

/** Image-level tokens for RsCIN: data is [N, D]. */
export interface ImageTokens {
  n: number;
  d: number;
  data: Float32Array;
}

/** What a backbone gives for a batch of images. */
export interface BackboneFeatures {
  stages: StageFeatures<Float32Array>[];
  imageTokens: ImageTokens;
}

/** The MSM interval [lo, hi) as fractions of the N-1 other images (>= 1 means an absolute count). */
export type Interval = [number, number];
