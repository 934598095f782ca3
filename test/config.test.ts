import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import {
  DEFAULT_SETTINGS,
  ConfigError,
  loadConfigFile,
  mergeSettings,
  rscinWindows,
  validateSettings,
  parseIntList,
} from '../src/config.js';
import { tempDir } from './helpers/cli-env.js';
import { backboneLoadOptions } from '../src/pipeline/run-dataset.js';
import { defaultDegrees, defaultRList, FUSED_STAGE_R_LIST, resolveDegrees, stageLabel } from '../src/core/defaults.js';

test('defaults are the reference settings', () => {
  const s = mergeSettings({}, {});
  assert.equal(s.r_list, undefined); // by the loaded backbone (defaultRList)
  assert.deepEqual(s.interval, [0, 0.3]);
  assert.equal(s.divide_num, 1);
  assert.equal(s.backbone, 'resnet50');
  assert.equal(s.k_list, undefined); // dataset default applied later
  assert.equal(s.image_size, undefined); // the backbone's
  assert.equal(s.category, 'all');
  assert.deepEqual(s, { ...DEFAULT_SETTINGS });
});

test('YAML file with the reference key names; flags override the file', async () => {
  const { dir, cleanup } = await tempDir('cfg');
  try {
    const f = join(dir, 'musc.yaml');
    await writeFile(
      f,
      'backbone_name: dinov2-vitb14\nimg_resize: 448\nfeature_layers: [2, 5, 8, 11]\nr_list: [1, 3]\n' +
        'divide_num: 2\nvis_type: whole_norm\nclass_name: ALL\ndataset_name: mvtec_ad\nbatch_size: 8\n',
    );
    const file = await loadConfigFile(f);
    assert.deepEqual(file, {
      backbone: 'dinov2-vitb14',
      image_size: 448,
      stages: [2, 5, 8, 11],
      r_list: [1, 3],
      divide_num: 2,
      norm: 'category',
      category: 'all',
      dataset: 'mvtec',
      batch_size: 8,
    });
    const s = mergeSettings(file, { batch_size: 2, r_list: [5] });
    assert.equal(s.batch_size, 2);
    assert.deepEqual(s.r_list, [5]);
    assert.equal(s.image_size, 448);
    assert.equal(s.divide_num, 2);
    const j = join(dir, 'c.json');
    await writeFile(j, JSON.stringify({ k_list: [1, 8, 9], interval: [0.1, 0.5], heatmaps: 'none' }));
    const sj = mergeSettings(await loadConfigFile(j), {});
    assert.deepEqual(sj.k_list, [1, 8, 9]);
    assert.deepEqual(sj.interval, [0.1, 0.5]);
    assert.equal(sj.heatmaps, 'none');
  } finally {
    await cleanup();
  }
});

test('config errors name the file and the key', async () => {
  const { dir, cleanup } = await tempDir('cfgerr');
  try {
    const f = join(dir, 'bad.yaml');
    await writeFile(f, 'r_list: [1, x]\nbatch_size: 0\ncolour: red\n');
    await assert.rejects(loadConfigFile(f), (e: Error) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /bad\.yaml/);
      assert.match(e.message, /'r_list\.1' must be integer/);
      assert.match(e.message, /'batch_size' must be >= 1/);
      assert.match(e.message, /unknown key 'colour'/);
      return true;
    });
    await writeFile(f, 'a: [1, 2\n');
    await assert.rejects(loadConfigFile(f), /not valid YAML/);
    await assert.rejects(loadConfigFile(join(dir, 'none.yaml')), /file not found/);
    assert.throws(() => validateSettings({ interval: [0.5, 0.2] }, 'x'), /'interval' must be lo,hi with 0 <= lo < hi <= 1/);
    assert.throws(
      () => validateSettings({ mask_rule: 'any' }, 'x'),
      /'mask_rule' must be equal to one of the allowed values \(reference, nonzero\)/,
    );
    assert.throws(() => validateSettings([1], 'x'), /expected a mapping/);
    assert.throws(() => parseIntList('1,a', '--r-list'), /--r-list: expected a list/);
    assert.deepEqual(parseIntList('1, 3 5', '--r-list'), [1, 3, 5]);
  } finally {
    await cleanup();
  }
});

test('issue 16: every setting checked up front: even r, interval outside [0,1], __proto__ keys', async () => {
  assert.throws(
    () => validateSettings({ r_list: [2] }, 'x'),
    (e: unknown) => e instanceof ConfigError && /'r_list' must be odd integers.*got 2/.test(e.message),
  );
  assert.throws(() => mergeSettings({}, { r_list: [1, 4] }), /must be odd integers/);
  assert.throws(() => validateSettings({ interval: [0, 2] }, 'x'), /'interval' must be lo,hi with 0 <= lo < hi <= 1/);
  assert.deepEqual(validateSettings({ interval: [0, 1], r_list: [1, 3, 5, 7] }, 'x'), { interval: [0, 1], r_list: [1, 3, 5, 7] });
  const { dir, cleanup } = await tempDir('cfgproto');
  try {
    for (const [name, text] of [
      ['p.json', '{"__proto__": {"batch_size": 0}}'],
      ['p.yaml', '__proto__:\n  batch_size: 0\n'],
      ['c.json', '{"constructor": 1}'],
    ] as const) {
      const f = join(dir, name);
      await writeFile(f, text);
      await assert.rejects(loadConfigFile(f), (e: unknown) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, new RegExp(`${name}: key '(__proto__|constructor)' is not a setting`));
        assert.doesNotMatch(e.message, /object Object/);
        return true;
      });
    }
  } finally {
    await cleanup();
  }
});

