/**
 * Banks: leave-one-out predict equals zero-shot MuSc on the bank (1e-6), the bank file format
 * (atomic, verified: corrupt / edited / mismatched banks are refused with the reason), skipped
 * inputs, regions at the original size, calibration and pictures.
 */

import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import {
  falseAlarmThreshold,
  normalizeScore,
  normalQuantile,
  readThresholdArg,
  runVerdicts,
  thresholdsOf,
  writeThresholdFile,
} from '../src/bank/calibration.js';
import {
  buildBank,
  closeBank,
  DEFAULT_PROJECT_FOLDS,
  type ImageInput,
  imagesOfFolder,
  openBank,
  predict,
  renderCompositePng,
  renderMaskPng,
} from '../src/bank/index.js';
import { regionsOf } from '../src/bank/regions.js';
import { runPixelScale, writeRunWhere } from '../src/bank/run-where.js';
import { leaveOneOut, scoreAgainstBank, scoreAgainstBankCached } from '../src/bank/scoring.js';
import { encodeSafetensors, SafetensorsFile, type TensorToWrite } from '../src/io/safetensors.js';
import { createHash } from 'node:crypto';
import { manifestChecksum } from '../src/bank/store.js';
import type { BankManifest } from '../src/bank/types.js';
import { describeBank } from '../src/cli/bank.js';
import { ConfigError } from '../src/errors.js';
import { shutdownCompute } from '../src/compute/worker.js';
import type { StageFeatures } from '../src/core/types.js';
import { toFloat16 } from '../src/io/float16.js';
import { scorePatches } from '../src/scoring/musc.js';
import { bankBuilder, projectKey, scorePlan as enginePlan } from '../src/core/score.js';
import { layerNormImages, lnamdTarget } from '../src/core/lnamd.js';
import { DEFAULT_REPEAT_FILTER } from '../src/core/repeats.js';
import { zeroShotVariant } from '../src/core/plan.js';
import { kernelFor } from '../src/scoring/tasks.js';
import { tempDir } from './helpers/cli-env.js';
import { unitTokenBackbone } from './helpers/cli-fakes.js';
import { maxAbsDiff as maxDiff } from './helpers/core-golden.js';
import { pickImages as take } from './helpers/msm.js';
import { lcgSigned } from './helpers/lcg.js';

after(shutdownCompute);

/** float16 stage of n images (as banks and musc run keep features) */
/** Each edit of a bank's manifest text m0 (its checksum made valid again, written to `man`) is refused with its message. */
async function refusesEdits(man: string, m0: string, bankPath: string, edits: [(m: BankManifest) => void, RegExp][]): Promise<void> {
  for (const [edit, want] of edits) {
    const m = JSON.parse(m0) as BankManifest;
    edit(m);
    m.checksum = manifestChecksum(m);
    await writeFile(man, JSON.stringify(m));
    await assert.rejects(openBank(bankPath), want);
  }
}

function stage(n: number, h: number, c: number, seed: number): StageFeatures<Uint16Array> {
  return { n, h, w: h, c, data: toFloat16(new Float32Array(n * h * h * c).map(lcgSigned(seed))) };
}

test('predicting bank image i against the bank without i gives the zero-shot MuSc patch scores of image i (1e-6)', async () => {
  const n = 7;
  const stages = [stage(n, 4, 8, 3), stage(n, 2, 12, 4)];
  const opts = { rList: [1, 3], interval: [0, 0.3] as [number, number] };
  const zero = await scorePatches(stages, opts);
  const P = zero.h * zero.w;
  for (let i = 0; i < n; i++) {
    const others = [...Array(n).keys()].filter((j) => j !== i);
    const res = await scoreAgainstBank(
      stages.map((s) => take(s, [i])),
      stages.map((s) => take(s, others)),
      opts,
    );
    assert.equal(res.h * res.w, P);
    const d = maxDiff(res.patch, zero.data.subarray(i * P, (i + 1) * P));
    assert.ok(d <= 1e-6, `image ${i}: max difference ${d}`);
    // predict's path: the bank's LNAMD kept in the worker (twice: computed, then from the cache)
    for (let k = 0; k < 2; k++) {
      const cached = await scoreAgainstBankCached(
        `loo-${i}`,
        stages.map((s) => take(s, [i])),
        stages.map((s) => take(s, others)),
        opts,
      );
      const dc = maxDiff(cached.patch, zero.data.subarray(i * P, (i + 1) * P));
      assert.ok(dc <= 1e-6, `image ${i} (bank LNAMD cached, call ${k + 1}): max difference ${dc}`);
    }
  }
  // and a new image is not scored against the other new images of the same call
  const both = await scoreAgainstBank(
    stages.map((s) => take(s, [0, 1])),
    stages.map((s) => take(s, [2, 3, 4, 5, 6])),
    opts,
  );
  const alone = await scoreAgainstBank(
    stages.map((s) => take(s, [0])),
    stages.map((s) => take(s, [2, 3, 4, 5, 6])),
    opts,
  );
  assert.ok(maxDiff(both.patch.subarray(0, P), alone.patch) <= 1e-6);
});

test("the engine's tail (predict's kept bank LNAMD): the last images' banks given = the whole batch; checked against the plan", async () => {
  const n = 5;
  const stages = [stage(n, 4, 8, 21), stage(n, 2, 12, 22)];
  const kernel = await kernelFor();
  const plan = { n, rList: [1, 3], variants: [zeroShotVariant(n, [0, 0.5])] };
  const whole = await enginePlan(stages, plan, kernel);
  const target = lnamdTarget(stages);
  const bankOf = bankBuilder(target, undefined, undefined);
  const banks: Record<string, Float32Array> = {};
  for (const [l, s] of stages.entries())
    for (const r of plan.rList) banks[projectKey(l, r)] = await bankOf.of(take(s, [3, 4]), layerNormImages(take(s, [3, 4])), l, r);
  const head = stages.map((s) => take(s, [0, 1, 2]));
  const tail = { n: 2, of: (l: number, r: number) => banks[projectKey(l, r)]! };
  const split = await enginePlan(head, plan, kernel, { tail });
  assert.deepEqual(split.variants[0]!.patch, whole.variants[0]!.patch);
  await assert.rejects(enginePlan(head, plan, kernel, { tail: { n: 1, of: tail.of } }), /the plan is for 5 images, the features hold 4/);
  await assert.rejects(enginePlan(head, plan, kernel, { tail: { n: 5, of: tail.of } }), /tail: 5 images for a plan of 5 \(give 1..4\)/);
  await assert.rejects(
    enginePlan(head, plan, kernel, { tail: { n: 2, of: () => new Float32Array(3) } }),
    /tail: the bank of stage 0 at r = 1 holds 3 values/,
  );
  await assert.rejects(
    enginePlan(head, { ...plan, repeatFilter: DEFAULT_REPEAT_FILTER }, kernel, { tail }),
    /tail: not with the repeated-anomaly filter/,
  );
  await assert.rejects(enginePlan(head, plan, kernel, { tail, projectChannels: 4 }), /tail: a projection needs the bases/);
});

