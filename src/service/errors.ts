/**
 * Errors to HTTP answers, in one place. Every 4xx names the problem; a 5xx says only
 * 'internal error' (the details go to the log).
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { QueueFullError } from './queue.js';

/** a request the service refuses, with its status */
export class RequestError extends Error {
  override name = 'RequestError';
  constructor(
    public readonly status: number,
    public readonly kind: string,
    message: string,
    public readonly images?: { name: string; reason: string }[],
  ) {
    super(message);
  }
}

const BY_NAME: Record<string, [number, string]> = {
  BankNameError: [400, 'bad_request'],
  PathRefusedError: [400, 'bad_request'],
  BankNotFoundError: [404, 'not_found'],
  ImageDecodeError: [422, 'bad_image'],
  BankError: [422, 'bad_bank'],
  // a bank this service cannot use: built with other weights or settings, weights not on this machine
  ConfigError: [422, 'bad_bank'],
  MissingWeightsError: [422, 'bad_bank'],
};

const KIND_BY_STATUS: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  406: 'not_acceptable',
  409: 'conflict',
  413: 'too_large',
  415: 'unsupported_media_type',
  422: 'bad_image',
  429: 'queue_full',
  503: 'unavailable',
};

export function errorReply(log: (line: string) => void) {
  return (e: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): void => {
    if (e instanceof QueueFullError) {
      void reply.code(429).header('Retry-After', String(e.retryAfterSeconds)).send({ error: 'queue_full', message: e.message });
      return;
    }
    if (e instanceof RequestError) {
      void reply.code(e.status).send({ error: e.kind, message: e.message, ...(e.images ? { images: e.images } : {}) });
      return;
    }
    const named = BY_NAME[e.name];
    if (named) {
      void reply.code(named[0]).send({ error: named[1], message: e.message });
      return;
    }
    const status = (e as FastifyError).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      void reply.code(status).send({ error: KIND_BY_STATUS[status] ?? 'bad_request', message: e.message });
      return;
    }
    log(`error: ${req.method} ${req.url}: ${e.stack ?? e.message}`);
    void reply.code(500).send({ error: 'internal', message: 'internal error' });
  };
}
