/**
 * Predictions: one image (raw body or multipart) and batches (multipart). The request holds a
 * queue slot from its arrival (server.ts); here the images are read and checked, then scored
 * in the slot's turn.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { BankRegistry, LoadedBank } from './banks.js';
import type { ServiceConfig } from './config.js';
import type { ImagePrediction, PredictOutcome, RenderKind, ServiceEngine } from './engine.js';
import { RequestError } from './errors.js';
import { requestImages } from './images.js';
import type { ServiceMetrics } from './metrics.js';
import { bankNameParam, batchResponse, commonErrors, predictQuery, predictResponse } from './schemas.js';

interface PredictQuery {
  include?: string;
  render?: RenderKind;
  name?: string;
}
type PredictReq = FastifyRequest<{ Params: { name: string }; Querystring: PredictQuery }>;

const refusals = {
  ...commonErrors,
  404: { $ref: 'Error#' },
  413: { $ref: 'Error#' },
  415: { $ref: 'Error#' },
  422: { $ref: 'Error#' },
  429: { $ref: 'Error#' },
};

function withImages(o: PredictOutcome): ImagePrediction & { images?: Record<string, string> } {
  const kinds = Object.keys(o.renders) as RenderKind[];
  if (kinds.length === 0) return o.prediction;
  return { ...o.prediction, images: Object.fromEntries(kinds.map((k) => [k, o.renders[k]!.toString('base64')])) };
}

export function predictRoutes(
  app: FastifyInstance,
  cfg: ServiceConfig,
  registry: BankRegistry,
  engine: ServiceEngine,
  metrics: ServiceMetrics,
): void {
  async function score(req: PredictReq, max: number): Promise<{ bank: LoadedBank; out: PredictOutcome[] }> {
    const use = registry.use(req.params.name);
    try {
      const images = await requestImages(req, max, cfg.maxBodyBytes, req.query.name);
      const renders = [
        ...new Set([
          ...(req.query.include ? (req.query.include.split(',') as RenderKind[]) : []),
          ...(req.query.render ? [req.query.render] : []),
        ]),
      ];
      const t0 = performance.now();
      let queueMs = 0;
      const out = await req.slot!.run(() => {
        queueMs = performance.now() - t0;
        // a client that gave up while waiting costs no computation
        if (req.socket.destroyed) throw new RequestError(499, 'client_closed', 'the client closed the connection before its turn');
        return engine.predict(use.loaded.bank, images, renders, { maxPixels: cfg.maxPixels });
      });
      const totalMs = performance.now() - req.arrivedAt;
      for (const o of out) o.prediction.timings = { ...o.prediction.timings, queueMs, totalMs };
      for (const o of out) metrics.imagesScored.inc({ verdict: o.prediction.verdict });
      return { bank: use.loaded, out };
    } finally {
      use.done();
    }
  }

  app.post<{ Params: { name: string }; Querystring: PredictQuery }>(
    '/v1/banks/:name/predict',
    {
      config: { queued: true },
      schema: {
        summary: 'score one image against a loaded bank: verdict, scores, regions, timings (optionally PNGs)',
        tags: ['predict'],
        params: bankNameParam,
        querystring: predictQuery,
        response: { 200: predictResponse, ...refusals },
      },
    },
    async (req, reply: FastifyReply) => {
      const { bank, out } = await score(req, 1);
      const o = out[0]!;
      if (req.query.render) {
        const p = o.prediction;
        return reply
          .type('image/png')
          .headers({
            'X-Musc-Verdict': p.verdict,
            'X-Musc-Score': String(p.score),
            'X-Musc-Normalized': String(p.normalized),
            'X-Musc-Bank-Version': String(bank.version),
          })
          .send(o.renders[req.query.render]);
      }
      return { bank: bank.name, bankVersion: bank.version, prediction: withImages(o) };
    },
  );

  app.post<{ Params: { name: string }; Querystring: PredictQuery }>(
    '/v1/banks/:name/predict-batch',
    {
      config: { queued: true },
      schema: {
        summary:
          'score up to --max-batch images (multipart file parts) in one request; any unusable image refuses the batch (422, each named)',
        tags: ['predict'],
        params: bankNameParam,
        querystring: { ...predictQuery, properties: { include: predictQuery.properties.include } },
        response: { 200: batchResponse, ...refusals },
      },
    },
    async (req) => {
      const { bank, out } = await score(req, cfg.maxBatch);
      return { bank: bank.name, bankVersion: bank.version, predictions: out.map(withImages) };
    },
  );
}
