/**
 * float16 feature storage (issue 5): the half-precision conversion is bit-identical to ONNX
 * Runtime's Cast, scoring float16-stored features equals scoring their float32 widening exactly
 * (computation is float32), and the feature cache keeps each run's storage.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toFloat16, fromFloat16, float32ToHalfBits } from '../src/io/float16.js';
import { GraphBuilder } from '../src/onnx/graph.js';
import { createSession, ort } from '../src/compute/session.js';
import { scorePatches } from '../src/scoring/musc.js';
import { shutdownCompute } from '../src/compute/worker.js';
import { FeatureCache } from '../src/features/cache.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { estimateSubsetBytes } from '../src/scoring/memory.js';
import type { StageFeatures } from '../src/core/types.js';
import { lcg } from './helpers/lcg.js';

after(shutdownCompute);

async function ortCast(from: 'float32' | 'float16', data: Float32Array | Uint16Array): Promise<Float32Array | Uint16Array> {
  const to = from === 'float32' ? 'float16' : 'float32';
  const g = new GraphBuilder('cast');
  g.output(g.op('Cast', [g.input('x', from, ['N'])], { to: to === 'float16' ? 10 : 1 }), to, ['N'], 'y');
  const s = await createSession(g.toBytes());
  const out = await s.run({ x: new ort.Tensor(from, data, [data.length]) });
  await s.release();
  return out.y.data as Float32Array | Uint16Array;
}

/** Values over the whole half range: random magnitudes, exact ties, subnormals, overflow, specials. */
function probeValues(): Float32Array {
  const v: number[] = [
    0,
    -0,
    1,
    -1,
    65504,
    -65504,
    65519,
    65520,
    1e6,
    -1e6,
    Infinity,
    -Infinity,
    NaN,
    2 ** -24,
    2 ** -25,
    3 * 2 ** -26,
    2 ** -26,
    2 ** -14,
    2 ** -14 - 2 ** -25,
    1e-8,
    -1e-8,
  ];
  // exact ties between neighbouring halves (odd and even lower neighbour), normal and subnormal
  for (const base of [1, 1 + 2 ** -10, 1024, 0.5 + 2 ** -11, 2 ** -20, 3 * 2 ** -24]) {
    const ulp = base >= 2 ** -14 ? 2 ** (Math.floor(Math.log2(base)) - 10) : 2 ** -24;
    v.push(base + ulp / 2, -(base + ulp / 2), base + ulp / 2 + ulp);
  }
  let s = 12345;
  for (let i = 0; i < 20000; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    const m = s / 2 ** 32;
    s = (s * 1103515245 + 12345) >>> 0;
    const e = Math.floor((s / 2 ** 32) * 50) - 30; // 2^-30 .. 2^19
    v.push((m < 0.5 ? -1 : 1) * (1 + m) * 2 ** e);
  }
  return Float32Array.from(v);
}

test('float32 -> float16 is bit-identical to ONNX Runtime Cast (ties to even, subnormals, overflow, NaN)', async () => {
  const x = probeValues();
  const ours = toFloat16(x);
  const ref = (await ortCast('float32', x)) as Uint16Array;
  assert.equal(ref.length, x.length);
  for (let i = 0; i < x.length; i++) {
    const nan = (h: number) => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (Number.isNaN(x[i])) assert.ok(nan(ours[i]!) && nan(ref[i]!), `NaN at ${i}`);
    else assert.equal(ours[i], ref[i], `value ${x[i]}: ${ours[i]!.toString(16)} vs ONNX Runtime ${ref[i]!.toString(16)}`);
  }
  // spot checks that do not depend on ONNX Runtime
  assert.equal(float32ToHalfBits(1), 0x3c00);
  assert.equal(float32ToHalfBits(1 + 2 ** -11), 0x3c00); // tie, even stays
  assert.equal(float32ToHalfBits(1 + 3 * 2 ** -11), 0x3c02); // tie, odd rounds up
  assert.equal(float32ToHalfBits(65520), 0x7c00); // rounds past the largest half
  assert.equal(float32ToHalfBits(2 ** -25), 0x0000); // tie with zero: even
  assert.equal(float32ToHalfBits(-(2 ** -24)), 0x8001);
});