test('a bank on a score grid (--score-grid): predict = leave-one-out on the same grid; the grid is recorded, shown and checked', async () => {
  // engine level: stage grids 4 and 2 scored on 3 x 3, both predict paths against zero-shot MuSc
  const n = 6;
  const stages = [stage(n, 4, 8, 13), stage(n, 2, 12, 14)];
  const interval: [number, number] = [0, 0.3];
  const zero = await scorePatches(stages, { rList: [1, 3], interval, targetGrid: 3 });
  assert.deepEqual([zero.h, zero.w], [3, 3]);
  const others = [1, 2, 3, 4, 5];
  const one = stages.map((s) => take(s, [0])),
    rest = stages.map((s) => take(s, others));
  const plain = await scoreAgainstBank(one, rest, { rList: [1, 3], interval, scoreGrid: 3 });
  const cached = await scoreAgainstBankCached('grid-bank', one, rest, { rList: [1, 3], interval, scoreGrid: 3 });
  for (const r of [plain, cached]) {
    assert.deepEqual([r.h, r.w], [3, 3]);
    assert.ok(maxDiff(r.patch, zero.data.subarray(0, 9)) <= 1e-6);
  }
  // the worker's cache of the bank's LNAMD is per grid: the same bank without the grid is on 4 x 4
  const native = await scoreAgainstBankCached('grid-bank', one, rest, { rList: [1, 3], interval });
  assert.deepEqual([native.h, native.w], [4, 4]);
  // end to end: the fake backbone's 4 x 4 grid scored on 2 x 2
  const { dir, cleanup } = await tempDir('musc-bank-');
  try {
    const imgs = await inputs(7, 40);
    const full = await buildBank(imgs, { out: join(dir, 'full.bank'), backbone: bb, scoreGrid: 2 });
    const restBank = await buildBank(imgs.slice(1), { out: join(dir, 'rest.bank'), backbone: bb, scoreGrid: 2 });
    const plainBank = await buildBank(imgs, { out: join(dir, 'plain.bank'), backbone: bb });
    assert.equal(full.manifest.scoring.score_grid, 2);
    assert.equal(plainBank.manifest.scoring.score_grid, undefined);
    const fb = await openBank(full.path),
      rb = await openBank(restBank.path),
      pb = await openBank(plainBank.path);
    assert.match(describeBank(fb).join('\n'), /r 1,3,5 on a 2 x 2 grid/);
    const p = (await predict(rb, [imgs[0]!], { loadBackbone: loader })).predictions[0]!;
    assert.ok(Math.abs(p.imageScore - fb.calibration.image_scores[0]!) <= 1e-6, `${p.imageScore} vs ${fb.calibration.image_scores[0]}`);
    assert.ok(Math.abs(fb.calibration.image_scores[0]! - pb.calibration.image_scores[0]!) > 1e-9, 'the grid changes the scores');
    for (const b of [fb, rb, pb]) await closeBank(b);
    // a manifest whose grid is not an integer 1..512 (with a valid checksum) is refused, naming the field
    const man = join(full.path, 'manifest.json');
    const m = JSON.parse(await readFile(man, 'utf8'));
    m.scoring.score_grid = 0;
    m.checksum = manifestChecksum(m);
    await writeFile(man, JSON.stringify(m));
    await assert.rejects(openBank(full.path), /scoring\.score_grid must be an integer 1\.\.512, got 0/);
  } finally {
    await cleanup();
  }
});

/** a non-square noise PNG with a bright square at (x, y) when given */
async function png(w: number, h: number, seed: number, spot?: [number, number]): Promise<Buffer> {
  const r = lcgSigned(seed);
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = 40 + 3 * x + 2 * y + 20 * c + Math.round(8 * r());
  if (spot) for (let y = spot[1]; y < spot[1] + 8; y++) for (let x = spot[0]; x < spot[0] + 8; x++) px.set([250, 20, 20], (y * w + x) * 3);
  return sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
}

/** the fake backbone with unit image tokens (as the real backbones give) */
const bb = unitTokenBackbone(32, 4);
const loader = async () => bb;

async function inputs(count: number, seed0: number): Promise<ImageInput[]> {
  return Promise.all(Array.from({ length: count }, async (_, i) => ({ name: `img${i}.png`, bytes: await png(48, 32, seed0 + i) })));
}

test("end to end: a bank without image 0 scores image 0 as the full bank's leave-one-out; verdicts, regions at original size", async () => {
  const { dir, cleanup } = await tempDir('musc-bank-');
  try {
    const imgs = await inputs(8, 10);
    const full = await buildBank(imgs, { out: join(dir, 'full.bank'), backbone: bb });
    const rest = await buildBank(imgs.slice(1), { out: join(dir, 'rest.bank'), backbone: bb });
    assert.equal(full.manifest.images.length, 8);
    // the run's accuracy defaults are recorded (issue 17): image score rule, border padding; RsCIN by the backbone's family
    assert.equal(full.manifest.scoring.image_score, 'top:0.025');
    assert.equal(full.manifest.backbone.border_pad, 0);
    assert.deepEqual(full.manifest.backbone.fuse_sizes, []);
    assert.deepEqual(full.manifest.scoring.r_list, [1, 3, 5]); // one input size: the paper's degrees
    const maxBank = await buildBank(imgs, { out: join(dir, 'max.bank'), backbone: bb, imageScore: 'max' });
    assert.equal(maxBank.manifest.scoring.image_score, 'max');
    const mb = await openBank(maxBank.path);
    const fb = await openBank(full.path),
      rb = await openBank(rest.path);
    for (let i = 0; i < 8; i++) assert.ok(mb.calibration.image_scores[i]! >= fb.calibration.image_scores[i]! - 1e-12); // max >= top mean
    // the pixel threshold stays on the map maxima whatever the image score rule (a good image's whole map under it)
    assert.deepEqual(fb.calibration.map_maxima, mb.calibration.image_scores);
    assert.equal(thresholdsOf(fb.calibration, 0.01).pixel, falseAlarmThreshold(mb.calibration.image_scores, 0.01));
    assert.equal(thresholdsOf(fb.calibration, 0.01).pixel, thresholdsOf(mb.calibration, 0.01).pixel);
    await closeBank(mb);
    const out = await predict(rb, [imgs[0]!], { loadBackbone: loader, maps: true });
    const p = out.predictions[0]!;
    assert.ok(Math.abs(p.imageScore - fb.calibration.image_scores[0]!) <= 1e-6, `${p.imageScore} vs ${fb.calibration.image_scores[0]}`);
    assert.equal(p.width, 48);
    assert.equal(p.height, 32);
    assert.equal(p.map!.data.length, 48 * 32);
    assert.ok(p.verdict === 'OK' || p.verdict === 'NG');
    assert.ok(p.normalized >= 0 && p.normalized <= 1);
    // a defect: NG, with a region around the spot (original pixels)
    const badBytes = await png(48, 32, 99, [30, 10]);
    const bad = await predict(fb, [{ name: 'bad.png', bytes: badBytes }], { loadBackbone: loader, maps: true });
    const q = bad.predictions[0]!;
    assert.equal(q.verdict, 'NG', `score ${q.score}, threshold ${q.threshold}`);
    assert.ok(q.normalized > 0.5);
    assert.ok(q.regions.length >= 1);
    const r = q.regions.find((g) => g.x <= 34 && g.x + g.width >= 34 && g.y <= 14 && g.y + g.height >= 14);
    assert.ok(r, `a region covers the spot: ${JSON.stringify(q.regions)}`);
    const meta = await sharp(await renderMaskPng(q)).metadata();
    assert.deepEqual([meta.width, meta.height], [48, 32]);
    const comp = await sharp(await renderCompositePng(badBytes, q)).metadata();
    assert.equal(comp.height, 32);
    assert.ok(comp.width! > 3 * 48);
    // RsCIN off: the score is the image score, the threshold on the bank's image scores
    const raw = (await predict(fb, [imgs[0]!], { loadBackbone: loader, kList: [0] })).predictions[0]!;
    assert.equal(raw.score, raw.imageScore);
    assert.equal(raw.threshold, falseAlarmThreshold(fb.calibration.image_scores));
    await closeBank(fb);
    await closeBank(rb);
  } finally {
    await cleanup();
  }
});

