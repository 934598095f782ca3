/** Bank builds as jobs: POST starts one (202 + Location), GET /v1/jobs/:id follows it. */
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { checkBankName } from './banks.js';
import type { ServiceConfig } from './config.js';
import { RequestError } from './errors.js';
import { imageName } from './images.js';
import type { JobManager, JobSpec, JobView } from './jobs.js';
import { folderUnder } from './paths.js';
import { bankNameParam, buildBody, commonErrors } from './schemas.js';

/** most images in one uploaded build */
export const MAX_UPLOAD_IMAGES = 1000;

/** multipart upload: file parts to a new temporary folder; field 'load' = 'false' to skip loading */
async function uploadSpec(req: FastifyRequest, bank: string): Promise<JobSpec> {
  const dir = await mkdtemp(join(tmpdir(), 'musc-api-upload-'));
  let load = true;
  let n = 0;
  const used = new Set<string>();
  try {
    for await (const part of req.parts({ limits: { files: MAX_UPLOAD_IMAGES } })) {
      if (part.type === 'field') {
        if (part.fieldname === 'load') load = String(part.value) !== 'false';
        continue;
      }
      n++;
      // the file's own (sanitised) name, '-2', '-3' ... on a repeat; never a path
      const base = imageName(part.filename, `image-${n}`);
      let name = base;
      for (let k = 2; used.has(name.toLowerCase()); k++) name = base.replace(/(\.[^.]*)?$/, `-${k}$1`);
      used.add(name.toLowerCase());
      await pipeline(part.file, createWriteStream(join(dir, name)));
      if (part.file.truncated) throw new RequestError(413, 'too_large', `${part.filename}: over the file size limit`);
    }
    if (n === 0) throw new RequestError(400, 'bad_request', 'the upload has no image file parts');
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    throw e;
  }
  return { bank, images: dir, cleanup: dir, load };
}

export function jobRoutes(app: FastifyInstance, cfg: ServiceConfig, jobs: JobManager): void {
  const accepted = { 202: { $ref: 'Job#' }, ...commonErrors, 413: { $ref: 'Error#' }, 415: { $ref: 'Error#' }, 429: { $ref: 'Error#' } };
  async function submit(spec: JobSpec, reply: FastifyReply): Promise<FastifyReply> {
    let job: JobView;
    try {
      job = jobs.submit(spec);
    } catch (e) {
      if (spec.cleanup) await rm(spec.cleanup, { recursive: true, force: true });
      throw e;
    }
    return reply.code(202).header('Location', `/v1/jobs/${job.id}`).send(job);
  }

  app.post<{ Params: { name: string }; Body: { folder: string; load?: boolean } }>(
    '/v1/banks/:name/build',
    {
      schema: {
        summary: 'build (or rebuild) bank NAME from a folder of images under the data root (--data-root); answers 202 with the job',
        tags: ['banks'],
        params: bankNameParam,
        body: buildBody,
        response: accepted,
      },
    },
    async (req, reply) => {
      const bank = checkBankName(req.params.name);
      if (!cfg.dataRoot)
        throw new RequestError(
          400,
          'bad_request',
          'this service has no data root (--data-root): upload the images to /v1/banks/NAME/upload',
        );
      return submit({ bank, images: await folderUnder(cfg.dataRoot, req.body.folder), load: req.body.load ?? true }, reply);
    },
  );

  app.post<{ Params: { name: string } }>(
    '/v1/banks/:name/upload',
    {
      schema: {
        summary:
          'build (or rebuild) bank NAME from uploaded images (multipart file parts; field load=false to skip loading); ' +
          'answers 202 with the job',
        tags: ['banks'],
        params: bankNameParam,
        response: accepted,
      },
    },
    async (req, reply) => {
      const bank = checkBankName(req.params.name);
      if (!req.isMultipart()) throw new RequestError(415, 'unsupported_media_type', 'send the images as multipart/form-data file parts');
      return submit(await uploadSpec(req, bank), reply);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/jobs/:id',
    {
      schema: {
        summary: 'state and progress of a build job',
        tags: ['banks'],
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', format: 'uuid' } } },
        response: { 200: { $ref: 'Job#' }, ...commonErrors, 404: { $ref: 'Error#' } },
      },
    },
    async (req) => {
      const job = jobs.get(req.params.id);
      if (!job) throw new RequestError(404, 'not_found', `no job ${req.params.id}`);
      return job;
    },
  );
}
