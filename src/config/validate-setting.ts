/** Validation of one supplied value against its key's schema, with an error that names the setting as written. */
import { ConfigError } from "./config-error.ts";
import { type ConfigKey, ConfigSchema } from "./config-schema.ts";
import { describeAllowed } from "./value-kind.ts";

/** One value after validation, remembering where it came from for path resolution. */
export interface Setting {
  key: ConfigKey;
  value: unknown;
  baseDir: string;
}

/** Keys whose values never appear in an error message. */
const SECRET_KEYS: readonly ConfigKey[] = ["apiKey"];

export function isSecretKey(key: ConfigKey): boolean {
  return SECRET_KEYS.includes(key);
}

/** `got` as an error message may show it: quoted, or not at all for a secret. */
export function shownValue(key: ConfigKey, got: unknown): string {
  return isSecretKey(key) ? "a value that is not shown" : JSON.stringify(got);
}

/**
 * Checks `value` (already converted to the key's type) against the key's schema.
 *
 * @param label the setting as the user wrote it (`--port`, `PAGODA_PORT`, `port (in pagoda.json)`).
 * @param got the value as the user wrote it, for the message.
 * @throws {ConfigError} when the value is not allowed.
 */
export function validateSetting(key: ConfigKey, value: unknown, label: string, got: unknown, baseDir: string): Setting {
  const result = ConfigSchema.shape[key].safeParse(value);
  if (!result.success) {
    throw new ConfigError(`${label}: expected ${describeAllowed(key)}, got ${shownValue(key, got)}`, {
      setting: label,
      cause: result.error,
    });
  }
  return { key, value: result.data, baseDir };
}
