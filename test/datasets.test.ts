import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { openDataset, selectCategories, detectLayout, defaultKList, DatasetError } from '../src/datasets/index.js';
import { loadMask, binariseMask } from '../src/datasets/masks.js';
import { resizePilGray } from '../src/image/resample.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { tempDir, writePng, writeMask, sharedDir } from './helpers/cli-env.js';

test('MVTec layout: sorted types and files, masks by stem, categories from the tree', async () => {
  const { dir, cleanup } = await tempDir('mvtec');
  try {
    for (const cat of ['zipper', 'bottle']) {
      for (const [type, files] of [
        ['good', ['001.png', '000.png']],
        ['scratch', ['000.png']],
        ['broken', ['002.png', '000.png']],
      ] as const) {
        for (const f of files) await writePng(join(dir, cat, 'test', type, f), 8, 8, 100);
        if (type !== 'good')
          for (const f of files) await writeMask(join(dir, cat, 'ground_truth', type, f.replace('.png', '_mask.png')), 8, 8, [0, 0, 4, 4]);
      }
    }
    await mkdir(join(dir, 'not_a_category'), { recursive: true });
    assert.equal(await detectLayout(dir), 'mvtec');
    const ds = await openDataset(dir);
    assert.deepEqual(ds.categories, ['bottle', 'zipper']);
    assert.deepEqual(selectCategories(ds, 'all'), ['bottle', 'zipper']);
    assert.deepEqual(selectCategories(ds, 'zipper'), ['zipper']);
    assert.throws(
      () => selectCategories(ds, 'cable'),
      (e: Error) => e instanceof DatasetError && /unknown category 'cable'.*bottle, zipper/.test(e.message),
    );
    const c = await ds.load('bottle');
    // the reference: sorted(types) then sorted(files); 'good' is not moved
    assert.deepEqual(
      c.items.map((it) => it.rel),
      [
        'bottle/test/broken/000.png',
        'bottle/test/broken/002.png',
        'bottle/test/good/000.png',
        'bottle/test/good/001.png',
        'bottle/test/scratch/000.png',
      ],
    );
    assert.deepEqual(
      c.items.map((it) => it.label),
      [1, 1, 0, 0, 1],
    );
    assert.deepEqual(
      c.items.map((it) => it.defect),
      ['broken', 'broken', 'good', 'good', 'scratch'],
    );
    assert.equal(c.items[1]!.masks![0], join(dir, 'bottle', 'ground_truth', 'broken', '002_mask.png'));
    assert.equal(c.items[2]!.masks, null);
    assert.deepEqual(defaultKList('mvtec'), [1, 2, 3]);
    // a single category folder given directly
    const one = await openDataset(join(dir, 'zipper'));
    assert.deepEqual(one.categories, ['zipper']);
    assert.equal((await one.load('zipper')).items[0]!.rel, 'test/broken/000.png');
  } finally {
    await cleanup();
  }
});

test('BTAD layout: ok = good, masks with the image stem (no _mask suffix); MPDD as mvtec', async () => {
  const { dir, cleanup } = await tempDir('btad');
  try {
    await writePng(join(dir, '01', 'test', 'ok', '0000.png'), 8, 8, 50);
    await writePng(join(dir, '01', 'test', 'ko', '0001.png'), 8, 8, 60);
    await writePng(join(dir, '01', 'test', 'ko', '0000.png'), 8, 8, 70);
    await writeMask(join(dir, '01', 'ground_truth', 'ko', '0000.png'), 8, 8, [1, 1, 3, 3]);
    await writeMask(join(dir, '01', 'ground_truth', 'ko', '0001.png'), 8, 8, [1, 1, 3, 3]);
    assert.equal(await detectLayout(dir), 'btad');
    const ds = await openDataset(dir);
    const c = await ds.load('01');
    assert.deepEqual(
      c.items.map((it) => [it.rel, it.label]),
      [
        ['01/test/ko/0000.png', 1],
        ['01/test/ko/0001.png', 1],
        ['01/test/ok/0000.png', 0],
      ],
    );
    assert.equal(c.items[1]!.masks![0], join(dir, '01', 'ground_truth', 'ko', '0001.png'));
    const mp = await openDataset(dir, 'mpdd');
    assert.equal(mp.kind, 'mpdd');
    assert.equal((await mp.load('01')).kind, 'mpdd');
  } finally {
    await cleanup();
  }
});

