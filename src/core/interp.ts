/**
 * Linear interpolation along one axis, as torch's F.interpolate(mode='bilinear'):
 *   align_corners = false: src = max((dst + 0.5) * in / out - 0.5, 0)
 *   align_corners = true:  src = dst * (in - 1) / (out - 1)
 * Output pixel d blends source i0[d] and i1[d] with weight l[d] on i1.
 */
export interface LinearAxis {
  i0: Int32Array;
  i1: Int32Array;
  l: Float64Array;
}

export function linearAxis(outSize: number, inSize: number, alignCorners: boolean): LinearAxis {
  const i0 = new Int32Array(outSize),
    i1 = new Int32Array(outSize),
    l = new Float64Array(outSize);
  const scale = alignCorners ? (outSize > 1 ? (inSize - 1) / (outSize - 1) : 0) : inSize / outSize;
  for (let d = 0; d < outSize; d++) {
    const s = alignCorners ? d * scale : Math.max((d + 0.5) * scale - 0.5, 0);
    const a = Math.min(Math.floor(s), inSize - 1);
    i0[d] = a;
    i1[d] = Math.min(a + 1, inSize - 1);
    l[d] = s - a;
  }
  return { i0, i1, l };
}