test('issue 17: a bank of a backbone that fuses input sizes scores at r = 1,5 (as runs do), an explicit --r-list wins', async () => {
  const { dir, cleanup } = await tempDir('musc-bank-r-');
  try {
    const fused = unitTokenBackbone(32, 4, [64]);
    const imgs = await inputs(5, 60);
    const built = await buildBank(imgs, { out: join(dir, 'f.bank'), backbone: fused });
    assert.deepEqual(built.manifest.backbone.fuse_sizes, [64]);
    assert.deepEqual(built.manifest.scoring.r_list, [1, 5]);
    assert.equal(built.manifest.scoring.norm_exponent, 0.5, "a fused ResNet's norm exponent, as runs");
    assert.equal(built.manifest.format_version, 4);
    const asked = await buildBank(imgs, { out: join(dir, 'g.bank'), backbone: fused, rList: [1, 3, 5] });
    assert.deepEqual(asked.manifest.scoring.r_list, [1, 3, 5]);
  } finally {
    await cleanup();
  }
});

test('issue 17: predict loads the fused sizes a bank records ([] in older banks) and refuses a backbone that fuses others', async () => {
  const { dir, cleanup } = await tempDir('musc-bank-fuse-');
  try {
    const built = await buildBank(await inputs(6, 40), { out: join(dir, 'f.bank'), backbone: bb });
    const man = join(built.path, 'manifest.json');
    const edit = async (f: (m: { backbone: Record<string, unknown> }) => void): Promise<void> => {
      const m = JSON.parse(await readFile(man, 'utf8'));
      f(m);
      m.checksum = manifestChecksum(m);
      await writeFile(man, JSON.stringify(m));
    };
    const asked: unknown[] = [];
    const recording = async (_name: string, o: { fuseSizes?: number[] }) => {
      asked.push(o.fuseSizes);
      return bb; // the fake fuses nothing
    };
    const probe = await inputs(1, 90);
    await edit((m) => delete m.backbone.fuse_sizes); // a bank of an older version
    let bank = await openBank(built.path);
    assert.equal((await predict(bank, probe, { loadBackbone: recording })).predictions.length, 1);
    await closeBank(bank);
    await edit((m) => (m.backbone.fuse_sizes = [320]));
    bank = await openBank(built.path);
    assert.match(describeBank(bank).join('\n'), /backbone \S+ at \d+ px fused with 320 px, stages/); // musc bank info
    await assert.rejects(
      predict(bank, probe, { loadBackbone: recording }),
      /built with fused sizes \[320\]; the backbone loaded now has \[\]/,
    );
    await closeBank(bank);
    assert.deepEqual(asked, [[], [320]]);
    await edit((m) => (m.backbone.fuse_sizes = 'x'));
    bank = await openBank(built.path);
    await assert.rejects(predict(bank, probe, { loadBackbone: recording }), /backbone\.fuse_sizes must be a list of integers, got "x"/);
    await closeBank(bank);
  } finally {
    await cleanup();
  }
});