test('float16 -> float32 widens every one of the 65536 patterns as ONNX Runtime does', async () => {
  const all = Uint16Array.from({ length: 65536 }, (_, k) => k);
  const ours = fromFloat16(all);
  const ref = (await ortCast('float16', all)) as Float32Array;
  for (let k = 0; k < 65536; k++) {
    if (Number.isNaN(ref[k])) assert.ok(Number.isNaN(ours[k]), `pattern ${k.toString(16)}`);
    else assert.ok(Object.is(ours[k], ref[k]), `pattern ${k.toString(16)}: ${ours[k]} vs ${ref[k]}`);
  }
  // a round trip through half is the identity on half values
  assert.deepEqual(
    toFloat16(ours.filter((f) => !Number.isNaN(f))),
    all.filter((h) => (h & 0x7c00) !== 0x7c00 || (h & 0x3ff) === 0),
  );
});

test('scoring float16-stored stages equals scoring their float32 widening exactly, and is close to float32 storage', async () => {
  const n = 9,
    h = 5,
    w = 5,
    c = 24;
  const u = lcg(99);
  const rnd = () => u() * 4 - 2;
  const wide: StageFeatures<Float32Array>[] = [0, 1].map(() => ({ n, h, w, c, data: Float32Array.from({ length: n * h * w * c }, rnd) }));
  const half: StageFeatures[] = wide.map((st) => ({ ...st, data: toFloat16(st.data) }));
  const widened: StageFeatures[] = half.map((st) => ({ ...st, data: fromFloat16(st.data as Uint16Array) }));
  const opts = { rList: [1, 3], precision: 'exact' as const };
  const a = await scorePatches(half, opts);
  const b = await scorePatches(widened, opts);
  const f = await scorePatches(wide, opts);
  assert.deepEqual(a.data, b.data);
  let rel = 0;
  for (let k = 0; k < f.data.length; k++) rel = Math.max(rel, Math.abs(a.data[k]! - f.data[k]!) / f.data[k]!);
  // half precision keeps 11 significant bits: relative error of each value <= 2^-11
  assert.ok(rel < 2e-3 && rel > 0, `largest relative difference ${rel}`);
});

test('feature cache: float16 files for float16 runs; a float32 run misses on them; float32 files serve float16 runs', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'musc-f16-'));
  try {
    const dims = [{ h: 2, w: 3, c: 4 }];
    const stage = Float32Array.from({ length: 24 }, (_, k) => Math.sin(k) * 3);
    const feat = (data: Float32Array | Uint16Array) => ({ stages: [data], token: Float32Array.of(1, 2), dims, width: 10, height: 12 });
    const c16 = new FeatureCache(dir, 'id', 'float16');
    const c32 = new FeatureCache(dir, 'id', 'float32');
    const k1 = c16.key(Buffer.from('image one'));
    await c16.put(k1, feat(toFloat16(stage)));
    const f = SafetensorsFile.open(c16.pathOf(k1));
    assert.equal(f.info('stage0').dtype, 'F16');
    assert.equal(f.info('token').dtype, 'F32');
    f.close();
    const got = c16.get(k1, { dims, tokenDim: 2 });
    assert.deepEqual(got?.stages[0], toFloat16(stage));
    assert.equal(c32.get(k1, { dims, tokenDim: 2 }), null);
    assert.equal(c32.misses, 1);
    assert.equal(c32.corrupt, 0);
    // a float32 file: exact for float32 runs, rounded like fresh features for float16 runs
    const k2 = c32.key(Buffer.from('image two'));
    await c32.put(k2, feat(stage.slice()));
    assert.deepEqual(c32.get(k2, { dims, tokenDim: 2 })?.stages[0], stage);
    assert.deepEqual(c16.get(k2, { dims, tokenDim: 2 })?.stages[0], toFloat16(stage));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('memory estimate: float16 storage halves the stored features, nothing else', () => {
  const dims = [
    { h: 28, w: 28, c: 512 },
    { h: 14, w: 14, c: 1024 },
  ];
  const n = 83,
    size = 224;
  const features = n * (28 * 28 * 512 + 14 * 14 * 1024);
  assert.equal(estimateSubsetBytes(n, dims, size, 'float32') - estimateSubsetBytes(n, dims, size, 'float16'), 2 * features);
});
