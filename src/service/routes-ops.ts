/** Operations: health, readiness, Prometheus metrics, the OpenAPI document and the web page. */
import type { FastifyInstance } from 'fastify';
import type { ServiceMetrics } from './metrics.js';
import { PAGE_CSS, PAGE_HTML, PAGE_SCRIPT } from './page.js';

export interface Lifecycle {
  /** false while starting and once draining */
  ready: boolean;
  draining: boolean;
}

const status = { type: 'object', required: ['status'], properties: { status: { type: 'string' }, banks: { type: 'integer' } } } as const;

export function opsRoutes(app: FastifyInstance, life: Lifecycle, metrics: ServiceMetrics, banksLoaded: () => number): void {
  app.get(
    '/healthz',
    { config: { public: true }, schema: { summary: 'the process answers', tags: ['operations'], security: [], response: { 200: status } } },
    async () => ({ status: 'ok' }),
  );

  app.get(
    '/readyz',
    {
      config: { public: true },
      schema: {
        summary: 'ready for requests (503 while starting or draining)',
        tags: ['operations'],
        security: [],
        response: { 200: status, 503: status },
      },
    },
    async (_req, reply) => {
      if (!life.ready || life.draining)
        return reply.code(503).send({ status: life.draining ? 'draining' : 'starting', banks: banksLoaded() });
      return { status: 'ready', banks: banksLoaded() };
    },
  );

  app.get(
    '/metrics',
    { schema: { summary: 'Prometheus metrics (text format)', tags: ['operations'], produces: ['text/plain'] } },
    async (_req, reply) => {
      const text = await metrics.registry.metrics();
      return reply.type(metrics.registry.contentType).send(text);
    },
  );

  app.get('/openapi.json', { schema: { summary: 'this document', tags: ['operations'] } }, async () => app.swagger());

  const page = (type: string, body: string) => async (_req: unknown, reply: import('fastify').FastifyReply) =>
    reply.type(type).header('Cache-Control', 'no-cache').send(body);
  app.get('/', { config: { public: true }, schema: { hide: true } }, page('text/html; charset=utf-8', PAGE_HTML));
  app.get('/ui.js', { config: { public: true }, schema: { hide: true } }, page('text/javascript; charset=utf-8', PAGE_SCRIPT));
  app.get('/ui.css', { config: { public: true }, schema: { hide: true } }, page('text/css; charset=utf-8', PAGE_CSS));
}
