/**
 * `musc bank build|info` and `musc predict` end to end with the real default backbone (ResNet-50,
 * at 64 px to stay fast): outputs at the original size, settings and corrupt banks refused with
 * the documented exit codes, threshold files read back, clean stderr without a TTY.
 */

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import sharp from 'sharp';
import { readMapFile } from '../src/bank/outputs.js';
import { decodeMask } from '../src/image/decode.js';
import { isNg } from '../src/threshold.js';
import { cliMain, tempDir } from './helpers/cli-env.js';
import { lcg } from './helpers/lcg.js';

const musc = (args: string[]) => spawnSync(process.execPath, [cliMain, ...args], { encoding: 'utf8', timeout: 300_000 });

async function png(file: string, seed: number, spot = false): Promise<void> {
  const w = 80,
    h = 48;
  const r = lcg(seed);
  const px = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < 3; c++) px[(y * w + x) * 3 + c] = 60 + ((x * 4 + y * 3 + c * 40) % 120) + Math.round(10 * r());
  if (spot) for (let y = 16; y < 30; y++) for (let x = 50; x < 64; x++) px.set([255, 255, 0], (y * w + x) * 3);
  await sharp(px, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toFile(file);
}

/** regions.csv has a box of bad.png around the yellow spot (x 50-63, y 16-29). */
async function assertRegionCoversSpot(out: string): Promise<void> {
  const regions = (await readFile(join(out, 'regions.csv'), 'utf8')).trim().split('\n');
  const box = regions
    .find((l) => l.startsWith('bad.png'))!
    .split(',')
    .map(Number);
  assert.ok(
    box[2]! <= 57 && box[2]! + box[4]! >= 57 && box[3]! <= 23 && box[3]! + box[5]! >= 23,
    `a region covers the spot: ${regions.join(' | ')}`,
  );
}

/**
 * --save-maps: maps/bad.safetensors is the map at the original size (80 x 48); thresholded at the
 * pixel threshold it is the mask PNG of the first predict; its maximum over the first region is
 * that region's peak; no masks/ with --no-pictures.
 */
async function assertSavedMap(first: string, out: string): Promise<void> {
  const json = JSON.parse(await readFile(join(out, 'predictions.json'), 'utf8'));
  const p = json.predictions.find((x: { name: string }) => x.name === 'bad.png');
  assert.equal(p.map_file, 'maps/bad.safetensors');
  const map = await readMapFile(join(out, p.map_file));
  assert.deepEqual([map.width, map.height], [80, 48]);
  const mask = await decodeMask(join(first, 'masks', 'bad.png'));
  assert.equal(mask.data.length, map.data.length);
  let differ = 0;
  for (let k = 0; k < map.data.length; k++) if (isNg(map.data[k]!, p.pixelThreshold) !== mask.data[k]! > 127) differ++;
  assert.equal(differ, 0, 'map >= pixel threshold is the mask');
  const reg = p.regions[0];
  let peak = -Infinity;
  for (let y = reg.y; y < reg.y + reg.height; y++)
    for (let x = reg.x; x < reg.x + reg.width; x++) if (mask.data[y * 80 + x]! > 127) peak = Math.max(peak, map.data[y * 80 + x]!);
  assert.ok(Math.abs(peak - reg.peak) <= 1e-6 * Math.abs(reg.peak), `region peak ${reg.peak}, map ${peak}`);
  await assert.rejects(readFile(join(out, 'masks', 'bad.png')), /ENOENT/);
}

/** Banks' LNAMD degrees: fused sizes give the per-stage default of runs (issue 17), or the lists asked for; a wrong list count is a usage error. */
function assertStageDegrees(dir: string): void {
  const fused = join(dir, 'f.bank');
  let r = musc(['bank', 'build', '--data', join(dir, 'good'), '--out', fused, '--image-size', '64', '--fuse-sizes', '96']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /scoring: r 1,3 \/ 1,5,7 \(per stage\)/);
  r = musc(['bank', 'build', '--data', join(dir, 'good'), '--out', fused, '--image-size', '64', '--stage-r-list', '1/1,3', '--force']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /scoring: r 1 \/ 1,3 \(per stage\)/);
  r = musc(['predict', '--bank', fused, join(dir, 'new', 'bad.png'), '--out', join(dir, 'of'), '--no-pictures']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /1 images: 1 NG, 0 OK/);
  r = musc(['bank', 'build', '--data', join(dir, 'good'), '--out', join(dir, 'x.bank'), '--image-size', '64', '--stage-r-list', '1/3/5']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--stage-r-list has 3 lists, the backbone has 2 stages \(2,3\)/);
}

