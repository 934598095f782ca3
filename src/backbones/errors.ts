/**
 * Backbone errors that are the user's to fix (a bad weight file, an unsupported setting): the
 * CLI reports them as configuration errors (exit 2) before any image is read.
 */
export class BackboneConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BackboneConfigError';
  }
}

/** Error classes (by name) raised for unreadable or unsuitable weight files and settings. */
const CONFIG_ERROR_NAMES = new Set([
  'BackboneConfigError',
  'SafetensorsError',
  'ResNetWeightsError',
  'WeightFormatError',
  'TfjsModelError',
  'MissingWeightsError',
  'DeviceError',
]);

/** True for a weight-file or backbone-setting problem (as opposed to a runtime failure). */
export function isBackboneConfigError(e: unknown): boolean {
  return e instanceof Error && CONFIG_ERROR_NAMES.has(e.name);
}
