import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { test } from "node:test";
import { ConfigError } from "../../src/config/config-error.ts";
import { CONFIG_KEYS, ConfigSchema } from "../../src/config/config-schema.ts";
import { defaultThreads } from "../../src/config/default-threads.ts";
import { loadConfig } from "../../src/config/load-config.ts";
import { isHelpRequested } from "../../src/config/parse-argv.ts";
import { renderHelp } from "../../src/config/render-help.ts";
import { SETTING_NAMES } from "../../src/config/setting-names.ts";

const dir = mkdtempSync(path.join(tmpdir(), "pagoda-config-"));
test.after(() => rmSync(dir, { recursive: true, force: true }));

function writeConfig(name: string, content: unknown): string {
  const file = path.join(dir, name);
  writeFileSync(file, typeof content === "string" ? content : JSON.stringify(content));
  return file;
}

function load(argv: string[] = [], env: NodeJS.ProcessEnv = {}) {
  return loadConfig({ argv, env, cwd: dir });
}

/** Asserts that loading fails with a ConfigError whose message contains every fragment. */
function assertConfigError(fn: () => unknown, ...fragments: string[]): ConfigError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof ConfigError, `expected ConfigError, got ${String(caught)}`);
  assert.equal(caught.name, "ConfigError");
  assert.equal(caught.code, "PAGODA_ERR_CONFIG");
  for (const fragment of fragments)
    assert.ok(caught.message.includes(fragment), `"${caught.message}" lacks "${fragment}"`);
  return caught;
}

test("with no flags, environment or file every key takes its schema default", () => {
  const config = load();
  assert.equal(config.model, undefined);
  assert.equal(config.modelAlias, undefined);
  assert.equal(config.modelsDir, path.join(dir, "models"));
  assert.equal(config.cacheDir, path.join(dir, ".cache", "pagoda"));
  assert.equal(config.host, "127.0.0.1");
  assert.equal(config.port, 8080);
  assert.equal(config.threads, defaultThreads());
  assert.equal(config.parallel, 8);
  assert.equal(config.ctxSize, 2048);
  assert.equal(config.batchSize, 512);
  assert.equal(config.gpu, "auto");
  assert.equal(config.logLevel, "info");
  assert.equal(config.seed, undefined);
  assert.equal(config.maxQueuedRequests, 256);
  assert.equal(config.embeddings, true);
});

test("the default thread count is at least one", () => {
  assert.ok(Number.isInteger(defaultThreads()) && defaultThreads() >= 1);
  assert.ok(ConfigSchema.parse({}).threads >= 1);
});

test("the environment overrides the config file and flags override both", () => {
  const file = writeConfig("precedence.json", { port: 1000, host: "file-host", parallel: 2 });
  const fileOnly = load(["--config", file]);
  assert.deepEqual([fileOnly.port, fileOnly.host, fileOnly.parallel], [1000, "file-host", 2]);

  const env = { PAGODA_PORT: "2000", PAGODA_HOST: "env-host" };
  const fileAndEnv = load(["--config", file], env);
  assert.deepEqual([fileAndEnv.port, fileAndEnv.host, fileAndEnv.parallel], [2000, "env-host", 2]);

  const all = load(["--config", file, "--port", "3000"], env);
  assert.deepEqual([all.port, all.host, all.parallel], [3000, "env-host", 2]);
});

test("flags accept the --flag=value form as well as --flag value", () => {
  const config = load(["--port=9000", "--ctx-size", "4096", "--gpu=cuda", "--model-alias=tiny"]);
  assert.equal(config.port, 9000);
  assert.equal(config.ctxSize, 4096);
  assert.equal(config.gpu, "cuda");
  assert.equal(config.modelAlias, "tiny");
});

test("every environment variable in the table sets its key", () => {
  const config = load([], {
    PAGODA_MODEL: "m.gguf",
    PAGODA_MODEL_ALIAS: "alias",
    PAGODA_THREADS: "3",
    PAGODA_BATCH_SIZE: "64",
    PAGODA_LOG_LEVEL: "debug",
    PAGODA_SEED: "42",
    PAGODA_MAX_QUEUED_REQUESTS: "0",
    PAGODA_EMBEDDINGS: "false",
    PAGODA_MODELS_DIR: "/srv/models",
  });
  assert.equal(config.model, path.join(dir, "m.gguf"));
  assert.equal(config.modelAlias, "alias");
  assert.equal(config.threads, 3);
  assert.equal(config.batchSize, 64);
  assert.equal(config.logLevel, "debug");
  assert.equal(config.seed, 42);
  assert.equal(config.maxQueuedRequests, 0);
  assert.equal(config.embeddings, false);
  assert.equal(config.modelsDir, path.resolve("/srv/models"));
  assert.equal(Object.keys(SETTING_NAMES).length, CONFIG_KEYS.length);
});

