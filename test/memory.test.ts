/** Issue 16: --max-memory messages agree with themselves; the estimate counts readable images only. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { autoDivideNum, readablePaths } from '../src/pipeline/memory.js';
import { estimateSubsetBytes } from '../src/scoring/memory.js';
import { tempDir } from './helpers/cli-env.js';
import { pngOf } from './helpers/corpus.js';

const dims = [{ h: 8, w: 8, c: 64 }];
const paths = Array.from({ length: 13 }, (_, i) => `/d/test/good/${String(i).padStart(3, '0')}.png`);

test('too small a budget: the message names the subset it could reach and a need above the budget', () => {
  const S = 64;
  const maxBytes = estimateSubsetBytes(5, dims, S) + 1; // enough for 5 images, but 13 images give subsets of 6 and 7 at most 2
  assert.throws(
    () => autoDivideNum(paths, dims, S, maxBytes, 1, 42),
    (e: Error) => {
      const tooSmall = new RegExp(
        /--max-memory (\d+) MB is too small: 13 readable images in at most 2 subsets .* /.source +
          /largest subset of (\d+) images, which needs about (\d+) MB/.source,
      );
      const m = tooSmall.exec(e.message);
      assert.ok(m, e.message);
      assert.equal(Number(m[2]), 7);
      assert.ok(Number(m[3]) * 2 ** 20 >= maxBytes, `the need (${m[3]} MB) must exceed the budget: ${e.message}`);
      return true;
    },
  );
});

test('unreadable images are not counted: the estimate is for the readable ones', async () => {
  const { dir, cleanup } = await tempDir('mem');
  try {
    const files: string[] = [];
    for (let i = 0; i < 10; i++) {
      const f = join(dir, `${i}.png`);
      writeFileSync(f, i < 7 ? await pngOf(16, 16, i) : Buffer.from('BM this is text, not an image'));
      files.push(f);
    }
    const ok = await readablePaths(files);
    assert.equal(ok.size, 7);
    const S = 32;
    const a = autoDivideNum(files, dims, S, 1e12, 1, 42, undefined, ok);
    assert.equal(a.divideNum, 1);
    assert.equal(a.bytes, estimateSubsetBytes(7, dims, S), 'counts the 7 readable images, not 10');
  } finally {
    await cleanup();
  }
});
