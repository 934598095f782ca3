/** A usage or configuration error: exit code 2 (defined here, below every module that throws it). */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
