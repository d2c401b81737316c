/** Validation of one supplied value against its key's schema, with an error that names the setting as written. */
import { ConfigError } from "./config-error.ts";
import { type ConfigKey, ConfigSchema } from "./config-schema.ts";
import { describeAllowed } from "./value-kind.ts";

/** One value after validation, remembering where it came from for path resolution. */
export interface Setting {
  key: ConfigKey;
  value: unknown;
  baseDir: string;
  /** The setting as the user wrote it. */
  label: string;
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
  return { key, value: result.data, baseDir, label };
}

/**
 * Settings of one unordered source (the environment, the config file) where a key was given under both its name
 * and its former name: the same value twice is kept once, different values are an error, since neither can win.
 *
 * @throws {ConfigError} naming both settings.
 */
export function oneValuePerKey(settings: readonly Setting[]): Setting[] {
  const byKey = new Map<ConfigKey, Setting>();
  for (const setting of settings) {
    const earlier = byKey.get(setting.key);
    if (earlier === undefined) byKey.set(setting.key, setting);
    else if (JSON.stringify(earlier.value) !== JSON.stringify(setting.value)) {
      throw new ConfigError(
        `${setting.label}: conflicts with ${earlier.label}, which sets the same setting under its other name; keep one`,
        { setting: setting.label },
      );
    }
  }
  return [...byKey.values()];
}
