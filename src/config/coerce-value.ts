/** Conversion of the text of an environment variable or a flag to the type of its key. */
import { ConfigError } from "./config-error.ts";
import type { ConfigKey } from "./config-schema.ts";
import { isSecretKey, shownValue } from "./validate-setting.ts";
import { describeAllowed, valueKind } from "./value-kind.ts";

const BOOLEAN_WORDS: Readonly<Record<string, boolean>> = {
  true: true,
  false: false,
  "1": true,
  "0": false,
  yes: true,
  no: false,
  on: true,
  off: false,
};

/** The boolean a word spells (true/false, 1/0, yes/no, on/off, any case), or undefined. */
export function booleanWord(text: string): boolean | undefined {
  return BOOLEAN_WORDS[text.trim().toLowerCase()];
}

/**
 * Converts env/flag text to the key's type. Text that does not convert is passed through, so validation reports it
 * verbatim; a list that looks like JSON but is not fails here, with the parser's reason.
 *
 * @param label the setting as the user wrote it, for the error message.
 */
export function coerceValue(key: ConfigKey, raw: string, label: string): unknown {
  const text = raw.trim();
  switch (valueKind(key)) {
    case "integer":
      // Number() alone would accept "", "0x10" and "1e3", which are surprising spellings for a count or port.
      return /^[+-]?\d+(\.\d+)?$/.test(text) ? Number(text) : raw;
    case "boolean":
      return booleanWord(text) ?? raw;
    case "list":
      return parseList(key, raw, label);
    case "string":
      return raw;
  }
}

/**
 * "a, b" or '["a","b"]' → ["a", "b"]. A JSON array's items are left for validation to check.
 *
 * @throws {ConfigError} when the text starts like a JSON array but is not valid JSON.
 */
export function parseList(key: ConfigKey, raw: string, label: string): unknown {
  const text = raw.trim();
  if (!text.startsWith("["))
    return text
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item.length > 0);
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    // The parser's message quotes the text, so a secret keeps neither the message nor the cause.
    const isSecret = isSecretKey(key);
    const reason = !isSecret && error instanceof Error ? ` (${error.message})` : "";
    throw new ConfigError(
      `${label}: expected ${describeAllowed(key)}, got ${shownValue(key, raw)}, which is not valid JSON${reason}`,
      isSecret ? { setting: label } : { setting: label, cause: error },
    );
  }
}
