/**
 * JSON schemas of the API: fastify validates requests with them, serialises responses with
 * them, and @fastify/swagger turns them into the OpenAPI document (docs/openapi.json).
 */
export const errorSchema = {
  $id: 'Error',
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: { type: 'string', description: 'machine-readable kind: bad_request, unauthorized, not_found, queue_full, bad_image, ...' },
    message: { type: 'string', description: 'what was wrong, in words' },
    images: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, reason: { type: 'string' } } } },
  },
} as const;

export const bankNameParam = {
  type: 'object',
  required: ['name'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$', description: 'bank name (NAME.bank in the banks folder)' },
  },
} as const;

export const bankSchema = {
  $id: 'Bank',
  type: 'object',
  required: ['name', 'loaded'],
  properties: {
    name: { type: 'string' },
    loaded: { type: 'boolean' },
    version: { type: 'integer', description: '1 at the first load, +1 at each hot swap' },
    loadedAt: { type: 'string', format: 'date-time' },
    info: { type: 'object', additionalProperties: true, description: 'settings and calibration recorded in the bank' },
  },
} as const;

export const regionSchema = {
  $id: 'Region',
  type: 'object',
  description: 'a connected region of the defect mask, in original image pixels',
  required: ['id', 'x', 'y', 'width', 'height', 'area', 'peak', 'mean'],
  properties: {
    id: { type: 'integer', description: '1..count in raster order of the first pixel' },
    x: { type: 'integer', description: 'bounding box left' },
    y: { type: 'integer', description: 'bounding box top' },
    width: { type: 'integer' },
    height: { type: 'integer' },
    area: { type: 'integer', description: 'pixels in the region' },
    peak: { type: 'number', description: 'highest anomaly score (raw units)' },
    mean: { type: 'number', description: 'mean anomaly score (raw units)' },
  },
} as const;

export const predictionSchema = {
  $id: 'Prediction',
  type: 'object',
  required: [
    'name',
    'score',
    'imageScore',
    'normalized',
    'verdict',
    'threshold',
    'pixelThreshold',
    'width',
    'height',
    'regions',
    'timings',
    'warnings',
  ],
  properties: {
    name: { type: 'string' },
    score: { type: 'number', description: 'classification score (raw units): RsCIN of the image score within bank + image' },
    imageScore: { type: 'number', description: 'image score before RsCIN: maximum of the anomaly map' },
    normalized: { type: 'number', description: 'normalised score: 0.5 at the threshold' },
    verdict: { type: 'string', enum: ['OK', 'NG'] },
    threshold: { type: 'number', description: 'image threshold the verdict used (raw units; NG iff score > threshold)' },
    pixelThreshold: { type: 'number', description: 'pixels above it form the defect mask and regions' },
    width: { type: 'integer', description: 'original image width' },
    height: { type: 'integer', description: 'original image height' },
    warnings: { type: 'array', items: { type: 'string' } },
    regions: { type: 'array', items: { $ref: 'Region#' } },
    timings: {
      type: 'object',
      additionalProperties: { type: 'number' },
      description: 'milliseconds: decodeMs, backboneMs, scoringMs, postMs (this image), renderMs, queueMs, totalMs',
    },
    images: {
      type: 'object',
      description: 'PNGs asked for with include=, base64',
      properties: { mask: { type: 'string' }, heatmap: { type: 'string' }, composite: { type: 'string' } },
    },
  },
} as const;

export const predictResponse = {
  type: 'object',
  required: ['bank', 'bankVersion', 'prediction'],
  properties: { bank: { type: 'string' }, bankVersion: { type: 'integer' }, prediction: { $ref: 'Prediction#' } },
} as const;

export const batchResponse = {
  type: 'object',
  required: ['bank', 'bankVersion', 'predictions'],
  properties: {
    bank: { type: 'string' },
    bankVersion: { type: 'integer' },
    predictions: { type: 'array', items: { $ref: 'Prediction#' } },
  },
} as const;

export const predictQuery = {
  type: 'object',
  properties: {
    include: {
      type: 'string',
      pattern: '^((mask|heatmap|composite)(,(mask|heatmap|composite))*)?$',
      description: 'PNGs to add to the JSON (base64), comma-separated',
    },
    render: {
      type: 'string',
      enum: ['mask', 'heatmap', 'composite'],
      description: 'answer with this PNG instead of JSON (verdict and scores in X-Musc-* headers)',
    },
    name: { type: 'string', maxLength: 200, description: 'image name for a raw body (default: image)' },
  },
  additionalProperties: false,
} as const;

export const jobSchema = {
  $id: 'Job',
  type: 'object',
  required: ['id', 'bank', 'state', 'progress', 'createdAt'],
  properties: {
    id: { type: 'string' },
    bank: { type: 'string' },
    state: { type: 'string', enum: ['queued', 'running', 'done', 'failed'] },
    progress: { type: 'object', properties: { done: { type: 'number' }, total: { type: 'number' }, label: { type: 'string' } } },
    createdAt: { type: 'string', format: 'date-time' },
    finishedAt: { type: 'string', format: 'date-time' },
    error: { type: 'string' },
    warnings: { type: 'array', items: { type: 'string' }, description: 'images skipped with the reason; a small bank' },
    version: { type: 'integer', description: 'bank version loaded at the end (load: true)' },
  },
} as const;

export const buildBody = {
  type: 'object',
  required: ['folder'],
  additionalProperties: false,
  properties: {
    folder: { type: 'string', minLength: 1, maxLength: 1000, description: 'folder of images, relative to the data root (--data-root)' },
    load: { type: 'boolean', default: true, description: 'load (or hot-swap) the bank when built' },
  },
} as const;

export const SHARED_SCHEMAS = [errorSchema, bankSchema, regionSchema, predictionSchema, jobSchema];

/** responses every protected route can give */
export const commonErrors = {
  400: { $ref: 'Error#' },
  401: { $ref: 'Error#' },
} as const;