test('issue 17: per-stage degrees in banks: predict (plain and cached) = leave-one-out; recorded as format 2, shown, checked', async () => {
  // engine level: two stages, stage 0 at r = 3 and stage 1 at r = 1,3
  const n = 6;
  const stages = [stage(n, 4, 8, 23), stage(n, 2, 12, 24)];
  const interval: [number, number] = [0, 0.3];
  const per = { rList: [1, 3], stageRList: [[3], [1, 3]], interval };
  const zero = await scorePatches(stages, per);
  const whole = await scorePatches(stages, { rList: [1, 3], interval });
  const P = zero.h * zero.w;
  const one = stages.map((s) => take(s, [0])),
    rest = stages.map((s) => take(s, [1, 2, 3, 4, 5]));
  const plain = await scoreAgainstBank(one, rest, per);
  // the worker's cache of the bank's LNAMD is per list: the same key without stage lists first
  const cachedWhole = await scoreAgainstBankCached('stage-r-bank', one, rest, { rList: [1, 3], interval });
  const cached = await scoreAgainstBankCached('stage-r-bank', one, rest, per);
  assert.ok(maxDiff(cachedWhole.patch, whole.data.subarray(0, P)) <= 1e-6);
  for (const r of [plain, cached])
    assert.ok(maxDiff(r.patch, zero.data.subarray(0, P)) <= 1e-6, `${maxDiff(r.patch, zero.data.subarray(0, P))}`);
  assert.ok(maxDiff(zero.data.subarray(0, P), whole.data.subarray(0, P)) > 1e-3, 'the stage lists change nothing');
  // end to end (the fake backbone has one stage): r = 3 for it alone
  const { dir, cleanup } = await tempDir('musc-bank-sr-');
  try {
    const imgs = await inputs(7, 80);
    const full = await buildBank(imgs, { out: join(dir, 'full.bank'), backbone: bb, stageRList: [[3]] });
    const restBank = await buildBank(imgs.slice(1), { out: join(dir, 'rest.bank'), backbone: bb, stageRList: [[3]] });
    assert.equal(full.manifest.format_version, 2);
    assert.deepEqual(full.manifest.scoring.stage_r_list, [[3]]);
    assert.deepEqual(full.manifest.scoring.r_list, [3]);
    const plainBank = await buildBank(imgs, { out: join(dir, 'plain.bank'), backbone: bb });
    assert.equal(plainBank.manifest.format_version, 1);
    assert.equal(plainBank.manifest.scoring.stage_r_list, undefined);
    const fb = await openBank(full.path),
      rb = await openBank(restBank.path);
    assert.match(describeBank(fb).join('\n'), /scoring: r 3 \(per stage\)/);
    const p = (await predict(rb, [imgs[0]!], { loadBackbone: loader })).predictions[0]!;
    assert.ok(Math.abs(p.imageScore - fb.calibration.image_scores[0]!) <= 1e-6, `${p.imageScore} vs ${fb.calibration.image_scores[0]}`);
    for (const b of [fb, rb]) await closeBank(b);
    await assert.rejects(
      buildBank(imgs, { out: join(dir, 'x.bank'), backbone: bb, stageRList: [[1], [3]] }),
      /--stage-r-list has 2 lists, the backbone has 1 stages/,
    );
    // edited manifests (valid checksums): a degree outside r_list, a list per stage missing, stage lists in a version-1 bank
    const man = join(full.path, 'manifest.json');
    const m0 = await readFile(man, 'utf8');
    const edits: [(m: BankManifest) => void, RegExp][] = [
      [(m) => (m.scoring.stage_r_list = [[5]]), /scoring\.stage_r_list stage 0: r = 5 is not in the plan's r list 3/],
      [(m) => (m.scoring.stage_r_list = []), /scoring\.stage_r_list per-stage r lists for 0 stages, the features have 1/],
      [
        (m) => (m.format_version = 1),
        /\(stage_r_list present, project absent, norm_exponent absent, density_exponent absent\) are those of bank format version 2, the manifest says 1/,
      ],
      [
        (m) => delete m.scoring.stage_r_list,
        /\(stage_r_list absent, project absent, norm_exponent absent, density_exponent absent\) are those of bank format version 1, the manifest says 2/,
      ],
    ];
    await refusesEdits(man, m0, full.path, edits);
  } finally {
    await cleanup();
  }
});

test("issue 17: projected banks (--project): leave-one-out on the bank's own bases; predict (plain and cached) projects new images on them", async () => {
  // engine level: two stages of 8 and 12 channels (LNAMD keeps 8), r = 1,3
  const n = 6;
  const stages = [stage(n, 4, 8, 31), stage(n, 2, 12, 32)];
  const interval: [number, number] = [0, 0.3];
  const bankStages = stages.map((s) => take(s, [1, 2, 3, 4, 5])),
    fresh = stages.map((s) => take(s, [0, 1])); // image 1 is also in the bank: a new image that matches itself
  const loo = await leaveOneOut(bankStages, { rList: [1, 3], interval, project: 4 });
  assert.deepEqual(Object.keys(loo.bases!).sort(), ['stage_0_r1', 'stage_0_r3', 'stage_1_r1', 'stage_1_r3']);
  for (const b of Object.values(loo.bases!)) assert.equal(b.length, 4 * 8);
  const s = { rList: [1, 3], interval, project: 4, projectBases: loo.bases! };
  const plain = await scoreAgainstBank(fresh, bankStages, s);
  const cached = await scoreAgainstBankCached('projected-bank', fresh, bankStages, s);
  const P = plain.h * plain.w;
  assert.ok(maxDiff(plain.patch, cached.patch) <= 1e-6, `plain vs cached ${maxDiff(plain.patch, cached.patch)}`);
  // the bank's bases, not the call's batch: an image scores the same alone as with another
  const alone = await scoreAgainstBankCached(
    'projected-bank',
    fresh.map((st) => take(st, [0])),
    bankStages,
    s,
  );
  assert.ok(
    maxDiff(alone.patch, plain.patch.subarray(0, P)) <= 1e-6,
    `alone vs in a pair ${maxDiff(alone.patch, plain.patch.subarray(0, P))}`,
  );
  const full = await scoreAgainstBank(fresh, bankStages, { rList: [1, 3], interval });
  assert.ok(maxDiff(full.patch, plain.patch) > 1e-3, '4 of 8 channels changed nothing');
  // K = C: each basis is a rotation, so the scores are the unprojected ones (exact distances: image 1 is
  // at distance 0 from itself, where the fast 2 - 2a.b form has float32 noise of ~sqrt(eps))
  const rot = await leaveOneOut(bankStages, { rList: [1, 3], interval, project: 8 });
  const exact = await scoreAgainstBank(fresh, bankStages, { rList: [1, 3], interval, precision: 'exact' });
  const rs = { rList: [1, 3], interval, precision: 'exact' as const, project: 8, projectBases: rot.bases! };
  for (const r of [await scoreAgainstBank(fresh, bankStages, rs), await scoreAgainstBankCached('rotated-bank', fresh, bankStages, rs)])
    assert.ok(maxDiff(r.patch, exact.patch) <= 1e-5, `rotation ${maxDiff(r.patch, exact.patch)}`);
  await assert.rejects(scoreAgainstBankCached('no-bases', fresh, bankStages, { rList: [1, 3], interval, project: 4 }), /needs its bases/);
  // end to end (the fake backbone's one stage has 3 channels): saved, verified, shown, used by predict
  const { dir, cleanup } = await tempDir('musc-bank-project-');
  try {
    const imgs = await inputs(7, 90);
    const built = await buildBank(imgs.slice(1), { out: join(dir, 'p.bank'), backbone: bb, project: 2 });
    assert.equal(built.manifest.format_version, 3);
    assert.equal(built.manifest.scoring.project, 2);
    const bank = await openBank(built.path);
    assert.deepEqual(Object.keys(bank.bases!).sort(), bank.manifest.scoring.r_list.map((r) => `stage_0_r${r}`).sort());
    assert.match(describeBank(bank).join('\n'), /features projected to 2 channels/);
    const one = (await predict(bank, [imgs[0]!], { loadBackbone: loader })).predictions[0]!;
    const two = (await predict(bank, [imgs[0]!, imgs[1]!], { loadBackbone: loader })).predictions[0]!;
    assert.ok(Number.isFinite(one.imageScore));
    assert.ok(Math.abs(one.imageScore - two.imageScore) <= 1e-6, `${one.imageScore} vs ${two.imageScore}`);
    await closeBank(bank);
    await assert.rejects(
      buildBank(imgs, { out: join(dir, 'x.bank'), backbone: { ...bb, stageChannels: [3] }, project: 4 }),
      /--project 4 is more than the 3 channels of the backbone's first stage/,
    );
    // edited manifests (valid checksums), and a features file without one basis (its sha256 in the manifest)
    const man = join(built.path, 'manifest.json');
    const m0 = await readFile(man, 'utf8');
    const edits: [(m: BankManifest) => void, RegExp][] = [
      [(m) => (m.scoring.project = 5), /scoring\.project must be an integer 2\.\.3 \(the first stage's channels\), got 5/],
      [
        (m) => (m.format_version = 2),
        /\(stage_r_list absent, project present, norm_exponent absent, density_exponent absent\) are those of bank format version 3, the manifest says 2/,
      ],
      [
        (m) => delete m.scoring.project,
        /\(stage_r_list absent, project absent, norm_exponent absent, density_exponent absent\) are those of bank format version 1, the manifest says 3/,
      ],
    ];
    await refusesEdits(man, m0, built.path, edits);
    const feat = join(built.path, 'features.safetensors');
    const f = SafetensorsFile.open(feat);
    const tensors: Record<string, TensorToWrite> = {};
    for (const name of f.names().filter((x) => x !== 'basis_stage_0_r1')) {
      const t = name.startsWith('stage_') ? f.float16(name) : f.float32(name);
      tensors[name] = { dtype: name.startsWith('stage_') ? 'F16' : 'F32', shape: t.shape, data: t.data };
    }
    f.close();
    const bytes = encodeSafetensors(tensors, { format: 'musc-bank' });
    await writeFile(feat, bytes);
    const m = JSON.parse(m0) as BankManifest;
    const entry = m.files.find((x) => x.name === 'features.safetensors')!;
    Object.assign(entry, { sha256: createHash('sha256').update(bytes).digest('hex'), bytes: bytes.length });
    m.checksum = manifestChecksum(m);
    await writeFile(man, JSON.stringify(m));
    await assert.rejects(openBank(built.path), /features\.safetensors has no basis_stage_0_r1/);
  } finally {
    await cleanup();
  }
});

test("projected banks calibrate on held-out bases: the bank's leave-one-out is the engine's projectFolds scoring; the saved bases are the whole bank's; folds recorded, shown, checked", async () => {
  const n = 6;
  const stages = [stage(n, 4, 8, 51), stage(n, 2, 12, 52)];
  const interval: [number, number] = [0, 0.3];
  const s = { rList: [1, 3], stageRList: [[1, 3], [1]], interval, project: 4, normExponent: 0.5 };
  const folded = await leaveOneOut(stages, { ...s, projectFolds: 3 });
  const shaped = await leaveOneOut(stages, s); // every image in the bases (before)
  for (const [key, b] of Object.entries(folded.bases!))
    assert.deepEqual(b, shaped.bases![key], `${key}: the saved bases are the whole bank's`);
  const plan = { n, rList: s.rList, stageRList: s.stageRList, variants: [zeroShotVariant(n, interval)] };
  const engine = await enginePlan(stages, plan, await kernelFor('cpu', 'fast'), { projectChannels: 4, normExponent: 0.5, projectFolds: 3 });
  assert.ok(maxDiff(folded.patch, engine.variants[0]!.patch) <= 1e-6, `bank vs engine ${maxDiff(folded.patch, engine.variants[0]!.patch)}`);
  assert.ok(maxDiff(folded.patch, shaped.patch) > 1e-4, 'the held-out calibration gave the scores of bases every image shaped');
  // end to end: the folds are the default's (at most the images), recorded in calibration.json and shown
  const { dir, cleanup } = await tempDir('musc-bank-folds-');
  try {
    const imgs = await inputs(6, 95);
    const built = await buildBank(imgs, { out: join(dir, 'p.bank'), backbone: bb, project: 2 });
    const bank = await openBank(built.path);
    assert.equal(bank.calibration.project_folds, Math.min(DEFAULT_PROJECT_FOLDS, imgs.length));
    assert.match(describeBank(bank).join('\n'), /calibration \(leave-one-out, projection bases held out in 6 folds,/);
    await closeBank(bank);
    const three = await openBank((await buildBank(imgs, { out: join(dir, 'q.bank'), backbone: bb, project: 2, projectFolds: 3 })).path);
    assert.equal(three.calibration.project_folds, 3);
    assert.notDeepEqual(three.calibration.image_scores, bank.calibration.image_scores);
    await closeBank(three);
    const plain = await openBank((await buildBank(imgs, { out: join(dir, 'u.bank'), backbone: bb })).path);
    assert.equal(plain.calibration.project_folds, undefined);
    await closeBank(plain);
    await assert.rejects(buildBank(imgs, { out: join(dir, 'x.bank'), backbone: bb, projectFolds: 3 }), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /--project-folds: only with --project/);
      return true;
    });
    await assert.rejects(
      buildBank(imgs, { out: join(dir, 'y.bank'), backbone: bb, project: 2, projectFolds: 1 }),
      /--project-folds: give an integer of at least 2, got 1/,
    );
  } finally {
    await cleanup();
  }
});

/** Edits of a norm-exponent bank's manifest (format 4) and what each is refused with. */
const NORM_BANK_EDITS: [(m: BankManifest) => void, RegExp][] = [
  [(m) => (m.scoring.msm_precision = 'exact'), /needs the 'fast' MSM precision, not 'exact'/],
  [(m) => (m.scoring.norm_exponent = 1), /must be a number in \[0, 1\), got 1/],
  [
    (m) => delete m.scoring.norm_exponent,
    /norm_exponent absent, density_exponent absent\) are those of bank format version 1, the manifest says 4/,
  ],
  [
    (m) => (m.format_version = 3),
    /norm_exponent present, density_exponent absent\) are those of bank format version 4, the manifest says 3/,
  ],
];

