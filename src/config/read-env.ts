/** Settings from `PAGODA_*` environment variables, each under the name its key maps to explicitly. */

import { coerceValue } from "./coerce-value.ts";
import { CONFIG_KEYS } from "./config-schema.ts";
import { SETTING_NAMES } from "./setting-names.ts";
import { oneValuePerKey, type Setting, validateSetting } from "./validate-setting.ts";

/**
 * Relative paths resolve against `cwd`. A renamed key's former variable is read too.
 *
 * @throws {ConfigError} for a bad value, or a key set under both its variables with different values.
 */
export function readEnv(env: NodeJS.ProcessEnv, cwd: string): Setting[] {
  const settings: Setting[] = [];
  for (const key of CONFIG_KEYS) {
    const { env: name, former } = SETTING_NAMES[key];
    for (const variable of former === undefined ? [name] : [name, former.env]) {
      const raw = env[variable];
      // Orchestrators often declare variables with empty values; treat those as unset rather than invalid.
      if (raw === undefined || raw.trim() === "") continue;
      settings.push(validateSetting(key, coerceValue(key, raw, variable), variable, raw, cwd));
    }
  }
  return oneValuePerKey(settings);
}
