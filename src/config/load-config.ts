import { readFileSync } from "node:fs";
import path from "node:path";
import { ConfigError } from "./config-error.ts";
import { CONFIG_KEYS, type Config, type ConfigKey, ConfigSchema, describeAllowed, valueKind } from "./config-schema.ts";

export interface LoadConfigOptions {
  /** Command-line arguments without the node and script paths, i.e. `process.argv.slice(2)`. */
  argv: string[];
  /** Environment read for `PAGODA_*` variables, usually `process.env`. */
  env: NodeJS.ProcessEnv;
  /**
   * Directory against which `--config` and relative paths from flags,
   * environment and defaults are resolved. Defaults to `process.cwd()`.
   */
  cwd?: string;
}

/** Environment variable for each key. Explicit so renaming a key never silently renames a deployed variable. */
export const ENV_VARS: Readonly<Record<ConfigKey, string>> = {
  model: "PAGODA_MODEL",
  modelAlias: "PAGODA_MODEL_ALIAS",
  modelsDir: "PAGODA_MODELS_DIR",
  cacheDir: "PAGODA_CACHE_DIR",
  host: "PAGODA_HOST",
  port: "PAGODA_PORT",
  threads: "PAGODA_THREADS",
  parallel: "PAGODA_PARALLEL",
  ctxSize: "PAGODA_CTX_SIZE",
  batchSize: "PAGODA_BATCH_SIZE",
  prefillBudget: "PAGODA_PREFILL_BUDGET",
  gpu: "PAGODA_GPU",
  flashAttn: "PAGODA_FLASH_ATTN",
  logLevel: "PAGODA_LOG_LEVEL",
  seed: "PAGODA_SEED",
  maxQueuedRequests: "PAGODA_MAX_QUEUED_REQUESTS",
  queueTimeout: "PAGODA_QUEUE_TIMEOUT",
  embeddings: "PAGODA_EMBEDDINGS",
  kvCacheMemory: "PAGODA_KV_CACHE_MEMORY",
  kvCacheTokens: "PAGODA_KV_CACHE_TOKENS",
  kvBlockSize: "PAGODA_KV_BLOCK_SIZE",
  prefixCaching: "PAGODA_PREFIX_CACHING",
  kvLayout: "PAGODA_KV_LAYOUT",
  specMode: "PAGODA_SPEC_MODE",
  draftMax: "PAGODA_DRAFT_MAX",
  draftModel: "PAGODA_DRAFT_MODEL",
  specAdaptive: "PAGODA_SPEC_ADAPTIVE",
  apiKey: "PAGODA_API_KEY",
  apiKeyFile: "PAGODA_API_KEY_FILE",
  metricsAuth: "PAGODA_METRICS_AUTH",
  maxTokensLimit: "PAGODA_MAX_TOKENS_LIMIT",
  maxN: "PAGODA_MAX_N",
  maxStopLength: "PAGODA_MAX_STOP_LENGTH",
  maxPromptTokens: "PAGODA_MAX_PROMPT_TOKENS",
  bodyLimit: "PAGODA_BODY_LIMIT",
  corsOrigin: "PAGODA_CORS_ORIGIN",
  rateLimit: "PAGODA_RATE_LIMIT",
  rateLimitWindow: "PAGODA_RATE_LIMIT_WINDOW",
  trustProxy: "PAGODA_TRUST_PROXY",
  requestTimeout: "PAGODA_REQUEST_TIMEOUT",
  shutdownGrace: "PAGODA_SHUTDOWN_GRACE",
  keepAliveTimeout: "PAGODA_KEEP_ALIVE_TIMEOUT",
};

/** Command-line flag (without `--`) for each key. */
export const FLAG_NAMES: Readonly<Record<ConfigKey, string>> = {
  model: "model",
  modelAlias: "model-alias",
  modelsDir: "models-dir",
  cacheDir: "cache-dir",
  host: "host",
  port: "port",
  threads: "threads",
  parallel: "parallel",
  ctxSize: "ctx-size",
  batchSize: "batch-size",
  prefillBudget: "prefill-budget",
  gpu: "gpu",
  flashAttn: "flash-attn",
  logLevel: "log-level",
  seed: "seed",
  maxQueuedRequests: "max-queued-requests",
  queueTimeout: "queue-timeout",
  embeddings: "embeddings",
  kvCacheMemory: "kv-cache-memory",
  kvCacheTokens: "kv-cache-tokens",
  kvBlockSize: "kv-block-size",
  prefixCaching: "prefix-caching",
  kvLayout: "kv-layout",
  specMode: "spec-mode",
  draftMax: "draft-max",
  draftModel: "draft-model",
  specAdaptive: "spec-adaptive",
  apiKey: "api-key",
  apiKeyFile: "api-key-file",
  metricsAuth: "metrics-auth",
  maxTokensLimit: "max-tokens-limit",
  maxN: "max-n",
  maxStopLength: "max-stop-length",
  maxPromptTokens: "max-prompt-tokens",
  bodyLimit: "body-limit",
  corsOrigin: "cors-origin",
  rateLimit: "rate-limit",
  rateLimitWindow: "rate-limit-window",
  trustProxy: "trust-proxy",
  requestTimeout: "request-timeout",
  shutdownGrace: "shutdown-grace",
  keepAliveTimeout: "keep-alive-timeout",
};