test('issue 17: banks with a norm exponent: predict (plain and cached) alike, alone as in a pair; format 4, shown, checked', async () => {
  const n = 6;
  const stages = [stage(n, 4, 8, 41), stage(n, 2, 12, 42)];
  const interval: [number, number] = [0, 0.3];
  const bankStages = stages.map((s) => take(s, [1, 2, 3, 4, 5])),
    fresh = stages.map((s) => take(s, [0, 1]));
  const s = { rList: [1, 3], interval, normExponent: 0.5 };
  const plain = await scoreAgainstBank(fresh, bankStages, s);
  const cached = await scoreAgainstBankCached('norm-bank', fresh, bankStages, s);
  const P = plain.h * plain.w;
  assert.ok(maxDiff(plain.patch, cached.patch) <= 1e-6, `plain vs cached ${maxDiff(plain.patch, cached.patch)}`);
  const alone = await scoreAgainstBankCached(
    'norm-bank',
    fresh.map((st) => take(st, [0])),
    bankStages,
    s,
  );
  assert.ok(maxDiff(alone.patch, plain.patch.subarray(0, P)) <= 1e-6, 'alone vs in a pair');
  const unit = await scoreAgainstBankCached('unit-bank', fresh, bankStages, { rList: [1, 3], interval });
  assert.ok(maxDiff(unit.patch, plain.patch) > 1e-3, 'the norm exponent changed nothing');
  await assert.rejects(
    scoreAgainstBankCached('norm-bank', fresh, bankStages, { ...s, precision: 'exact' }),
    /needs the 'fast' MSM precision/,
  );
  const { dir, cleanup } = await tempDir('musc-bank-norm-');
  try {
    const imgs = await inputs(7, 90);
    const built = await buildBank(imgs.slice(1), { out: join(dir, 'n.bank'), backbone: bb, normExponent: 0.5 });
    assert.equal(built.manifest.format_version, 4);
    assert.equal(built.manifest.scoring.norm_exponent, 0.5);
    const bank = await openBank(built.path);
    assert.match(describeBank(bank).join('\n'), /norm exponent 0\.5/);
    const one = (await predict(bank, [imgs[0]!], { loadBackbone: loader })).predictions[0]!;
    const two = (await predict(bank, [imgs[0]!, imgs[1]!], { loadBackbone: loader })).predictions[0]!;
    assert.ok(
      Number.isFinite(one.imageScore) && Math.abs(one.imageScore - two.imageScore) <= 1e-6,
      `${one.imageScore} vs ${two.imageScore}`,
    );
    await assert.rejects(
      predict(bank, [imgs[0]!], { loadBackbone: loader, precision: 'int8' }),
      /norm exponent 0\.5 needs the 'fast' precision/,
    );
    await closeBank(bank);
    const unitBank = await buildBank(imgs.slice(1), { out: join(dir, 'u.bank'), backbone: bb });
    assert.equal(unitBank.manifest.scoring.norm_exponent, undefined, 'one input size: unit rows, format as before');
    assert.equal(unitBank.manifest.format_version, 1);
    // projected with patch energy: format 5, bases saved, predict alone = in a pair
    const pn = await buildBank(imgs.slice(1), { out: join(dir, 'pn.bank'), backbone: bb, normExponent: 0.5, project: 2 });
    assert.equal(pn.manifest.format_version, 5);
    const pnBank = await openBank(pn.path);
    assert.match(describeBank(pnBank).join('\n'), /features projected to 2 channels, norm exponent 0\.5/);
    const pOne = (await predict(pnBank, [imgs[0]!], { loadBackbone: loader })).predictions[0]!;
    const pTwo = (await predict(pnBank, [imgs[0]!, imgs[1]!], { loadBackbone: loader })).predictions[0]!;
    assert.ok(Number.isFinite(pOne.imageScore) && Math.abs(pOne.imageScore - pTwo.imageScore) <= 1e-6);
    assert.ok(Math.abs(pOne.imageScore - one.imageScore) > 1e-6, 'projection changed nothing');
    await closeBank(pnBank);
    const pnMan = join(pn.path, 'manifest.json');
    await refusesEdits(pnMan, await readFile(pnMan, 'utf8'), pn.path, [
      [
        (m) => (m.format_version = 4),
        /\(stage_r_list absent, project present, norm_exponent present, density_exponent absent\) are those of bank format version 5, the manifest says 4/,
      ],
    ]);
    await assert.rejects(
      buildBank(imgs, { out: join(dir, 'x.bank'), backbone: bb, normExponent: 0.5, precision: 'int8' }),
      (e: unknown) =>
        e instanceof ConfigError && /--norm-exponent 0\.5 needs the 'fast' MSM precision, not 'int8'/.test((e as Error).message),
    );
    const man = join(built.path, 'manifest.json');
    await refusesEdits(man, await readFile(man, 'utf8'), built.path, NORM_BANK_EDITS);
  } finally {
    await cleanup();
  }
});

/** features.safetensors of a bank rewritten by `edit` (its tensors by name), the manifest's sha256 and checksum made valid again. */
async function rewriteFeatures(bankPath: string, edit: (t: Record<string, TensorToWrite>) => void): Promise<void> {
  const feat = join(bankPath, 'features.safetensors'),
    man = join(bankPath, 'manifest.json');
  const f = SafetensorsFile.open(feat);
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of f.names()) {
    if (name.startsWith('stage_')) tensors[name] = { dtype: 'F16', ...f.float16(name) };
    else if (name.startsWith('density_')) tensors[name] = { dtype: 'F64', ...f.float64(name) };
    else tensors[name] = { dtype: 'F32', ...f.float32(name) };
  }
  f.close();
  edit(tensors);
  const bytes = encodeSafetensors(tensors, { format: 'musc-bank' });
  await writeFile(feat, bytes);
  const m = JSON.parse(await readFile(man, 'utf8')) as BankManifest;
  Object.assign(m.files.find((x) => x.name === 'features.safetensors')!, {
    sha256: createHash('sha256').update(bytes).digest('hex'),
    bytes: bytes.length,
  });
  m.checksum = manifestChecksum(m);
  await writeFile(man, JSON.stringify(m));
}

