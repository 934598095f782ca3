/**
 * The OpenAPI document: @fastify/swagger builds it from the route schemas; request bodies that
 * are not JSON (raw images, multipart) are added here. Served at /openapi.json and checked in as
 * docs/openapi.json (`musc api --print-openapi > docs/openapi.json`; a test keeps them equal).
 */
import type { SwaggerOptions } from '@fastify/swagger';
import { versions } from '../outputs/versions.js';

type Doc = Record<string, unknown> & { paths?: Record<string, Record<string, Record<string, unknown>>> };

const imageBody = {
  description: 'the image as the body (any format musc reads) or as a multipart/form-data file part',
  required: true,
  content: {
    'application/octet-stream': { schema: { type: 'string', format: 'binary' } },
    'image/*': { schema: { type: 'string', format: 'binary' } },
    'multipart/form-data': { schema: { type: 'object', properties: { image: { type: 'string', format: 'binary' } } } },
  },
};

const filesBody = (what: string) => ({
  description: what,
  required: true,
  content: {
    'multipart/form-data': {
      schema: { type: 'object', properties: { images: { type: 'array', items: { type: 'string', format: 'binary' } } } },
    },
  },
});

const BODIES: Record<string, unknown> = {
  '/v1/banks/{name}/predict': imageBody,
  '/v1/banks/{name}/predict-batch': filesBody('the images, one file part each'),
  '/v1/banks/{name}/upload': filesBody('images of the product, one file part each (field load=false: do not load when built)'),
};

/** adds the non-JSON request bodies and the bearer requirement */
function finish(doc: Doc): Doc {
  for (const [path, body] of Object.entries(BODIES)) {
    const op = doc.paths?.[path]?.post;
    if (op) op.requestBody = body;
  }
  return doc;
}

export function swaggerOptions(): SwaggerOptions {
  return {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'musc inspection service',
        description:
          'MuSc anomaly detection over saved banks: verdicts, scores and defect regions for new images. ' +
          'Bearer token required on every route except /, /healthz and /readyz when the service has one (always off loopback).',
        version: versions().musc,
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      tags: [{ name: 'banks' }, { name: 'predict' }, { name: 'operations' }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
    transformObject: (o) => finish(('openapiObject' in o ? o.openapiObject : o.swaggerObject) as Doc) as never,
  };
}