test('missing masks are reported, positional pairing when names differ but counts match', async () => {
  const { dir, cleanup } = await tempDir('pair');
  try {
    await writePng(join(dir, 'c', 'test', 'hole', 'a.png'), 8, 8, 10);
    await writePng(join(dir, 'c', 'test', 'hole', 'b.png'), 8, 8, 10);
    await writeMask(join(dir, 'c', 'ground_truth', 'hole', 'm1.png'), 8, 8, [0, 0, 1, 1]);
    await writeMask(join(dir, 'c', 'ground_truth', 'hole', 'm2.png'), 8, 8, [0, 0, 1, 1]);
    await writePng(join(dir, 'c', 'test', 'cut', 'a.png'), 8, 8, 10);
    const c = await (await openDataset(dir)).load('c');
    const hole = c.items.filter((it) => it.defect === 'hole');
    assert.deepEqual(
      hole.map((it) => it.masks![0]!.slice(-6)),
      ['m1.png', 'm2.png'],
    );
    assert.equal(c.items.find((it) => it.defect === 'cut')!.masks, null);
    assert.ok(
      c.warnings.some((w) => w.includes('c/cut')),
      c.warnings.join('\n'),
    );
  } finally {
    await cleanup();
  }
});

test('VisA layout: 1cls.csv test rows in CSV order, Normal/Anomaly types, k_list 1,8,9', async () => {
  const { dir, cleanup } = await tempDir('visa');
  try {
    const rows = [
      'object,split,label,image,mask',
      'candle,train,normal,candle/Data/Images/Normal/0000.JPG,',
      'candle,test,anomaly,candle/Data/Images/Anomaly/0005.JPG,candle/Data/Masks/Anomaly/0005.png',
      'candle,test,normal,candle/Data/Images/Normal/0001.JPG,',
      'pcb1,test,normal,pcb1/Data/Images/Normal/0001.JPG,',
    ];
    await mkdir(join(dir, 'split_csv'), { recursive: true });
    await writeFile(join(dir, 'split_csv', '1cls.csv'), rows.join('\r\n') + '\r\n');
    assert.equal(await detectLayout(dir), 'visa');
    const ds = await openDataset(dir);
    assert.deepEqual(ds.categories, ['candle', 'pcb1']);
    const c = await ds.load('candle');
    assert.deepEqual(
      c.items.map((it) => [it.rel, it.defect, it.label]),
      [
        ['candle/Data/Images/Anomaly/0005.JPG', 'Anomaly', 1],
        ['candle/Data/Images/Normal/0001.JPG', 'Normal', 0],
      ],
    );
    assert.equal(c.items[0]!.masks![0], join(dir, 'candle/Data/Masks/Anomaly/0005.png'));
    assert.deepEqual(defaultKList('visa'), [1, 8, 9]);
    await writeFile(join(dir, 'split_csv', '1cls.csv'), 'object,split,image\nx,test,a.png\n');
    await assert.rejects(openDataset(dir), /1cls\.csv: no 'label' column/);
  } finally {
    await cleanup();
  }
});

test('MVTec LOCO layout: one mask folder per image, union of its files', async () => {
  const { dir, cleanup } = await tempDir('loco');
  try {
    await writePng(join(dir, 'box', 'test', 'good', '000.png'), 16, 16, 10);
    await writePng(join(dir, 'box', 'test', 'logical_anomalies', '000.png'), 16, 16, 10);
    await writeMask(join(dir, 'box', 'ground_truth', 'logical_anomalies', '000', '000.png'), 16, 16, [0, 0, 4, 4]);
    await writeMask(join(dir, 'box', 'ground_truth', 'logical_anomalies', '000', '001.png'), 16, 16, [8, 8, 16, 16]);
    assert.equal(await detectLayout(dir), 'loco');
    const c = await (await openDataset(dir)).load('box');
    assert.deepEqual(
      c.items.map((it) => it.defect),
      ['good', 'logical_anomalies'],
    );
    const m = await loadMask(c.items[1]!.masks, 16, 'reference', 'loco');
    let sum = 0;
    for (const v of m) sum += v;
    assert.equal(sum, 16 + 64);
    assert.equal(m[0], 1);
    assert.equal(m[15 * 16 + 15], 1);
    assert.equal(m[5 * 16 + 5], 0);
  } finally {
    await cleanup();
  }
});