test('issue 17: density-normalised banks: leave-one-out on held-out densities = predict (plain and cached) against the bank without the image on its saved densities', async () => {
  const n = 7;
  const stages = [stage(n, 4, 8, 51), stage(n, 2, 12, 52)];
  const interval: [number, number] = [0, 0.5];
  for (const densityExponent of [1, [0, 0.75]]) {
    const s = { rList: [1, 3], stageRList: [[1], [1, 3]], interval, normExponent: 0.5, densityExponent };
    const full = await leaveOneOut(stages, s);
    const plain = await leaveOneOut(stages, { rList: [1, 3], stageRList: [[1], [1, 3]], interval, normExponent: 0.5 });
    const P = full.h * full.w;
    assert.ok(maxDiff(full.patch, plain.patch) > 1e-3, `${densityExponent}: the densities changed nothing`);
    // the whole bank's densities per normalised pass (what a bank saves)
    assert.deepEqual(
      Object.keys(full.densities!).sort(),
      densityExponent === 1 ? ['stage_0_r1', 'stage_1_r1', 'stage_1_r3'] : ['stage_1_r1', 'stage_1_r3'],
    );
    for (const rho of Object.values(full.densities!)) assert.equal(rho.length, n * P);
    for (let i = 0; i < n; i++) {
      const others = [...Array(n).keys()].filter((j) => j !== i);
      const bank = stages.map((st) => take(st, others)),
        fresh = stages.map((st) => take(st, [i]));
      const saved = (await leaveOneOut(bank, s)).densities!; // a bank built without image i
      const want = full.patch.subarray(i * P, (i + 1) * P);
      const pred = await scoreAgainstBank(fresh, bank, { ...s, densityRho: saved });
      assert.ok(maxDiff(pred.patch, want) <= 1e-6, `${densityExponent}, image ${i}: ${maxDiff(pred.patch, want)}`);
      const cached = await scoreAgainstBankCached(`dens-${i}`, fresh, bank, { ...s, densityRho: saved });
      assert.ok(maxDiff(cached.patch, want) <= 1e-6, `${densityExponent}, image ${i} cached: ${maxDiff(cached.patch, want)}`);
    }
  }
  const s = { rList: [1], interval, densityExponent: 1 };
  const bank = stages.map((st) => take(st, [1, 2, 3, 4, 5])),
    fresh = stages.map((st) => take(st, [0, 6]));
  const saved = (await leaveOneOut(bank, s)).densities!;
  const pair = await scoreAgainstBankCached('dens-bank', fresh, bank, { ...s, densityRho: saved });
  const alone = await scoreAgainstBank(
    stages.map((st) => take(st, [0])),
    bank,
    { ...s, densityRho: saved },
  );
  assert.ok(maxDiff(pair.patch.subarray(0, alone.patch.length), alone.patch) <= 1e-6, 'alone vs in a pair');
  await assert.rejects(scoreAgainstBank(fresh, bank, { ...s, densityRho: {} }), /no densities given for stage_0_r1/);
  await assert.rejects(
    scoreAgainstBank(fresh, bank, { ...s, densityRho: { ...saved, stage_0_r1: saved.stage_0_r1!.subarray(16) } }),
    /stage_0_r1 has 64 densities, its 5 references of 16 patches need 80/,
  );
  await assert.rejects(scoreAgainstBank(fresh, bank, s), /needs zero-shot scoring of the whole batch/);
});

test("issue 17: --density-scope image in banks: the maps and pixel calibration are MSM's, the image scores normalised; predict = leave-one-out; format 7", async () => {
  const n = 7;
  const stages = [stage(n, 4, 8, 61), stage(n, 2, 12, 62)];
  const s = { rList: [1, 3], interval: [0, 0.5] as [number, number], normExponent: 0.5, densityExponent: [0, 1] };
  const all = await leaveOneOut(stages, s);
  const image = await leaveOneOut(stages, { ...s, densityScope: 'image' });
  const plain = await leaveOneOut(stages, { rList: [1, 3], interval: [0, 0.5], normExponent: 0.5 });
  assert.ok(maxDiff(image.patch, plain.patch) === 0, "the maps are MSM's");
  assert.ok(maxDiff(image.image!, all.patch) === 0, 'the image scores are the normalised ones');
  const P = image.h * image.w;
  for (const i of [0, 4]) {
    const others = [...Array(n).keys()].filter((j) => j !== i);
    const bank = stages.map((st) => take(st, others)),
      fresh = stages.map((st) => take(st, [i]));
    const saved = (await leaveOneOut(bank, { ...s, densityScope: 'image' })).densities!;
    for (const pred of [
      await scoreAgainstBank(fresh, bank, { ...s, densityScope: 'image', densityRho: saved }),
      await scoreAgainstBankCached(`scope-${i}`, fresh, bank, { ...s, densityScope: 'image', densityRho: saved }),
    ]) {
      assert.ok(maxDiff(pred.patch, image.patch.subarray(i * P, (i + 1) * P)) <= 1e-6, `image ${i}: the map`);
      assert.ok(maxDiff(pred.image!, image.image!.subarray(i * P, (i + 1) * P)) <= 1e-6, `image ${i}: the image scores`);
    }
  }
  const { dir, cleanup } = await tempDir('musc-bank-scope-');
  try {
    const imgs = await inputs(8, 150);
    const built = await buildBank(imgs, { out: join(dir, 's.bank'), backbone: bb, densityExponent: 1, densityScope: 'image' });
    const flat = await buildBank(imgs, { out: join(dir, 'f.bank'), backbone: bb });
    const dens = await buildBank(imgs, { out: join(dir, 'd.bank'), backbone: bb, densityExponent: 1 });
    assert.equal(built.manifest.format_version, 7);
    assert.equal(built.manifest.scoring.density_scope, 'image');
    const [sb, fb, db] = [await openBank(built.path), await openBank(flat.path), await openBank(dens.path)];
    assert.deepEqual(sb.calibration.map_maxima, fb.calibration.map_maxima, "the pixel threshold on MSM's maps");
    assert.deepEqual(sb.calibration.image_scores, db.calibration.image_scores, 'the image scores normalised');
    assert.match(describeBank(sb).join('\n'), /density exponent 1 \(image scores only\)/);
    const [ps, pf, pd] = await Promise.all(
      [sb, fb, db].map(async (b) => (await predict(b, [imgs[0]!], { loadBackbone: loader, maps: true })).predictions[0]!),
    );
    assert.deepEqual(ps!.map!.data, pf!.map!.data, "predict's map is MSM's");
    assert.ok(Math.abs(ps!.imageScore - pd!.imageScore) <= 1e-9, "predict's image score is the normalised one");
    assert.ok(Math.abs(ps!.imageScore - pf!.imageScore) > 1e-9, 'the normalisation changed nothing');
    for (const b of [sb, fb, db]) await closeBank(b);
    await assert.rejects(
      buildBank(imgs, { out: join(dir, 'x.bank'), backbone: bb, densityScope: 'image' }),
      (e: unknown) => e instanceof ConfigError && /--density-scope image: give --density-exponent too/.test((e as Error).message),
    );
    const man = join(built.path, 'manifest.json');
    await refusesEdits(man, await readFile(man, 'utf8'), built.path, [
      [(m) => (m.format_version = 6), /density_exponent present\) are those of bank format version 7, the manifest says 6/],
      [(m) => ((m.scoring as Record<string, unknown>).density_scope = 'all'), /scoring\.density_scope must be 'image'/],
      [(m) => delete m.scoring.density_exponent, /scoring\.density_scope without density_exponent/],
    ]);
  } finally {
    await cleanup();
  }
});

