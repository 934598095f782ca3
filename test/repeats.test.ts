/**
 * The repeated-anomaly filter (src/core/repeats.ts, issue 17): the burnout test finds a patch whose
 * defect repeats in a few images and links exactly those images; pools leave linked images out
 * (within the link shares, at most half); the engine's filtered variant is the plain reduction over
 * those pools, leaves variant 0 bit for bit as without the filter, and raises a repeated defect's score.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import {
  addBurnoutLinks,
  burnoutBounds,
  DEFAULT_REPEAT_FILTER,
  filteredPools,
  filteredVariant,
  linkRIndex,
  poolSummary,
} from '../src/core/repeats.js';
import { validatePlan, zeroShotVariant, type ScoringPlan } from '../src/core/plan.js';
import { reduceTable, scorePlan } from '../src/core/score.js';
import { aggregateStage, layerNormImages, lnamdTarget } from '../src/core/lnamd.js';
import { nearestDistanceTable } from '../src/core/msm.js';
import type { StageFeatures } from '../src/core/types.js';
import { mulberry32 } from '../src/demo/synthetic.js';
import { kernelFor } from '../src/scoring/tasks.js';
import { musc } from '../src/scoring/musc.js';
import { shutdownCompute } from '../src/compute/worker.js';

after(shutdownCompute);

const bytes = (a: Float64Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

/** A table [n, p, n] of smoothly growing distances; patch 0 of image 0 is close to images 1..3 only. */
function burnoutTable(n: number, p: number, seed: number): Float32Array {
  const rnd = mulberry32(seed);
  const t = new Float32Array(n * p * n);
  for (let i = 0; i < n; i++)
    for (let q = 0; q < p; q++) for (let j = 0; j < n; j++) t[(i * p + q) * n + j] = j === i ? 0 : 1 + 0.5 * rnd();
  for (const j of [1, 2, 3]) t[j] = 0.05 + 0.01 * j; // image 0, patch 0: a defect that images 1..3 share
  return t;
}

test('burnout links: a patch whose defect repeats in 3 images links its image to exactly those; normal rows link nothing', () => {
  const n = 20,
    p = 6;
  const [kLo, K] = burnoutBounds(n - 1, [0, 0.3])!;
  assert.deepEqual([kLo, K], [0, 5]);
  const links = new Float64Array(n * n);
  addBurnoutLinks(burnoutTable(n, p, 1), 0, n, p, K, DEFAULT_REPEAT_FILTER.fpr, links);
  const linked = [...links.keys()].filter((k) => links[k]! > 0).map((k) => [Math.floor(k / n), k % n]);
  assert.deepEqual(linked, [
    [0, 1],
    [0, 2],
    [0, 3],
  ]);
  // row blocks: each image is tested on its own rows, so blocks give the same links
  const t = burnoutTable(n, p, 1);
  const byBlocks = new Float64Array(n * n);
  for (let a0 = 0; a0 < n; a0 += 7) addBurnoutLinks(t.slice(a0 * p * n, Math.min(n, a0 + 7) * p * n), a0, n, p, K, 1e-5, byBlocks);
  assert.deepEqual(Array.from(byBlocks), Array.from(links));
  // too few images for the test: no count
  assert.equal(burnoutBounds(13, [0, 0.3]), null);
  assert.deepEqual(burnoutBounds(19, [0.1, 0.4]), [1, 7]);
  assert.equal(linkRIndex([1, 3, 5]), 0);
  assert.equal(linkRIndex([3, 5]), 0);
  assert.equal(linkRIndex([5, 1, 3]), 1);
});

test('filtered pools: links within the shares leave images out, at most half of the others, most linked first', () => {
  const n = 7,
    p = 10; // a pair's 2P = 20 patches: minShare 0.1 -> 2 links, maxShare 0.5 -> 10
  const links = new Float64Array(n * n);
  const set = (a: number, b: number, w: number) => (links[a * n + b] = w);
  set(0, 1, 1); // 1 link: under the minimum
  set(0, 2, 3); // 3: linked
  set(3, 0, 2); // 2 the other way: linked (links are symmetric)
  set(0, 4, 15); // 15 of 20: whole-image likeness, kept
  set(5, 6, 4);
  set(6, 5, 4); // 8: linked
  const o = { fpr: 1e-5, minShare: 0.1, maxShare: 0.5 };
  const pools = filteredPools(links, n, p, o);
  assert.deepEqual(pools[0], [1, 4, 5, 6]);
  assert.deepEqual(pools[2], [1, 3, 4, 5, 6]);
  assert.deepEqual(pools[5], [0, 1, 2, 3, 4]);
  assert.deepEqual(pools[1], [0, 2, 3, 4, 5, 6]);
  assert.deepEqual(poolSummary(pools), { images: 5, excludedPairs: 6, leftOut: [[2, 3], [], [0], [0], [], [6], [5]] });
  // at most half of the others: image 0 linked to all six keeps three, the three least linked
  const many = new Float64Array(n * n);
  for (let b = 1; b < n; b++) many[b] = 2 + b;
  assert.deepEqual(filteredPools(many, n, p, o)[0], [1, 2, 3]);
  const v = filteredVariant(pools, [1, 5]);
  assert.deepEqual(v.reduce, { kind: 'interval', interval: [1, 5] });
  assert.deepEqual(v.poolOf, [0, 1, 2, 3, 4, 5, 6]);
});