test("empty environment variables are treated as unset", () => {
  assert.equal(load([], { PAGODA_PORT: "", PAGODA_MODEL: " " }).port, 8080);
});

test("--no-embeddings disables embeddings and --embeddings re-enables them", () => {
  assert.equal(load(["--no-embeddings"]).embeddings, false);
  assert.equal(load(["--no-embeddings", "--embeddings"]).embeddings, true);
  assert.equal(load(["--embeddings=false"]).embeddings, false);
  assert.equal(load(["--embeddings", "off"], { PAGODA_EMBEDDINGS: "true" }).embeddings, false);
});

test("relative paths in the config file resolve against the file's directory", () => {
  const file = writeConfig("paths.json", { model: "models/x.gguf", cacheDir: "/var/cache/pagoda" });
  const config = load(["--config", file]);
  assert.equal(config.model, path.join(dir, "models", "x.gguf"));
  assert.equal(config.cacheDir, path.resolve("/var/cache/pagoda"));
});

test("a non-integer port names --port and the allowed range", () => {
  assertConfigError(() => load(["--port", "abc"]), '--port: expected an integer between 0 and 65535, got "abc"');
  assertConfigError(() => load(["--port=70000"]), "--port: expected an integer between 0 and 65535", '"70000"');
  const error = assertConfigError(
    () => load([], { PAGODA_PORT: "80.5" }),
    'PAGODA_PORT: expected an integer between 0 and 65535, got "80.5"',
  );
  assert.equal(error.setting, "PAGODA_PORT");
  assert.ok(error.cause !== undefined);
});

test("an unknown gpu backend lists the allowed backends", () => {
  assertConfigError(() => load(["--gpu", "tpu"]), '--gpu: expected one of auto, cuda, metal, vulkan, false, got "tpu"');
  assertConfigError(
    () => load([], { PAGODA_GPU: "tpu" }),
    "PAGODA_GPU: expected one of auto, cuda, metal, vulkan, false",
  );
});

test("zero threads is rejected with the minimum", () => {
  assertConfigError(() => load(["--threads", "0"]), '--threads: expected an integer >= 1, got "0"');
});

test("a context size below 16 tokens is rejected", () => {
  assertConfigError(() => load(["--ctx-size", "8"]), "--ctx-size: expected an integer >= 16");
});

test("an unknown flag is an error naming the flag", () => {
  assertConfigError(() => load(["--prot", "80"]), "--prot: unknown flag");
  assertConfigError(() => load(["--ctxSize=4096"]), "--ctxSize: unknown flag", '"--ctx-size"');
  assertConfigError(() => load(["stray"]), 'unexpected argument "stray"');
});

test("a flag without its value is an error", () => {
  assertConfigError(() => load(["--port"]), "--port: missing value");
  assertConfigError(() => load(["--model", "--port", "1"]), "--model: missing value");
});

test("an unknown config file key is an error naming the key and the file", () => {
  const file = writeConfig("unknown.json", { port: 1, ctx_size: 10 });
  assertConfigError(() => load(["--config", file]), `ctx_size (in ${file}): unknown setting`, '"ctxSize"');
});

test("a bad value in the config file names the file key", () => {
  const file = writeConfig("bad-value.json", { port: "8080" });
  assertConfigError(
    () => load(["--config", file]),
    `port (in ${file}): expected an integer between 0 and 65535, got "8080"`,
  );
});

test("a bad value in the config file is reported even when a flag overrides it", () => {
  const file = writeConfig("overridden.json", { gpu: "tpu" });
  assertConfigError(() => load(["--config", file, "--gpu", "cuda"]), `gpu (in ${file})`);
});

test("a config file that is not valid JSON is an error naming --config", () => {
  const file = writeConfig("broken.json", "{ port: 80 ");
  assertConfigError(() => load(["--config", file]), `--config: ${file} is not valid JSON`);
  assertConfigError(() => load([`--config=${writeConfig("array.json", [1])}`]), "must contain a JSON object");
  assertConfigError(() => load(["--config", "missing.json"]), "--config: missing.json cannot be read (ENOENT)");
});

test("the example config file is valid", () => {
  const example = path.join(import.meta.dirname, "..", "..", "config", "pagoda.example.json");
  const config = load(["--config", example]);
  assert.equal(typeof config.port, "number");
});