test('issue 17: accuracy settings: image score rule, RsCIN auto, --preset reference restores the reference choices', async () => {
  const d = mergeSettings({}, {});
  assert.equal(d.image_score, 'top:0.025');
  assert.equal(d.rscin, 'auto');
  assert.equal(d.border_pad, undefined); // the backbone's (ResNets: 0)
  assert.equal(d.fuse_sizes, undefined); // runs: the ResNet entry's (resnet50: 320 with 224)
  assert.equal(backboneLoadOptions(d).fuseSizes, 'auto');
  assert.deepEqual(backboneLoadOptions({ ...d, fuse_sizes: [384] }).fuseSizes, [384]);
  const ref = mergeSettings({}, { preset: 'reference' });
  assert.deepEqual([ref.image_score, ref.rscin, ref.border_pad, ref.fuse_sizes, ref.r_list], ['max', 'on', 0, [], [1, 3, 5]]);
  // LNAMD degrees: explicit r_list wins; else r = 1,5 when input sizes are fused, the paper's 1,3,5 otherwise
  assert.deepEqual(d.r_list ?? defaultRList([320]), [1, 5]);
  assert.deepEqual(d.r_list ?? defaultRList([]), [1, 3, 5]);
  assert.deepEqual(d.r_list ?? defaultRList(undefined), [1, 3, 5]); // backbones without fusion (ViTs)
  assert.deepEqual(ref.r_list ?? defaultRList([320]), [1, 3, 5]);
  assert.deepEqual(mergeSettings({}, { r_list: [3] }).r_list ?? defaultRList([320]), [3]);
  // the degrees of a run or bank: a fused ResNet at layers 2,3 has per-stage lists; explicit lists win, r_list next
  const resnet = { fuseSizes: [320], stages: [2, 3] };
  assert.deepEqual(defaultDegrees(resnet), {
    rList: [1, 3, 5, 7],
    stageRList: [
      [1, 3],
      [1, 5, 7],
    ],
  });
  assert.deepEqual(defaultDegrees({ fuseSizes: [320], stages: [1, 2, 3] }), { rList: [1, 5] });
  assert.deepEqual(defaultDegrees({ fuseSizes: [], stages: [2, 3] }), { rList: [1, 3, 5] });
  assert.deepEqual(defaultDegrees({ stages: [3, 6, 9, 12] }), { rList: [1, 3, 5] }); // ViTs
  assert.deepEqual(resolveDegrees(resnet, ref.r_list, ref.stage_r_list), { rList: [1, 3, 5] }); // --preset reference
  assert.deepEqual(resolveDegrees(resnet, [1, 5], undefined), { rList: [1, 5] });
  assert.deepEqual(resolveDegrees(resnet, [1, 5], [[3], [1, 3]]), { rList: [1, 3], stageRList: [[3], [1, 3]] });
  defaultDegrees(resnet).stageRList![0]!.push(9); // a copy: the default is unchanged
  assert.deepEqual(FUSED_STAGE_R_LIST, [
    [1, 3],
    [1, 5, 7],
  ]);
  assert.equal(stageLabel(FUSED_STAGE_R_LIST), '1,3/1,5,7');
  assert.deepEqual(backboneLoadOptions(ref).fuseSizes, []);
  assert.throws(() => validateSettings({ fuse_sizes: [300] }, 'x.yaml'), /x\.yaml: 'fuse_sizes/);
  // explicit keys win over the preset, from the file or the flags
  assert.equal(mergeSettings({ preset: 'reference' }, { image_score: 'top:0.01' }).image_score, 'top:0.01');
  assert.equal(mergeSettings({ preset: 'reference', border_pad: 32 }, {}).border_pad, 32);
  assert.throws(
    () => validateSettings({ image_score: 'top:2' }, 'x.yaml'),
    (e: unknown) => e instanceof ConfigError && /'image_score'.*top:F/.test((e as Error).message),
  );
  assert.throws(() => validateSettings({ image_score: 'mean' }, 'x.yaml'), /x\.yaml: 'image_score'/);
  assert.throws(() => validateSettings({ preset: 'fast' }, 'x.yaml'), /preset/);
  // RsCIN windows: explicit k_list wins; auto = off for ResNets, the dataset's windows otherwise
  assert.deepEqual(rscinWindows({ rscin: 'auto' }, [1, 2, 3], 'resnet'), [0]);
  assert.deepEqual(rscinWindows({ rscin: 'auto' }, [1, 8, 9], 'clip'), [1, 8, 9]);
  assert.deepEqual(rscinWindows({ rscin: 'auto' }, [1, 2, 3], undefined), [1, 2, 3]);
  assert.deepEqual(rscinWindows({ rscin: 'on' }, [1, 2, 3], 'resnet'), [1, 2, 3]);
  assert.deepEqual(rscinWindows({ rscin: 'off' }, [1, 2, 3], 'clip'), [0]);
  assert.deepEqual(rscinWindows({ rscin: 'off', k_list: [1, 2] }, [1, 2, 3], 'resnet'), [1, 2]);
});