test('plain folder: recursive, sorted by relative path, unlabeled', async () => {
  const { dir, cleanup } = await tempDir('folder');
  try {
    await writePng(join(dir, 'b.png'), 8, 8, 10);
    await writePng(join(dir, 'a', 'z.jpg.png'), 8, 8, 10);
    await writePng(join(dir, 'a', 'c', 'x.png'), 8, 8, 10);
    await writeFile(join(dir, 'notes.txt'), 'not an image');
    assert.equal(await detectLayout(dir), 'folder');
    const ds = await openDataset(dir);
    const c = await ds.load(ds.categories[0]!);
    assert.deepEqual(
      c.items.map((it) => [it.rel, it.defect, it.label, it.masks]),
      [
        ['a/c/x.png', 'a/c', null, null],
        ['a/z.jpg.png', 'a', null, null],
        ['b.png', '', null, null],
      ],
    );
  } finally {
    await cleanup();
  }
});

test('a missing data folder is a DatasetError naming it', async () => {
  await assert.rejects(
    openDataset('/no/such/folder/x'),
    (e: Error) => e instanceof DatasetError && e.message.includes('/no/such/folder/x'),
  );
});

test('mask rule reference: PIL bilinear then exactly 255; nonzero: nearest, any > 0', () => {
  // 4x4 -> 2x2 is antialiased: output pixel 0 reads source columns/rows 0..2 (weights 3/7, 3/7, 1/7)
  const src = new Uint8Array(16);
  for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) src[y * 4 + x] = 255;
  const bil = resizePilGray(src, 4, 4, 2, 2);
  assert.equal(bil[0], 255);
  // output pixel 1 reads columns 1..3 with weights 1/7, 3/7, 3/7: 255 * 4/7 = 145.7 -> 146
  assert.equal(bil[1], 146);
  assert.deepEqual([...binariseMask(src, 4, 4, 2, 'reference')], [1, 0, 0, 0]);
  assert.deepEqual([...binariseMask(src, 4, 4, 2, 'reference', 'visa')], [1, 1, 1, 1]);
  // nearest samples source (1,1),(3,1),(1,3),(3,3)
  const near = new Uint8Array(16);
  near[5] = 7;
  assert.deepEqual([...binariseMask(near, 4, 4, 2, 'nonzero')], [1, 0, 0, 0]);
});

test('mask binarisation matches the official masks_int and masks_float of the golden set', {
  skip: !existsSync(join(sharedDir, 'golden', 'bottle10.inputs.safetensors')) && 'no shared golden data',
}, async () => {
  const f = await SafetensorsFile.open(join(sharedDir, 'golden', 'bottle10.inputs.safetensors'));
  const ints = f.int32('masks_int'); // [10, 84, 84]
  const floats = f.float32('masks_float');
  const files = ['broken_large/000', 'broken_large/004', 'broken_small/000', 'contamination/002'];
  for (let k = 0; k < 10; k++) {
    const masks = k < 4 ? [join(sharedDir, 'data', 'bottle', 'ground_truth', `${files[k]}_mask.png`)] : null;
    const m = await loadMask(masks, 84, 'reference');
    let diff = 0;
    for (let i = 0; i < 84 * 84; i++) if (m[i] !== ints.data[k * 84 * 84 + i]) diff++;
    assert.equal(diff, 0, `image ${k}: ${diff} pixels differ from masks_int`);
  }
  const { decodeMask } = await import('../src/image/decode.js');
  const g = await decodeMask(join(sharedDir, 'data', 'bottle', 'ground_truth', 'broken_large', '000_mask.png'));
  const r = resizePilGray(g.data, g.width, g.height, 84, 84);
  for (let i = 0; i < 84 * 84; i++) assert.ok(Math.abs(r[i]! / 255 - floats.data[i]!) < 1e-6, `pixel ${i}`);
  f.close();
});