test("help text lists every key with its flag, environment variable and default", () => {
  const help = renderHelp();
  for (const key of CONFIG_KEYS) {
    const { flag, env } = SETTING_NAMES[key];
    assert.ok(help.includes(`--${flag}`), `help lacks --${flag}`);
    assert.ok(help.includes(env), `help lacks ${env}`);
    assert.ok(help.includes(`"${key}"`), `help lacks file key ${key}`);
    assert.ok(ConfigSchema.shape[key].description, `${key} has no description`);
  }
  assert.ok(help.includes("--no-embeddings"));
  assert.ok(help.includes("Default: 8080."));
  assert.ok(help.includes("--config"));
});

test("--help is detected and does not make loading fail", () => {
  assert.equal(isHelpRequested(["--port", "1", "--help"]), true);
  assert.equal(isHelpRequested(["--port", "1"]), false);
  assert.equal(load(["--help"]).port, 8080);
});

test("the hardening settings default to an open, unlimited-by-rate server with OpenAI-like request bounds", () => {
  const config = load();
  assert.deepEqual(config.apiKey, []);
  assert.equal(config.apiKeyFile, undefined);
  assert.equal(config.metricsAuth, false);
  assert.equal(config.maxTokensLimit, 0);
  assert.equal(config.maxN, 16);
  assert.equal(config.maxStopLength, 256);
  assert.equal(config.maxPromptTokens, 0);
  assert.equal(config.bodyLimit, 8 * 1024 * 1024);
  assert.deepEqual(config.corsOrigin, []);
  assert.equal(config.rateLimit, 0);
  assert.equal(config.rateLimitWindowSeconds, 60);
  assert.equal(config.trustProxy, 0);
  assert.equal(config.requestTimeoutSeconds, 600);
  assert.equal(config.shutdownGraceSeconds, 30);
  assert.equal(config.keepAliveTimeoutSeconds, 72);
});

test("a repeated --api-key adds to the list, and --cors-origin takes a comma-separated list", () => {
  assert.deepEqual(load(["--api-key", "k1", "--api-key=k2", "--api-key", "k3"]).apiKey, ["k1", "k2", "k3"]);
  assert.deepEqual(load(["--cors-origin", "https://a.example, https://b.example"]).corsOrigin, [
    "https://a.example",
    "https://b.example",
  ]);
});

test("list settings from the environment accept a comma-separated list or a JSON array", () => {
  assert.deepEqual(load([], { PAGODA_API_KEY: "k1,k2" }).apiKey, ["k1", "k2"]);
  assert.deepEqual(load([], { PAGODA_API_KEY: '["k1", "k,2"]' }).apiKey, ["k1", "k,2"]);
  assert.deepEqual(load([], { PAGODA_CORS_ORIGIN: "*" }).corsOrigin, ["*"]);
});

test("flags replace a list from the environment rather than adding to it", () => {
  assert.deepEqual(load(["--api-key", "flag"], { PAGODA_API_KEY: "env1,env2" }).apiKey, ["flag"]);
});

test("a list in the config file may be a JSON array or one comma-separated string", () => {
  assert.deepEqual(load(["--config", writeConfig("keys-array.json", { apiKey: ["a", "b"] })]).apiKey, ["a", "b"]);
  assert.deepEqual(
    load(["--config", writeConfig("keys-string.json", { corsOrigin: "https://x.example,https://y.example" })])
      .corsOrigin,
    ["https://x.example", "https://y.example"],
  );
});

test("a malformed API key list is refused without echoing the keys", () => {
  const error = assertConfigError(
    () => load([], { PAGODA_API_KEY: '["secret-key", 5]' }),
    "PAGODA_API_KEY: expected non-empty strings",
    "not shown",
  );
  assert.ok(!error.message.includes("secret-key"), error.message);
  assertConfigError(() => load(["--cors-origin", "[1]"]), "--cors-origin: expected non-empty strings", '"[1]"');
});

test("the API key file path resolves against the working directory and the limits have their minimums", () => {
  assert.equal(load(["--api-key-file", "keys.txt"]).apiKeyFile, path.join(dir, "keys.txt"));
  assertConfigError(() => load(["--max-n", "0"]), "--max-n: expected an integer between 1 and 128");
  assertConfigError(() => load(["--rate-limit-window", "0"]), "--rate-limit-window: expected an integer >= 1");
  assertConfigError(() => load(["--body-limit", "10"]), "--body-limit: expected an integer >= 1024");
  assert.equal(load(["--request-timeout", "0", "--no-metrics-auth", "--trust-proxy", "1"]).requestTimeoutSeconds, 0);
});

