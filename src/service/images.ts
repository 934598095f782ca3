/**
 * Images from a request: a raw body (Content-Type image/* or application/octet-stream) or the
 * file parts of a multipart/form-data body, each then decoded once by the project's decoder
 * (src/image/decode.ts), so that a bad image or a decompression bomb is refused with the same
 * reason `musc run` gives, before it takes the compute worker.
 */
import type { FastifyRequest } from 'fastify';
import { decodeRgbBytes, ImageDecodeError } from '../image/decode.js';
import type { InputImage } from './engine.js';
import { RequestError } from './errors.js';

const SAFE_NAME = /[^A-Za-z0-9._ -]/g;

/** a name for logs, JSON and upload files (never a path): other characters become '_', no leading dot */
export function imageName(raw: string | undefined, fallback: string): string {
  const n = (raw ?? '')
    .replace(SAFE_NAME, '_')
    .replace(/^[.\s]+/, '')
    .slice(0, 200);
  return n || fallback;
}

/** repeated names get '-2', '-3', ... (results are matched by name) */
function uniqueNames(images: InputImage[]): InputImage[] {
  const seen = new Map<string, number>();
  return images.map((im) => {
    const n = (seen.get(im.name) ?? 0) + 1;
    seen.set(im.name, n);
    return n === 1 ? im : { ...im, name: `${im.name}-${n}` };
  });
}

/** the images of a predict request (at most `max`) */
export async function requestImages(req: FastifyRequest, max: number, rawName?: string): Promise<InputImage[]> {
  if (req.isMultipart()) {
    const out: InputImage[] = [];
    for await (const part of req.files({ limits: { files: max } })) {
      out.push({ name: imageName(part.filename, `image-${out.length + 1}`), bytes: await part.toBuffer() });
    }
    if (out.length === 0) throw new RequestError(400, 'bad_request', 'the multipart body has no file part');
    return uniqueNames(out);
  }
  const body = req.body;
  if (!Buffer.isBuffer(body))
    throw new RequestError(
      415,
      'unsupported_media_type',
      'send the image as the body (Content-Type image/* or application/octet-stream) or as multipart/form-data',
    );
  return [{ name: imageName(rawName, 'image'), bytes: body }];
}

/** decodes every image; refuses the request (422) listing each bad one with its reason */
export async function checkImages(images: InputImage[], maxPixels: number): Promise<void> {
  const bad: { name: string; reason: string }[] = [];
  for (const im of images) {
    try {
      await decodeRgbBytes(im.name, im.bytes, { maxPixels });
    } catch (e) {
      if (!(e instanceof ImageDecodeError)) throw e;
      bad.push({ name: im.name, reason: e.reason.replace('raise it with --max-pixels', 'the service limit is --max-pixels') });
    }
  }
  if (bad.length) {
    const what = bad.map((b) => `${b.name}: ${b.reason}`).join('; ');
    throw new RequestError(
      422,
      'bad_image',
      `${bad.length === images.length && bad.length === 1 ? '' : `${bad.length} of ${images.length} images unusable: `}${what}`,
      bad,
    );
  }
}
