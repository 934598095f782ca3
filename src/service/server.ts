/**
 * `musc api`: the inspection service on fastify. Order of the request hooks: the Host check on
 * loopback (no DNS rebinding), the bearer token, then a queue slot for prediction routes (429
 * before the body is read when none is free). Security headers come from @fastify/helmet.
 * close() drains: readiness goes 503, the listener stops, requests in flight complete (or are
 * cut after drainTimeoutMs), a running build job gets drainTimeoutMs to finish (then it is
 * cancelled: it stops at its next step, its temporary removed, and is logged as cancelled); the
 * caller then stops the compute worker (engine.close()).
 */

import type { AddressInfo } from 'node:net';
import helmet from '@fastify/helmet';
import multipart from '@fastify/multipart';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { hostName, isLoopbackAddress } from '../report/serve.js';
import { TokenCheck } from './auth.js';
import { BankRegistry } from './banks.js';
import type { ServiceConfig } from './config.js';
import type { ServiceEngine } from './engine.js';
import { errorReply, RequestError } from './errors.js';
import { JobManager, removeStaleBuilds } from './jobs.js';
import { createMetrics, type ServiceMetrics } from './metrics.js';
import { swaggerOptions } from './openapi.js';
import { type Slot, WorkQueue } from './queue.js';
import { bankRoutes } from './routes-banks.js';
import { jobRoutes } from './routes-jobs.js';
import { type Lifecycle, opsRoutes } from './routes-ops.js';
import { predictRoutes } from './routes-predict.js';
import { SHARED_SCHEMAS } from './schemas.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** no token needed (page, health) */
    public?: boolean;
    /** takes a prediction queue slot on arrival */
    queued?: boolean;
  }
  interface FastifyRequest {
    slot?: Slot;
    /** performance.now() at onRequest */
    arrivedAt: number;
  }
}

/** how long a cancelled build may take to reach its next step */
const STOP_WAIT_MS = 60_000;

export interface Service {
  app: FastifyInstance;
  registry: BankRegistry;
  queue: WorkQueue;
  jobs: JobManager;
  metrics: ServiceMetrics;
  life: Lifecycle;
  /** http://host:port after listen() */
  url: string;
  listen(): Promise<string>;
  /** drain and stop (idempotent) */
  close(): Promise<void>;
}

function addHooks(app: FastifyInstance, cfg: ServiceConfig, queue: WorkQueue, metrics: ServiceMetrics): void {
  const check = cfg.token !== undefined ? new TokenCheck(cfg.token) : null;
  const loopback = isLoopbackAddress(cfg.host);
  app.decorateRequest('arrivedAt', 0);
  app.addHook('onRequest', async (req, reply) => {
    req.arrivedAt = performance.now();
    if (loopback && !isLoopbackAddress(hostName(req.headers.host ?? '')))
      throw new RequestError(403, 'forbidden', 'Host header does not name this machine');
    if (check && !req.routeOptions.config.public && !check.accepts(req.headers.authorization)) {
      void reply.header('WWW-Authenticate', 'Bearer');
      throw new RequestError(401, 'unauthorized', 'missing or wrong bearer token (Authorization: Bearer TOKEN)');
    }
    if (req.routeOptions.config.queued) {
      try {
        req.slot = queue.acquire();
      } catch (e) {
        metrics.rejected.inc({ reason: 'queue_full' });
        throw e;
      }
      // answered or connection gone: the slot is freed (after its task, if one was queued)
      const slot = req.slot;
      reply.raw.once('close', () => slot.release());
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.requests.inc({ method: req.method, route, status: String(reply.statusCode) });
    metrics.latency.observe({ method: req.method, route }, reply.elapsedTime / 1000);
  });
}

/**
 * Stops listening, lets requests in flight complete (connections cut after drainMs), gives a
 * running build drainMs to finish, then cancels it: it stops between two steps (never inside an
 * ONNX Runtime call, which the compute worker's end would abort).
 */
async function drain(app: FastifyInstance, jobs: JobManager, drainMs: number, log: (line: string) => void): Promise<void> {
  const cut = setTimeout(() => app.server.closeAllConnections(), drainMs);
  const ended = (ms: number): Promise<boolean> =>
    Promise.race([jobs.idle().then(() => true), new Promise<boolean>((ok) => setTimeout(() => ok(false), ms).unref())]);
  try {
    await app.close();
    if (jobs.active > 0 && !(await ended(drainMs))) {
      jobs.cancel();
      if (!(await ended(STOP_WAIT_MS))) log(`musc api: a build job did not stop within ${STOP_WAIT_MS / 1000} s`);
    }
  } finally {
    clearTimeout(cut);
  }
}

export async function createService(
  cfg: ServiceConfig,
  engine: ServiceEngine,
  log: (line: string) => void = (l) => process.stderr.write(l + '\n'),
): Promise<Service> {
  // requestTimeout: a request must arrive whole within 60 s (a slow upload cannot hold a queue slot for long)
  const app = Fastify({
    logger: false,
    bodyLimit: cfg.maxBodyBytes,
    requestTimeout: 60_000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { removeAdditional: false } },
  });
  const queue = new WorkQueue(cfg.queueDepth);
  const registry = new BankRegistry(cfg.banksDir, engine);
  const metrics = createMetrics(
    () => queue.size,
    () => queue.busy,
    () => registry.size,
  );
  const jobs = new JobManager(engine, registry, cfg.maxPendingJobs, cfg.maxPixels, (job) => {
    metrics.jobs.inc({ state: job.state });
    if (job.state === 'failed')
      log(`musc api: build job ${job.id} (bank ${job.bank}) ${job.error?.startsWith('cancelled') ? '' : 'failed: '}${job.error}`);
  });
  const life: Lifecycle = { ready: false, draining: false };

  for (const s of SHARED_SCHEMAS) app.addSchema(s);
  await app.register(swagger, swaggerOptions());
  await app.register(helmet, {
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:', 'blob:'],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
    },
    frameguard: { action: 'deny' },
    referrerPolicy: { policy: 'no-referrer' },
    strictTransportSecurity: false,
    crossOriginEmbedderPolicy: false,
  });
  await app.register(multipart, { limits: { fileSize: cfg.maxBodyBytes, files: cfg.maxBatch, fields: 16, parts: 2000 } });
  app.addContentTypeParser(
    /^(image\/[a-z0-9.+-]+|application\/octet-stream)$/i,
    { parseAs: 'buffer', bodyLimit: cfg.maxBodyBytes },
    (_req, body, done) => done(null, body),
  );
  app.setErrorHandler(errorReply(log));
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}` });
  });
  addHooks(app, cfg, queue, metrics);
  opsRoutes(app, life, metrics, () => registry.size);
  bankRoutes(app, registry);
  predictRoutes(app, cfg, registry, engine, metrics);
  jobRoutes(app, cfg, jobs);
  await app.ready();
  await removeStaleBuilds(cfg.banksDir);

  let closing: Promise<void> | null = null;
  const svc: Service = {
    app,
    registry,
    queue,
    jobs,
    metrics,
    life,
    url: '',
    async listen() {
      await app.listen({ host: cfg.host, port: cfg.port });
      const a = app.server.address() as AddressInfo;
      svc.url = `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
      life.ready = true;
      return svc.url;
    },
    close() {
      if (!closing) {
        life.draining = true;
        closing = drain(app, jobs, cfg.drainTimeoutMs, log).then(() => registry.clear());
      }
      return closing;
    },
  };
  return svc;
}
