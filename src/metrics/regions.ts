/**
 * Connected-component labelling of binary defect masks.
 *
 * A pixel is foreground when its mask value is nonzero. Components are numbered 1..count in
 * raster order of their first pixel (row-major scan), which is the numbering of
 * `skimage.measure.label` (and so the order of `regionprops`). Background is 0.
 *
 * Note: skimage labels connected pixels of *equal value*; for 0/1 masks (what MuSc uses) that is
 * the same as "nonzero = foreground". Masks holding several distinct nonzero values are treated
 * here as one foreground class.
 */

/** 8: pixels touching by an edge or a corner are connected (skimage default for 2-D); 4: edges only. */
export type Connectivity = 4 | 8;

export interface Regions {
  /** [H*W] (or [N*H*W] for `labelImages`), 0 = background, 1..count = region id */
  labels: Int32Array;
  /** number of regions */
  count: number;
  /** [count+1] pixel count of each region; areas[0] = 0 (background is not counted) */
  areas: Float64Array;
}

type MaskArray = ArrayLike<number>;

/**
 * Labels the nonzero pixels of one image mask [H,W] stored at `mask[offset .. offset+H*W)`.
 * Writes ids `firstId, firstId+1, ...` into `out[outOffset + y*W + x]` (which must be zeroed)
 * and returns the number of regions found plus their areas via `areaSink`.
 */
function labelInto(
  mask: MaskArray,
  offset: number,
  h: number,
  w: number,
  connectivity: Connectivity,
  out: Int32Array,
  outOffset: number,
  firstId: number,
  stack: Int32Array,
  areaSink: number[],
): number {
  let id = firstId;
  for (let start = 0; start < h * w; start++) {
    if (mask[offset + start] === 0 || out[outOffset + start] !== 0) continue;
    // flood fill from `start` with an explicit stack of pixel indices (each pushed once)
    let sp = 0;
    stack[sp++] = start;
    out[outOffset + start] = id;
    let area = 0;
    while (sp > 0) {
      const p = stack[--sp];
      area++;
      const y = (p / w) | 0;
      const x = p - y * w;
      for (let dy = -1; dy <= 1; dy++) {
        const yy = y + dy;
        if (yy < 0 || yy >= h) continue;
        for (let dx = -1; dx <= 1; dx++) {
          if (dx === 0 && dy === 0) continue;
          if (connectivity === 4 && dx !== 0 && dy !== 0) continue;
          const xx = x + dx;
          if (xx < 0 || xx >= w) continue;
          const q = yy * w + xx;
          if (mask[offset + q] !== 0 && out[outOffset + q] === 0) {
            out[outOffset + q] = id;
            stack[sp++] = q;
          }
        }
      }
    }
    areaSink.push(area);
    id++;
  }
  return id - firstId;
}

/** Labels one mask [H,W]. */
export function labelRegions(mask: MaskArray, h: number, w: number, connectivity: Connectivity = 8): Regions {
  return labelImages(mask, 1, h, w, connectivity);
}

/**
 * Labels each of N masks [N,H,W] separately (regions never cross image borders) and numbers the
 * regions globally: image 0's regions first, then image 1's, and so on (the order in which MuSc's
 * `cal_pro_score` visits `regionprops`).
 */
export function labelImages(masks: MaskArray, n: number, h: number, w: number, connectivity: Connectivity = 8): Regions {
  const hw = h * w;
  if (masks.length !== n * hw) throw new RangeError(`masks hold ${masks.length} values, expected ${n}x${h}x${w}`);
  const labels = new Int32Array(n * hw);
  const stack = new Int32Array(hw);
  const areas: number[] = [0];
  let next = 1;
  for (let i = 0; i < n; i++) {
    next += labelInto(masks, i * hw, h, w, connectivity, labels, i * hw, next, stack, areas);
  }
  return { labels, count: next - 1, areas: Float64Array.from(areas) };
}
