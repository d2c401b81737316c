/** Settings from the JSON file given by `--config`: an object of camelCase keys, typed as JSON types. */
import { readFileSync } from "node:fs";
import path from "node:path";
import { parseList } from "./coerce-value.ts";
import { ConfigError } from "./config-error.ts";
import { CONFIG_KEYS } from "./config-schema.ts";
import { keysByName } from "./setting-names.ts";
import { suggestName } from "./suggest-name.ts";
import { oneValuePerKey, type Setting, validateSetting } from "./validate-setting.ts";
import { valueKind } from "./value-kind.ts";

const FILE_KEYS = keysByName(
  (key) => key,
  (former) => former.key,
);

/**
 * Reads and validates every key of the file, a renamed key under its former name too; relative paths in it
 * resolve against its directory.
 *
 * @param shownPath the path as the user gave it, for messages; resolved against `cwd`.
 * @throws {ConfigError} when the file cannot be read, is not a JSON object, or holds an unknown key, a bad value, or
 *   a key under both its names with different values.
 */
export function readConfigFile(shownPath: string, cwd: string): Setting[] {
  const filePath = path.resolve(cwd, shownPath);
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(filePath, "utf8"));
  } catch (error) {
    const reason =
      error instanceof SyntaxError ? `is not valid JSON (${error.message})` : `cannot be read (${errorText(error)})`;
    throw new ConfigError(`--config: ${shownPath} ${reason}`, { setting: "--config", cause: error });
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ConfigError(`--config: ${shownPath} must contain a JSON object of settings`, { setting: "--config" });
  }
  const baseDir = path.dirname(filePath);
  const settings = Object.entries(data).map(([name, value]) => {
    const label = `${name} (in ${shownPath})`;
    const key = FILE_KEYS.get(name);
    if (key === undefined) {
      throw new ConfigError(
        `${label}: unknown setting${suggestName(name, CONFIG_KEYS)}; allowed keys: ${CONFIG_KEYS.join(", ")}`,
        { setting: label },
      );
    }
    // JSON already carries types, so file values are validated as written, not coerced; a list may also be one
    // comma-separated string.
    const typed = valueKind(key) === "list" && typeof value === "string" ? parseList(key, value, label) : value;
    return validateSetting(key, typed, label, value, baseDir);
  });
  return oneValuePerKey(settings);
}

function errorText(error: unknown): string {
  if (error instanceof Error) return (error as NodeJS.ErrnoException).code ?? error.message;
  return String(error);
}