test('issue 17: a bank built with --density-exponent: format 6, densities saved and verified, shown; predict alone = in a pair; refusals', async () => {
  const { dir, cleanup } = await tempDir('musc-bank-density-');
  try {
    const imgs = await inputs(8, 130);
    const logged: string[] = [];
    const full = await buildBank(imgs, { out: join(dir, 'full.bank'), backbone: bb, densityExponent: 1, log: (l) => void logged.push(l) });
    const rest = await buildBank(imgs.slice(1), { out: join(dir, 'rest.bank'), backbone: bb, densityExponent: 1 });
    const plain = await buildBank(imgs, { out: join(dir, 'plain.bank'), backbone: bb });
    assert.equal(full.manifest.format_version, 6);
    // the memory estimate is logged before scoring and counts the held-out densities [N, N, P] float32 and the indices
    assert.deepEqual(logged, [
      `scoring the bank's 8 images; estimated memory for scoring about ${Math.ceil(full.estimatedBytes / 2 ** 20)} MB`,
    ]);
    const P = Math.max(...full.manifest.features.stages.map((d) => d.h * d.w));
    assert.equal(full.estimatedBytes - plain.estimatedBytes, 4 * 8 * 8 * P + 2 * 8 * 7 * P);
    assert.equal(full.manifest.scoring.density_exponent, 1);
    const fb = await openBank(full.path),
      rb = await openBank(rest.path),
      pb = await openBank(plain.path);
    assert.deepEqual(Object.keys(fb.densities!).sort(), ['stage_0_r1', 'stage_0_r3', 'stage_0_r5']);
    assert.match(describeBank(fb).join('\n'), /density exponent 1, interval/);
    assert.match(describeBank(fb).join('\n'), /calibration \(leave-one-out, densities held out,/);
    assert.ok(
      maxDiff(Float64Array.from(fb.calibration.image_scores), Float64Array.from(pb.calibration.image_scores)) > 1e-6,
      'the densities changed no calibration score',
    );
    // a bank without image 0 scores image 0 as the full bank's held-out leave-one-out
    const p0 = (await predict(rb, [imgs[0]!], { loadBackbone: loader })).predictions[0]!;
    assert.ok(Math.abs(p0.imageScore - fb.calibration.image_scores[0]!) <= 1e-6, `${p0.imageScore} vs ${fb.calibration.image_scores[0]}`);
    const pair = (await predict(rb, [imgs[1]!, imgs[0]!], { loadBackbone: loader })).predictions[1]!;
    assert.ok(Math.abs(pair.imageScore - p0.imageScore) <= 1e-6, 'alone vs in a pair');
    await assert.rejects(
      predict(rb, [imgs[0]!], { loadBackbone: loader, precision: 'int8' }),
      /density exponent 1 needs the 'fast' precision/,
    );
    for (const b of [fb, rb, pb]) await closeBank(b);
    const layer = await buildBank(imgs, { out: join(dir, 'l.bank'), backbone: bb, densityExponent: [0.5] });
    assert.deepEqual(layer.manifest.scoring.density_exponent, [0.5]);
    assert.ok(!layer.warnings.some((w) => /above 1/.test(w)) && !full.warnings.some((w) => /above 1/.test(w)));
    const steep = await buildBank(imgs, { out: join(dir, 's.bank'), backbone: bb, densityExponent: 2 });
    assert.equal(steep.warnings.filter((w) => /--density-exponent 2 is above 1/.test(w)).length, 1, steep.warnings.join('\n'));
    const refused: [Partial<Parameters<typeof buildBank>[1]>, RegExp][] = [
      [{ precision: 'int8' }, /--density-exponent needs the 'fast' MSM precision/],
      [{ project: 4 }, /--density-exponent: not with --project in a bank/],
      [{ densityExponent: [1, 1] }, /--density-exponent has 2 exponents, the backbone has 1 stages/],
    ];
    for (const [o, want] of refused)
      await assert.rejects(
        buildBank(imgs, { out: join(dir, 'x.bank'), backbone: bb, densityExponent: 1, ...o }),
        (e: unknown) => e instanceof ConfigError && want.test((e as Error).message),
      );
    assert.equal(
      (await buildBank(imgs, { out: join(dir, 'z.bank'), backbone: bb, densityExponent: 0 })).manifest.format_version,
      1,
      'exponent 0: plain MSM, format as before',
    );
    const man = join(full.path, 'manifest.json');
    const m0 = await readFile(man, 'utf8');
    await refusesEdits(man, m0, full.path, [
      [(m) => (m.format_version = 5), /density_exponent present\) are those of bank format version 6, the manifest says 5/],
      [(m) => (m.scoring.density_exponent = -1), /scoring\.density_exponent must be a number in \(0, 4\] or 1 numbers/],
      [(m) => (m.scoring.density_exponent = [0]), /scoring\.density_exponent must be/],
      [(m) => (m.scoring.msm_precision = 'int8'), /scoring\.density_exponent needs msm_precision 'fast' and no project/],
    ]);
    await writeFile(man, m0);
    await rewriteFeatures(full.path, (t) => delete t.density_stage_0_r3);
    await assert.rejects(openBank(full.path), /features\.safetensors has no density_stage_0_r3/);
    await rewriteFeatures(rest.path, (t) => ((t.density_stage_0_r1!.data as Float64Array)[5] = Number.NaN));
    await assert.rejects(openBank(rest.path), /density_stage_0_r1 holds values that are not finite distances/);
    await rewriteFeatures(layer.path, (t) => (t.density_stage_0_r1!.shape = [4, t.density_stage_0_r1!.data.length / 4]));
    await assert.rejects(openBank(layer.path), /density_stage_0_r1 has shape \[4,\d+\], expected \[8,\d+\]/);
  } finally {
    await cleanup();
  }
});

test('bad inputs are skipped with the reason; no images is an error; a duplicate in a bank is dropped', async () => {
  const { dir, cleanup } = await tempDir('musc-bank-');
  try {
    const imgs = await inputs(5, 40);
    const built = await buildBank(
      [...imgs, { name: 'copy.png', bytes: imgs[0]!.bytes }, { name: 'notes.png', bytes: Buffer.from('hello') }],
      { out: join(dir, 'a.bank'), backbone: bb },
    );
    assert.deepEqual(built.manifest.skipped.map((s) => s.name).sort(), ['copy.png', 'notes.png']);
    assert.match(built.manifest.skipped.find((s) => s.name === 'notes.png')!.reason, /not an image/);
    const bank = await openBank(built.path);
    const out = await predict(
      bank,
      [{ name: 'empty.png', bytes: Buffer.alloc(0) }, { name: 'x.txt', bytes: Buffer.from('text') }, imgs[1]!],
      { loadBackbone: loader },
    );
    assert.deepEqual(
      out.skipped.map((s) => s.name),
      ['empty.png', 'x.txt'],
    );
    assert.match(out.skipped[0]!.reason, /empty/);
    assert.equal(out.predictions.length, 1);
    assert.match(out.predictions[0]!.warnings.join(), /is in the bank/);
    await assert.rejects(predict(bank, [], { loadBackbone: loader }), /no images/);
    // other formats are decoded (JPEG, grayscale); another aspect ratio is scored with a warning
    const jpeg = await sharp(imgs[2]!.bytes).jpeg().toBuffer();
    const gray = await sharp(imgs[3]!.bytes).grayscale().png().toBuffer();
    const tall = await sharp(imgs[4]!.bytes).resize(32, 64, { fit: 'fill' }).png().toBuffer();
    const other = await predict(
      bank,
      [
        { name: 'a.jpg', bytes: jpeg },
        { name: 'g.png', bytes: gray },
        { name: 't.png', bytes: tall },
      ],
      { loadBackbone: loader, maps: true },
    );
    assert.deepEqual(
      other.predictions.map((p) => [p.name, p.width, p.height]),
      [
        ['a.jpg', 48, 32],
        ['g.png', 48, 32],
        ['t.png', 32, 64],
      ],
    );
    assert.equal(other.predictions[0]!.warnings.length, 0);
    assert.match(other.predictions[2]!.warnings.join(), /32x64; no bank image has this aspect ratio/);
    assert.equal(other.predictions[2]!.mask!.length, 32 * 64);
    await assert.rejects(buildBank([imgs[0]!], { out: join(dir, 'b.bank'), backbone: bb }), /at least 2 readable images/);
  } finally {
    await cleanup();
  }
});

test('a bank folder leaves out mask folders (ground_truth/, masks/)', async () => {
  const { dir, cleanup } = await tempDir('musc-bank-');
  try {
    for (const [i, rel] of ['good/a.png', 'good/b.png', 'ground_truth/x/a_mask.png'].entries()) {
      await mkdir(join(dir, rel, '..'), { recursive: true });
      await writeFile(join(dir, rel), await png(16, 16, i));
    }
    const { inputs, excluded } = await imagesOfFolder(dir);
    assert.deepEqual(
      inputs.map((x) => x.name),
      ['good/a.png', 'good/b.png'],
    );
    assert.deepEqual(
      excluded.map((x) => x.name),
      ['ground_truth/x/a_mask.png'],
    );
  } finally {
    await cleanup();
  }
});

