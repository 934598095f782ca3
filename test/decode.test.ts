/** Issue 16: BMP messages: a text file starting with "BM" is not a bomb; a malformed BMP says what is wrong. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRgbBytes, ImageDecodeError } from '../src/image/decode.js';
import { bmpOf } from './helpers/corpus.js';

const fails = async (bytes: Buffer, re: RegExp): Promise<void> => {
  await assert.rejects(decodeRgbBytes('x.bmp', bytes), (e: unknown) => {
    assert.ok(e instanceof ImageDecodeError, String(e));
    assert.match(e.message, re);
    assert.doesNotMatch(e.message, /decompression bomb|this\[bitn\]|is not a function/);
    return true;
  });
};

test('a text file starting with "BM" is not a decompression bomb', async () => {
  await fails(
    Buffer.from('BMW service history\n'.repeat(20)),
    /x\.bmp: not a valid bmp file \(starts with 'BM' but its header size field is \d+, not a BMP header\)/,
  );
  await fails(Buffer.from('BM short'), /not a valid bmp file \(starts with 'BM' but is only 8 bytes\)/);
});

test('malformed BMP headers give clear errors; a valid BMP still decodes; a real bomb is still named', async () => {
  const good = bmpOf(8, 6, 3);
  const img = await decodeRgbBytes('ok.bmp', good);
  assert.deepEqual([img.width, img.height], [8, 6]);
  const bits = Buffer.from(good);
  bits.writeUInt16LE(7, 28);
  await fails(bits, /unsupported or invalid bmp bit depth 7/);
  const planes = Buffer.from(good);
  planes.writeUInt16LE(3, 26);
  await fails(planes, /3 colour planes/);
  const comp = Buffer.from(good);
  comp.writeUInt32LE(4, 30);
  await fails(comp, /unsupported bmp compression 4/);
  const truncated = good.subarray(0, 60);
  await fails(truncated, /corrupt or truncated bmp file|truncated bmp file/);
  const bomb = Buffer.from(good);
  bomb.writeInt32LE(100_000, 18);
  bomb.writeInt32LE(100_000, 22);
  await assert.rejects(decodeRgbBytes('b.bmp', bomb), /100000x100000 = 10000000000 pixels, over the limit/);
});