/** A projected bank (`--project K`): recorded and shown, used by predict; K above the first stage's channels is a usage error. */
function assertProjectedBank(dir: string): void {
  const bank = join(dir, 'projected.bank');
  let r = musc(['bank', 'build', '--data', join(dir, 'good'), '--out', bank, '--image-size', '64', '--project', '48']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /features projected to 48 channels/);
  r = musc(['predict', '--bank', bank, join(dir, 'new', 'bad.png'), '--out', join(dir, 'op'), '--no-pictures']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /1 images: 1 NG, 0 OK/);
  r = musc(['bank', 'build', '--data', join(dir, 'good'), '--out', join(dir, 'y.bank'), '--image-size', '64', '--project', '600']);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--project 600 is more than the 512 channels of the backbone's first stage/);
}

test('musc bank build / info / predict: verdicts, regions, masks at the original size; refusals and exit codes', async () => {
  const { dir, cleanup } = await tempDir('bank-cli');
  try {
    await mkdir(join(dir, 'good'));
    await mkdir(join(dir, 'new'));
    for (let i = 0; i < 8; i++) await png(join(dir, 'good', `g${i}.png`), i + 1);
    await png(join(dir, 'new', 'ok.png'), 100);
    await png(join(dir, 'new', 'bad.png'), 101, true);
    await writeFile(join(dir, 'new', 'notes.png'), 'not an image');
    const bank = join(dir, 'p.bank'),
      out = join(dir, 'out');
    let r = musc(['bank', 'build', '--data', join(dir, 'good'), '--out', bank, '--image-size', '64']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /8 images.*\n.*resnet50 at 64 px/);
    assert.doesNotMatch(r.stderr, /\r|\u2588|\u2591/); // no progress bar without a TTY
    r = musc(['bank', 'info', bank]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /verified/);
    assert.match(r.stdout, /scoring: r 1,3,5,/); // one input size: the paper's r for every stage
    assertStageDegrees(dir);
    assertProjectedBank(dir);
    r = musc(['predict', '--bank', bank, join(dir, 'new'), '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /2 images: \d NG, \d OK, 1 skipped/);
    assert.match(r.stderr, /skipped notes\.png: not an image/);
    const rows = (await readFile(join(out, 'predictions.csv'), 'utf8')).trim().split('\n');
    assert.equal(rows[0], 'name,verdict,score,normalized,image_score,threshold,regions,width,height,mask,composite');
    const bad = rows.find((l) => l.startsWith('bad.png'))!.split(',');
    assert.equal(bad[1], 'NG');
    const meta = await sharp(join(out, 'masks', 'bad.png')).metadata();
    assert.deepEqual([meta.width, meta.height], [80, 48]);
    const comp = await sharp(join(out, 'composites', 'bad.png')).metadata();
    assert.equal(comp.height, 48);
    await assertRegionCoversSpot(out);
    const json = JSON.parse(await readFile(join(out, 'predictions.json'), 'utf8'));
    assert.equal(json.counts.skipped, 1);
    // the threshold file read back gives the same verdicts
    r = musc([
      'predict',
      '--bank',
      bank,
      join(dir, 'new', 'bad.png'),
      join(dir, 'new', 'ok.png'),
      '--out',
      join(dir, 'out2'),
      '--threshold',
      join(out, 'threshold.json'),
      '--no-pictures',
      '--save-maps',
    ]);
    assert.equal(r.status, 0, r.stderr);
    await assertSavedMap(out, join(dir, 'out2'));
    const rows2 = (await readFile(join(dir, 'out2', 'predictions.csv'), 'utf8'))
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(',').slice(0, 2).join());
    assert.deepEqual(
      rows2.sort(),
      rows
        .slice(1)
        .map((l) => l.split(',').slice(0, 2).join())
        .sort(),
    );
    // other settings: exit 2 naming both; an empty folder: exit 3
    r = musc(['predict', '--bank', bank, join(dir, 'new'), '--out', join(dir, 'o3'), '--image-size', '96']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /image size 64; this call asks for 96/);
    await mkdir(join(dir, 'empty'));
    r = musc(['predict', '--bank', bank, join(dir, 'empty'), '--out', join(dir, 'o4')]);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /no images found/);
    // a flipped byte: exit 3 naming the file
    const feat = join(bank, 'features.safetensors');
    const b = await readFile(feat);
    b[Math.floor(b.length / 2)] ^= 1;
    await writeFile(feat, b);
    r = musc(['predict', '--bank', bank, join(dir, 'new'), '--out', join(dir, 'o5')]);
    assert.equal(r.status, 3);
    assert.match(r.stderr, /features\.safetensors is corrupt/);
  } finally {
    await cleanup();
  }
});
