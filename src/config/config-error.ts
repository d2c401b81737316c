/**
 * Raised for any invalid configuration input: a bad value, an unknown flag or
 * config-file key, or an unreadable config file.
 *
 * The message always starts with the setting exactly as the user wrote it
 * (`--port`, `PAGODA_PORT`, or `port (in pagoda.json)`), because the user must
 * be able to find and fix the offending input without knowing internal key
 * names or precedence rules.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** Stable code so callers can tell configuration failures apart without `instanceof` across module copies. */
  readonly code = "PAGODA_ERR_CONFIG" as const;
  /** The setting as the user wrote it, when the error concerns one setting. */
  readonly setting: string | undefined;

  constructor(message: string, options: { setting?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.setting = options.setting;
  }
}
