/** Settings from `PAGODA_*` environment variables, each under the name its key maps to explicitly. */

import { coerceValue } from "./coerce-value.ts";
import { CONFIG_KEYS } from "./config-schema.ts";
import { SETTING_NAMES } from "./setting-names.ts";
import { type Setting, validateSetting } from "./validate-setting.ts";

/** Relative paths resolve against `cwd`. */
export function readEnv(env: NodeJS.ProcessEnv, cwd: string): Setting[] {
  const settings: Setting[] = [];
  for (const key of CONFIG_KEYS) {
    const name = SETTING_NAMES[key].env;
    const raw = env[name];
    // Orchestrators often declare variables with empty values; treat those as unset rather than invalid.
    if (raw === undefined || raw.trim() === "") continue;
    settings.push(validateSetting(key, coerceValue(key, raw, name), name, raw, cwd));
  }
  return settings;
}