/** n random images, stage 0 [4 x 4 x 16] and stage 1 [2 x 2 x 32]; images 0..3 share a defect vector at stage 0's top-left 2 x 2. */
function repeatedDefectStages(n: number, seed: number): StageFeatures[] {
  const rnd = mulberry32(seed);
  const stages = [4, 2].map((s, k) => ({
    n,
    h: s,
    w: s,
    c: 16 * (k + 1),
    data: Float32Array.from({ length: n * s * s * 16 * (k + 1) }, () => rnd() * 2 - 1),
  }));
  const defect = Float32Array.from({ length: 16 }, () => 8 * (rnd() * 2 - 1));
  const s0 = stages[0]!;
  for (let i = 0; i < 4; i++)
    for (const [y, x] of [
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
    ] as const)
      for (let c = 0; c < 16; c++) s0.data[((i * 4 + y) * 4 + x) * 16 + c] = defect[c]! + 0.01 * rnd();
  return stages;
}

test('engine: the filtered variant = the plain reduction over the filtered pools; variant 0 unchanged; a repeated defect scores higher', async () => {
  const n = 20;
  const stages = repeatedDefectStages(n, 7);
  const kernel = await kernelFor('cpu', 'fast');
  const plain: ScoringPlan = { n, rList: [1, 3], variants: [zeroShotVariant(n, [0, 0.3])] };
  const filtered: ScoringPlan = { ...plain, repeatFilter: DEFAULT_REPEAT_FILTER };
  const a = await scorePlan(stages, plain, kernel);
  const b = await scorePlan(stages, filtered, kernel, { keepPasses: true });
  assert.equal(a.filtered, undefined);
  assert.ok(bytes(b.variants[0]!.patch).equals(bytes(a.variants[0]!.patch)), 'variant 0 changed with the filter');
  const f = b.filtered!;
  assert.ok(f.summary.excludedPairs > 0, 'the repeated defect was not found');
  // the same pools by hand: links from stage 0 at the smallest r (1)
  const ri = linkRIndex(plain.rList);
  assert.equal(plain.rList[ri], 1);
  const target = lnamdTarget(stages);
  const P = target.gridH * target.gridW;
  const z0 = (r: number) => aggregateStage(stages[0]!, layerNormImages(stages[0]!), r, target);
  const link = await nearestDistanceTable(z0(plain.rList[ri]!), n, P, target.channels, kernel);
  const links = new Float64Array(n * n);
  addBurnoutLinks(link, 0, n, P, 5, DEFAULT_REPEAT_FILTER.fpr, links);
  const pools = filteredPools(links, n, P, DEFAULT_REPEAT_FILTER);
  assert.deepEqual(poolSummary(pools), f.summary);
  for (const i of [0, 1, 2, 3]) assert.ok(pools[i]!.length < n - 1, `defect image ${i} kept every image`);
  // its pass at (stage 0, r = 1) = reduceTable over the filtered pools
  const pass = reduceTable(link, n, P, [filteredVariant(pools, [0, 5])])[0]!;
  const R = 2,
    L = 2;
  const kept = f.passes!.subarray((ri * L + 0) * n * P, (ri * L + 1) * n * P);
  assert.ok(bytes(new Float64Array(kept)).equals(bytes(pass)));
  assert.equal(f.passes!.length, R * L * n * P);
  // never lower (a subset's K nearest are never nearer), higher at the repeated defect
  for (let k = 0; k < n * P; k++) assert.ok(f.patch[k]! >= a.variants[0]!.patch[k]! - 1e-12, `patch ${k} lower with the filter`);
  for (const i of [0, 1, 2, 3]) assert.ok(f.patch[i * P]! > a.variants[0]!.patch[i * P]! * 1.05, `image ${i}: defect not raised`);
});

test('engine: too few images for the burnout test: no filtered variant; the filter needs zero-shot variant 0', async () => {
  const stages = repeatedDefectStages(12, 3);
  const kernel = await kernelFor('cpu', 'fast');
  const res = await scorePlan(
    stages,
    { n: 12, rList: [1], variants: [zeroShotVariant(12, [0, 0.3])], repeatFilter: DEFAULT_REPEAT_FILTER },
    kernel,
  );
  assert.equal(res.filtered, undefined);
  const fewShot: ScoringPlan = {
    n: 12,
    rList: [1],
    variants: [{ scored: [0, 1], pools: [[2, 3, 4]], poolOf: [0, 0], reduce: { kind: 'interval', interval: [0, 0.3] } }],
    repeatFilter: DEFAULT_REPEAT_FILTER,
  };
  assert.throws(() => validatePlan(fewShot), /needs zero-shot scoring of the whole batch/);
  assert.throws(
    () =>
      validatePlan({ n: 12, rList: [1], variants: [zeroShotVariant(12, [0, 0.3])], repeatFilter: { ...DEFAULT_REPEAT_FILTER, fpr: 0 } }),
    /fpr must be in \(0, 1\)/,
  );
});

test('library: musc() with repeatFilter takes image scores from the filtered scores; maps as without it', async () => {
  const n = 20;
  const stages = repeatedDefectStages(n, 7);
  const imageTokens = { n, d: 4, data: Float32Array.from({ length: n * 4 }, (_, k) => Math.sin(k)) };
  const o = { imageSize: 16, rList: [1, 3], kList: [0] };
  const plain = await musc({ stages, imageTokens }, o);
  const filtered = await musc({ stages, imageTokens }, { ...o, repeatFilter: true });
  assert.deepEqual(Array.from(filtered.maps), Array.from(plain.maps));
  assert.ok(filtered.patchScores.filtered && filtered.patchScores.filtered.summary.excludedPairs > 0);
  for (let i = 0; i < n; i++) assert.ok(filtered.imageScores[i]! >= plain.imageScores[i]! - 1e-12, `image ${i} lower`);
  for (const i of [0, 1, 2, 3]) assert.ok(filtered.imageScores[i]! > plain.imageScores[i]!, `image ${i}: the repeated defect not raised`);
  assert.equal(plain.patchScores.filtered, undefined);
});