const FLAG_TO_KEY = new Map<string, ConfigKey>(CONFIG_KEYS.map((key) => [FLAG_NAMES[key], key]));

/** Keys holding filesystem paths, resolved against the directory of the source that set them. */
const PATH_KEYS: readonly ConfigKey[] = ["model", "modelsDir", "cacheDir", "apiKeyFile", "draftModel"];

/** Keys whose values never appear in an error message. */
const SECRET_KEYS: readonly ConfigKey[] = ["apiKey"];

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

/** One value after validation, remembering where it came from for path resolution. */
interface Setting {
  key: ConfigKey;
  value: unknown;
  baseDir: string;
}

/**
 * Builds the configuration from, in increasing precedence: schema defaults,
 * the JSON file given by `--config`, `PAGODA_*` environment variables, and
 * command-line flags. Every supplied value is validated, even one that a
 * higher-precedence source overrides, so a typo never lies dormant.
 * Relative paths are made absolute: file values against the file's
 * directory, everything else against `cwd`.
 *
 * @throws {ConfigError} naming the offending setting as the user wrote it.
 */
export function loadConfig(options: LoadConfigOptions): Config {
  const cwd = options.cwd ?? process.cwd();
  const args = parseArgv(options.argv, cwd);
  const settings = [
    ...(args.configPath === undefined ? [] : readConfigFile(args.configPath, cwd)),
    ...readEnv(options.env, cwd),
    ...args.settings,
  ];

  const merged: Partial<Record<ConfigKey, unknown>> = {};
  for (const { key, value, baseDir } of settings) {
    merged[key] = PATH_KEYS.includes(key) ? resolvePath(baseDir, value as string) : value;
  }
  const result = ConfigSchema.safeParse(merged);
  if (!result.success) {
    // Each value was checked on entry, so this only fires if the schema gains cross-key rules.
    throw new ConfigError(`invalid configuration: ${result.error.message}`, { cause: result.error });
  }
  const config = result.data;
  config.modelsDir = resolvePath(cwd, config.modelsDir);
  config.cacheDir = resolvePath(cwd, config.cacheDir);
  return config;
}

/** True when the arguments ask for `--help` / `-h`; checked before loading so help works even with bad settings. */
export function isHelpRequested(argv: readonly string[]): boolean {
  return argv.includes("--help") || argv.includes("-h");
}

function resolvePath(baseDir: string, value: string): string {
  // Leave URIs such as hf:owner/repo/file.gguf alone; a two-letter minimum keeps Windows drive letters as paths.
  return /^[a-z][a-z0-9+.-]+:/i.test(value) ? value : path.resolve(baseDir, value);
}

function validate(key: ConfigKey, value: unknown, label: string, got: unknown, baseDir: string): Setting {
  const result = ConfigSchema.shape[key].safeParse(value);
  if (!result.success) {
    const shown = SECRET_KEYS.includes(key) ? "a value that is not shown" : JSON.stringify(got);
    throw new ConfigError(`${label}: expected ${describeAllowed(key)}, got ${shown}`, {
      setting: label,
      cause: result.error,
    });
  }
  return { key, value: result.data, baseDir };
}

/** Converts env/flag text to the key's type; unconvertible text is passed through so validation reports it verbatim. */
function coerce(key: ConfigKey, raw: string): unknown {
  const text = raw.trim();
  switch (valueKind(key)) {
    case "integer":
      // Number() alone would accept "", "0x10" and "1e3", which are surprising spellings for a count or port.
      return /^[+-]?\d+(\.\d+)?$/.test(text) ? Number(text) : raw;
    case "boolean":
      return BOOLEAN_WORDS[text.toLowerCase()] ?? raw;
    case "list":
      return parseList(raw);
    case "string":
      return raw;
  }
}

/** "a, b" or '["a","b"]' → ["a", "b"]; text that is neither is passed through for validation to report. */
function parseList(raw: string): unknown {
  const text = raw.trim();
  if (!text.startsWith("["))
    return text
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item.length > 0);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return raw;
  }
}

