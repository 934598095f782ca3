/** /v1/banks: list, load (or hot-swap), unload. */
import type { FastifyInstance } from 'fastify';
import type { BankRegistry } from './banks.js';
import { bankNameParam, commonErrors } from './schemas.js';

export function bankRoutes(app: FastifyInstance, registry: BankRegistry): void {
  app.get(
    '/v1/banks',
    {
      schema: {
        summary: 'banks in the banks folder, with their load state',
        tags: ['banks'],
        response: {
          200: { type: 'object', required: ['banks'], properties: { banks: { type: 'array', items: { $ref: 'Bank#' } } } },
          ...commonErrors,
        },
      },
    },
    async () => ({ banks: await registry.list() }),
  );

  app.post<{ Params: { name: string } }>(
    '/v1/banks/:name/load',
    {
      schema: {
        summary: 'load a bank, or load its new version under the same name (hot swap: requests in flight finish with the old one)',
        tags: ['banks'],
        params: bankNameParam,
        response: { 200: { $ref: 'Bank#' }, ...commonErrors, 404: { $ref: 'Error#' }, 422: { $ref: 'Error#' } },
      },
    },
    async (req) => {
      const l = await registry.load(req.params.name);
      return { name: l.name, loaded: true, version: l.version, loadedAt: l.loadedAt, info: l.bank.info };
    },
  );

  app.post<{ Params: { name: string } }>(
    '/v1/banks/:name/unload',
    {
      schema: {
        summary: 'unload a bank (requests in flight finish with it)',
        tags: ['banks'],
        params: bankNameParam,
        response: {
          200: { type: 'object', required: ['name', 'unloaded'], properties: { name: { type: 'string' }, unloaded: { type: 'boolean' } } },
          ...commonErrors,
        },
      },
    },
    async (req) => ({ name: req.params.name, unloaded: registry.unload(req.params.name) }),
  );
}