test('bank files: written atomically, refused when corrupt, edited, or built with other settings', async () => {
  const { dir, cleanup } = await tempDir('musc-bank-');
  try {
    const out = join(dir, 'p.bank');
    await buildBank(await inputs(5, 60), { out, backbone: bb });
    assert.deepEqual((await readdir(dir)).sort(), ['p.bank']); // no temporary left
    assert.deepEqual((await readdir(out)).sort(), ['calibration.json', 'features.safetensors', 'manifest.json']);
    await assert.rejects(buildBank(await inputs(5, 60), { out, backbone: bb }), /already exists/);
    await buildBank(await inputs(5, 70), { out, backbone: bb, force: true });
    assert.deepEqual((await readdir(dir)).sort(), ['p.bank']);
    const bank = await openBank(out);
    await assert.rejects(
      predict(bank, await inputs(1, 1), { loadBackbone: loader, expect: { backbone: 'resnet50' } }),
      /built with backbone 'fake'; this call asks for 'resnet50'/,
    );
    await assert.rejects(
      predict(bank, await inputs(1, 1), { loadBackbone: loader, expect: { imageSize: 224 } }),
      /image size 32; this call asks for 224/,
    );
    const other = { ...bb, weightsSha256: '1'.repeat(64) };
    await assert.rejects(predict(await openBank(out), await inputs(1, 1), { loadBackbone: async () => other }), /weights sha256/);
    // a flipped byte in the features
    const feat = join(out, 'features.safetensors');
    const b = await readFile(feat);
    b[b.length - 5] ^= 0x10;
    await writeFile(feat, b);
    await assert.rejects(openBank(out), /features\.safetensors is corrupt/);
    b[b.length - 5] ^= 0x10;
    await writeFile(feat, b);
    await openBank(out);
    // an edited manifest
    const man = join(out, 'manifest.json');
    const text = await readFile(man, 'utf8');
    await writeFile(man, text.replace('"r_list": [\n      1,', '"r_list": [\n      3,'));
    await assert.rejects(openBank(out), /checksum/);
    await writeFile(man, text);
    await assert.rejects(openBank(join(dir, 'missing.bank')), /not found/);
    await assert.rejects(openBank(feat), /not a bank directory/);
  } finally {
    await cleanup();
  }
});

test('calibration: robust false-alarm threshold, normalised score, run verdicts, threshold files', async () => {
  assert.ok(Math.abs(normalQuantile(0.99) - 2.3263478740408408) < 1e-8);
  assert.ok(Math.abs(normalQuantile(0.5)) < 1e-12);
  assert.ok(Math.abs(normalQuantile(0.001) + 3.090232306167813) < 1e-8);
  const good = Array.from({ length: 20 }, (_, i) => 1 + 0.01 * i);
  const t = falseAlarmThreshold(good, 0.01);
  const withDefects = falseAlarmThreshold([...good.slice(2), 5, 9], 0.01); // two defects replace two goods
  assert.ok(Math.abs(withDefects - t) < 0.02 * t, `${t} vs ${withDefects}`);
  assert.equal(normalizeScore(t, t, 1.1), 0.5);
  assert.equal(normalizeScore(1.1, t, 1.1), 0);
  assert.equal(normalizeScore(100, t, 1.1), 1);
  const lab = runVerdicts([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]);
  assert.equal(lab.method, 'f1');
  assert.deepEqual(lab.decisions, ['OK', 'OK', 'NG', 'NG']);
  const free = runVerdicts([...good, 7], null);
  assert.equal(free.method, 'calibrated');
  assert.equal(free.ng, 1);
  const { dir, cleanup } = await tempDir('musc-thr-');
  try {
    await writeThresholdFile(join(dir, 't.json'), { image_threshold: 1.25, pixel_threshold: 2 });
    assert.deepEqual(await readThresholdArg(join(dir, 't.json')), { image: 1.25, pixel: 2 });
    assert.deepEqual(await readThresholdArg('0.5'), { image: 0.5 });
    await assert.rejects(readThresholdArg(join(dir, 'none.json')), /not a number/);
  } finally {
    await cleanup();
  }
});

test('regions: 8-connected components of map > threshold with bbox, area, peak and mean', () => {
  const W = 6,
    H = 4;
  const data = new Float32Array(W * H);
  data[1 * W + 1] = 2;
  data[2 * W + 2] = 4; // diagonal: one region
  data[0 * W + 5] = 3;
  data[1 * W + 5] = 1; // second region
  const { mask, regions } = regionsOf({ width: W, height: H, data }, 0.5);
  assert.equal(
    mask.reduce((a, b) => a + b, 0),
    4,
  );
  assert.deepEqual(
    regions.map((r) => [r.x, r.y, r.width, r.height, r.area, r.peak, r.mean]),
    [
      [5, 0, 1, 2, 2, 3, 2],
      [1, 1, 2, 2, 2, 4, 3],
    ],
  );
});

test('musc run where: masks at original size, composites of NG images, regions.csv; pixel threshold from OK images', async () => {
  const { dir, cleanup } = await tempDir('musc-where-');
  try {
    const S = 8,
      n = 4;
    const items = await Promise.all(
      [...Array(n).keys()].map(async (i) => {
        const path = join(dir, `img${i}.png`);
        await sharp(await png(30, 20, i + 1)).toFile(path);
        return { path, rel: `x/img${i}.png`, defect: 'x', label: null, masks: null };
      }),
    );
    const maps = new Float32Array(n * S * S).fill(0.1);
    for (let i = 0; i < 3; i++) maps[i * S * S + 9] = 0.2 + 0.01 * i; // normal images: a small bump
    for (let y = 2; y < 5; y++) for (let x = 4; x < 7; x++) maps[3 * S * S + y * S + x] = 1; // image 3: a defect
    const imageScores = Float64Array.from([0.12, 0.13, 0.14, 0.9]); // a top-fraction mean: below the maxima
    const decisions = { method: 'false-alarm' as const, threshold: 0.5, decisions: ['OK', 'OK', 'OK', 'NG'] as ('OK' | 'NG')[], ng: 1 };
    const r = {
      name: 'x',
      items,
      maps,
      imageScores,
      rscinScores: imageScores,
      decisions,
      size: S,
    } as unknown as import('../src/pipeline/types.js').CategoryResult;
    const scale = runPixelScale(r);
    assert.ok(Math.abs(scale.threshold - falseAlarmThreshold([0.2, 0.21, 0.22].map(Math.fround))) < 1e-12); // the OK images' map maxima
    const w = await writeRunWhere(dir, r, true);
    assert.equal(w.masks, 4);
    assert.equal(w.composites, 1);
    const meta = await sharp(join(dir, 'masks', 'x', 'img3.png')).metadata();
    assert.deepEqual([meta.width, meta.height], [30, 20]);
    const rows = (await readFile(join(dir, 'regions.csv'), 'utf8')).trim().split('\n');
    assert.equal(rows[0], 'path,region,x,y,width,height,area,peak,mean');
    const box = rows
      .find((l) => l.startsWith('x/img3.png'))!
      .split(',')
      .map(Number);
    // the defect covers grid cells x 4..6, y 2..4 of 8: about x 17..26 of 30, y 5..13 of 20
    assert.ok(box[2]! >= 12 && box[2]! <= 18 && box[2]! + box[4]! >= 24 && box[3]! >= 3 && box[3]! + box[5]! >= 12, rows.join(' | '));
    assert.deepEqual(await readdir(join(dir, 'composites', 'x')), ['img3.png']);
  } finally {
    await cleanup();
  }
});