function readEnv(env: NodeJS.ProcessEnv, cwd: string): Setting[] {
  const settings: Setting[] = [];
  for (const key of CONFIG_KEYS) {
    const name = ENV_VARS[key];
    const raw = env[name];
    // Orchestrators often declare variables with empty values; treat those as unset rather than invalid.
    if (raw === undefined || raw.trim() === "") continue;
    settings.push(validate(key, coerce(key, raw), name, raw, cwd));
  }
  return settings;
}

function readConfigFile(shownPath: string, cwd: string): Setting[] {
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
  return Object.entries(data).map(([name, value]) => {
    const label = `${name} (in ${shownPath})`;
    const key = CONFIG_KEYS.find((candidate) => candidate === name);
    if (key === undefined) {
      throw new ConfigError(
        `${label}: unknown setting${suggest(name, CONFIG_KEYS)}; allowed keys: ${CONFIG_KEYS.join(", ")}`,
        {
          setting: label,
        },
      );
    }
    // JSON already carries types, so file values are validated as written, not coerced; a list may also be one
    // comma-separated string.
    const typed = valueKind(key) === "list" && typeof value === "string" ? parseList(value) : value;
    return validate(key, typed, label, value, baseDir);
  });
}

function errorText(error: unknown): string {
  if (error instanceof Error) return (error as NodeJS.ErrnoException).code ?? error.message;
  return String(error);
}

/** Points at the intended spelling when the user wrote a key in another case style (ctx_size, ctxSize, --ctxSize). */
function suggest(name: string, candidates: readonly string[]): string {
  const normalize = (text: string): string => text.toLowerCase().replace(/[-_]/g, "");
  const match = candidates.find((candidate) => normalize(candidate) === normalize(name));
  return match === undefined ? "" : ` (did you mean "${match}"?)`;
}

interface ParsedArgs {
  settings: Setting[];
  configPath: string | undefined;
}

function parseArgv(argv: readonly string[], cwd: string): ParsedArgs {
  const settings: Setting[] = [];
  let configPath: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === "--help" || arg === "-h") continue;
    if (!arg.startsWith("--") || arg === "--") {
      throw new ConfigError(
        `unexpected argument ${JSON.stringify(arg)}; settings are given as --name value (see --help)`,
        {
          setting: arg,
        },
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
      settings.push({ key: negated, value: false, baseDir: cwd });
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
      throw new ConfigError(`${label}: unknown flag${suggest(name, flags)}; run with --help to list settings`, {
        setting: label,
      });
    }
    if (valueKind(key) === "boolean" && inline === undefined) {
      // A bare boolean flag means true, but "--embeddings false" is accepted too since positionals are never valid.
      const word = next === undefined ? undefined : BOOLEAN_WORDS[next.trim().toLowerCase()];
      if (word !== undefined) i++;
      settings.push({ key, value: word ?? true, baseDir: cwd });
      continue;
    }
    const raw = inline ?? takeValue(label, next, describeAllowed(key));
    if (inline === undefined) i++;
    const setting = validate(key, coerce(key, raw), label, raw, cwd);
    // A repeated list flag (--api-key a --api-key b) adds to the list instead of replacing it.
    const earlier = valueKind(key) === "list" ? settings.find((candidate) => candidate.key === key) : undefined;
    if (earlier === undefined) settings.push(setting);
    else earlier.value = [...(earlier.value as string[]), ...(setting.value as string[])];
  }
  return { settings, configPath };
}

function takeValue(label: string, next: string | undefined, allowed: string): string {
  if (next === undefined || next.startsWith("--")) {
    throw new ConfigError(`${label}: missing value; expected ${allowed}`, { setting: label });
  }
  return next;
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

/** Usage text for `--help`, generated from the schema so documentation cannot drift from behaviour. */
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
  for (const key of CONFIG_KEYS) {
    const flag = FLAG_NAMES[key];
    const kind = valueKind(key);
    const placeholder = kind === "integer" ? "n" : PATH_KEYS.includes(key) ? "path" : "value";
    const usage =
      kind === "boolean"
        ? `--${flag}, --no-${flag}`
        : `--${flag} <${placeholder}>${kind === "list" ? " (repeatable)" : ""}`;
    const value = defaults[key];
    const fallback = Array.isArray(value) && value.length === 0 ? undefined : value;
    lines.push(`  ${usage}`);
    lines.push(`      env ${ENV_VARS[key]}, file key "${key}"`);
    lines.push(...wrap(ConfigSchema.shape[key].description ?? "", "      "));
    lines.push(
      ...wrap(
        `Allowed: ${describeAllowed(key)}. Default: ${fallback === undefined ? "none" : String(fallback)}.`,
        "      ",
      ),
    );
  }
  lines.push(
    "  --config <path>",
    ...wrap("JSON file of settings; relative paths in it resolve against its directory.", "      "),
  );
  lines.push("  -h, --help", "      Print this help and exit.");
  return `${lines.join("\n")}\n`;
}
