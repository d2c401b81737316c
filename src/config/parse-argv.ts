/** Settings from command-line flags: `--name value`, `--name=value`, bare booleans and `--no-name`. */
import { booleanWord, coerceValue } from "./coerce-value.ts";
import { ConfigError } from "./config-error.ts";
import { keysByName, SETTING_NAMES } from "./setting-names.ts";
import { suggestName } from "./suggest-name.ts";
import { type Setting, validateSetting } from "./validate-setting.ts";
import { describeAllowed, valueKind } from "./value-kind.ts";

export interface ParsedArgs {
  readonly settings: Setting[];
  /** The `--config` file as given, if any. */
  readonly configPath: string | undefined;
}

const FLAG_TO_KEY = keysByName(
  (key) => SETTING_NAMES[key].flag,
  (former) => former.flag,
);

/** True when the arguments ask for `--help` / `-h`; checked before loading so help works even with bad settings. */
export function isHelpRequested(argv: readonly string[]): boolean {
  return argv.includes("--help") || argv.includes("-h");
}

/**
 * Parses and validates every flag; relative paths resolve against `cwd`. A later flag overrides an earlier one
 * (a renamed key's former flag included), except list flags, which add up.
 *
 * @throws {ConfigError} for a positional argument, an unknown flag, a missing or bad value.
 */
export function parseArgv(argv: readonly string[], cwd: string): ParsedArgs {
  const settings: Setting[] = [];
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--help" || arg === "-h") continue;
    if (!arg.startsWith("--") || arg === "--") {
      throw new ConfigError(
        `unexpected argument ${JSON.stringify(arg)}; settings are given as --name value (see --help)`,
        { setting: arg },
      );
    }
    const eq = arg.indexOf("=");
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    const label = `--${name}`;
    const next = argv[i + 1];

    const negated = name.startsWith("no-") ? FLAG_TO_KEY.get(name.slice(3)) : undefined;
    if (negated !== undefined && valueKind(negated) === "boolean") {
      if (inline !== undefined) throw new ConfigError(`${label}: does not take a value`, { setting: label });
      settings.push({ key: negated, value: false, baseDir: cwd, label });
      continue;
    }
    if (name === "config") {
      configPath = inline ?? takeValue(label, next, "a path to a JSON file");
      if (inline === undefined) i++;
      continue;
    }
    const key = FLAG_TO_KEY.get(name);
    if (key === undefined) {
      const flags = [...FLAG_TO_KEY.keys(), "config"].map((flag) => `--${flag}`);
      throw new ConfigError(`${label}: unknown flag${suggestName(name, flags)}; run with --help to list settings`, {
        setting: label,
      });
    }
    if (valueKind(key) === "boolean" && inline === undefined) {
      // A bare boolean flag means true, but "--embeddings false" is accepted too since positionals are never valid.
      const word = next === undefined ? undefined : booleanWord(next);
      if (word !== undefined) i++;
      settings.push({ key, value: word ?? true, baseDir: cwd, label });
      continue;
    }
    const raw = inline ?? takeValue(label, next, describeAllowed(key));
    if (inline === undefined) i++;
    addSetting(settings, validateSetting(key, coerceValue(key, raw, label), label, raw, cwd));
  }
  return { settings, configPath };
}

/** A repeated list flag (--api-key a --api-key b) adds to the list instead of replacing it. */
function addSetting(settings: Setting[], setting: Setting): void {
  const earlier =
    valueKind(setting.key) === "list" ? settings.find((candidate) => candidate.key === setting.key) : undefined;
  if (earlier === undefined) settings.push(setting);
  else earlier.value = [...(earlier.value as string[]), ...(setting.value as string[])];
}

function takeValue(label: string, next: string | undefined, allowed: string): string {
  if (next === undefined || next.startsWith("--")) {
    throw new ConfigError(`${label}: missing value; expected ${allowed}`, { setting: label });
  }
  return next;
}
