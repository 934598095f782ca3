/**
 * Images from a request: a raw body (Content-Type image/* or application/octet-stream) or the
 * file parts of a multipart/form-data body, at most --max-body-mb in all (a multipart body stops
 * at the part that crosses it). They are decoded once, by the bank library in the request's turn
 * (so at most one request's images are decoded at a time); an image that cannot be decoded, or a
 * decompression bomb, is refused with the decoder's reason (bank-engine.ts: 422).
 */
import type { FastifyRequest } from 'fastify';
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
export async function requestImages(req: FastifyRequest, max: number, maxBytes: number, rawName?: string): Promise<InputImage[]> {
  if (req.isMultipart()) {
    const out: InputImage[] = [];
    let total = 0;
    for await (const part of req.files({ limits: { files: max } })) {
      out.push({ name: imageName(part.filename, `image-${out.length + 1}`), bytes: await part.toBuffer() });
      total += out[out.length - 1]!.bytes.length;
      if (total > maxBytes) throw new RequestError(413, 'too_large', `the images are over ${maxBytes} bytes in all (--max-body-mb)`);
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
