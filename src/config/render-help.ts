/** Usage text for `--help`, generated from the schema and the names table so documentation cannot drift. */
import { CONFIG_KEYS, type ConfigKey, ConfigSchema } from "./config-schema.ts";
import { PATH_KEYS } from "./resolve-path.ts";
import { SETTING_NAMES } from "./setting-names.ts";
import { describeAllowed, valueKind } from "./value-kind.ts";

const INDENT = "      ";

export function renderHelp(): string {
  const defaults: Partial<Record<ConfigKey, unknown>> = ConfigSchema.parse({});
  const lines = [
    "Usage: pagoda [options]",
    "",
    "Settings are merged in increasing precedence: defaults, the --config JSON file",
    "(camelCase keys), PAGODA_* environment variables, command-line flags.",
    "Flags accept both --name value and --name=value.",
    "",
    "Options:",
  ];
  for (const key of CONFIG_KEYS) lines.push(...keyHelp(key, defaults[key]));
  lines.push(
    "  --config <path>",
    ...wrap("JSON file of settings; relative paths in it resolve against its directory.", INDENT),
  );
  lines.push("  -h, --help", "      Print this help and exit.");
  return `${lines.join("\n")}\n`;
}

function keyHelp(key: ConfigKey, defaultValue: unknown): string[] {
  const { flag, env, former } = SETTING_NAMES[key];
  const kind = valueKind(key);
  const placeholder = kind === "integer" ? "n" : PATH_KEYS.includes(key) ? "path" : "value";
  const usage =
    kind === "boolean"
      ? `--${flag}, --no-${flag}`
      : `--${flag} <${placeholder}>${kind === "list" ? " (repeatable)" : ""}`;
  const fallback = Array.isArray(defaultValue) && defaultValue.length === 0 ? undefined : defaultValue;
  return [
    `  ${usage}`,
    `      env ${env}, file key "${key}"`,
    ...(former === undefined
      ? []
      : wrap(`Former names, still accepted: --${former.flag}, ${former.env}, file key "${former.key}".`, INDENT)),
    ...wrap(ConfigSchema.shape[key].description ?? "", INDENT),
    ...wrap(
      `Allowed: ${describeAllowed(key)}. Default: ${fallback === undefined ? "none" : String(fallback)}.`,
      INDENT,
    ),
  ];
}

function wrap(text: string, indent: string, width = 78): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line !== "" && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "") lines.push(indent + line);
  return lines;
}