test("help marks list flags as repeatable and shows an empty list default as none", () => {
  const help = renderHelp();
  assert.ok(help.includes("--api-key <value> (repeatable)"), help);
  assert.ok(help.includes("--api-key-file <path>"));
  const corsBlock = help.slice(help.indexOf("--cors-origin"), help.indexOf("--rate-limit "));
  assert.match(corsBlock, /Default: none\./);
});

test("a list that starts like a JSON array but is not one says so, without echoing a secret", () => {
  const error = assertConfigError(
    () => load(["--cors-origin", '["https://a.example",']),
    "--cors-origin: expected non-empty strings",
    "which is not valid JSON (",
  );
  assert.ok(error.cause instanceof SyntaxError);
  const secret = assertConfigError(() => load([], { PAGODA_API_KEY: '["secret-key"' }), "PAGODA_API_KEY:", "not shown");
  assert.ok(!secret.message.includes("secret-key"), secret.message);
  assert.equal(secret.cause, undefined);
  const file = writeConfig("bad-list.json", { corsOrigin: "[https://x.example" });
  assertConfigError(() => load(["--config", file]), `corsOrigin (in ${file}): expected`, "not valid JSON");
});

test("settings in seconds carry the unit in every name and still answer to their former names", () => {
  const renamed = CONFIG_KEYS.filter((key) => SETTING_NAMES[key].former !== undefined);
  assert.deepEqual(renamed, [
    "queueTimeoutSeconds",
    "rateLimitWindowSeconds",
    "requestTimeoutSeconds",
    "shutdownGraceSeconds",
    "keepAliveTimeoutSeconds",
  ]);
  for (const [index, key] of renamed.entries()) {
    const { flag, env, former } = SETTING_NAMES[key];
    assert.ok(former !== undefined);
    assert.ok(key.endsWith("Seconds") && flag.endsWith("-seconds") && env.endsWith("_SECONDS"), key);
    const value = 7 + index;
    assert.equal(load([`--${flag}`, String(value)])[key], value, `--${flag}`);
    assert.equal(load([`--${former.flag}`, String(value)])[key], value, `--${former.flag}`);
    assert.equal(load([], { [env]: String(value) })[key], value, env);
    assert.equal(load([], { [former.env]: String(value) })[key], value, former.env);
    assert.equal(load(["--config", writeConfig(`${key}.json`, { [key]: value })])[key], value, key);
    assert.equal(load(["--config", writeConfig(`${former.key}.json`, { [former.key]: value })])[key], value);
  }
});

test("a former name reports errors under the name the user wrote", () => {
  assertConfigError(() => load(["--rate-limit-window", "0"]), "--rate-limit-window: expected an integer >= 1");
  assertConfigError(() => load([], { PAGODA_REQUEST_TIMEOUT: "-1" }), "PAGODA_REQUEST_TIMEOUT: expected an integer");
  const file = writeConfig("former-bad.json", { shutdownGrace: "30" });
  assertConfigError(() => load(["--config", file]), `shutdownGrace (in ${file}): expected an integer >= 0`);
});

test("a setting under both its names: flags take the later, the environment and the file refuse different values", () => {
  assert.equal(load(["--request-timeout", "5", "--request-timeout-seconds", "9"]).requestTimeoutSeconds, 9);
  assert.equal(load(["--request-timeout-seconds", "9", "--request-timeout", "5"]).requestTimeoutSeconds, 5);
  const env = { PAGODA_SHUTDOWN_GRACE: "10", PAGODA_SHUTDOWN_GRACE_SECONDS: "10" };
  assert.equal(load([], env).shutdownGraceSeconds, 10, "the same value twice is no conflict");
  assertConfigError(
    () => load([], { ...env, PAGODA_SHUTDOWN_GRACE: "20" }),
    "PAGODA_SHUTDOWN_GRACE: conflicts with PAGODA_SHUTDOWN_GRACE_SECONDS",
  );
  const file = writeConfig("both-names.json", { keepAliveTimeout: 80, keepAliveTimeoutSeconds: 90 });
  assertConfigError(
    () => load(["--config", file]),
    `keepAliveTimeoutSeconds (in ${file}): conflicts with keepAliveTimeout`,
  );
});

test("help lists the former names of a renamed setting", () => {
  const help = renderHelp();
  assert.ok(help.includes("--queue-timeout-seconds <n>"), help);
  assert.match(
    help,
    /Former names, still accepted: --queue-timeout, PAGODA_QUEUE_TIMEOUT,\s+file key "queueTimeout"\./,
  );
});
