/**
 * The names each configuration key goes by outside the code: its command-line flag and its environment variable,
 * and the former names of keys that were renamed. Explicit, so renaming a key never silently renames a deployed
 * flag or variable.
 */
import { CONFIG_KEYS, type ConfigKey } from "./config-schema.ts";

/** Names a renamed key had before; each is still accepted where it was (flag, variable, config-file key). */
export interface FormerNames {
  readonly key: string;
  readonly flag: string;
  readonly env: string;
}

export interface SettingNames {
  /** Command-line flag without `--`. */
  readonly flag: string;
  readonly env: string;
  readonly former?: FormerNames;
}

/** The keys in seconds gained the unit in their names; deployments keep working with the names they had. */
export const SETTING_NAMES: Readonly<Record<ConfigKey, SettingNames>> = {
  model: { flag: "model", env: "PAGODA_MODEL" },
  modelAlias: { flag: "model-alias", env: "PAGODA_MODEL_ALIAS" },
  chatTemplate: { flag: "chat-template", env: "PAGODA_CHAT_TEMPLATE" },
  pooling: { flag: "pooling", env: "PAGODA_POOLING" },
  embeddingParallel: { flag: "embedding-parallel", env: "PAGODA_EMBEDDING_PARALLEL" },
  modelsDir: { flag: "models-dir", env: "PAGODA_MODELS_DIR" },
  cacheDir: { flag: "cache-dir", env: "PAGODA_CACHE_DIR" },
  host: { flag: "host", env: "PAGODA_HOST" },
  port: { flag: "port", env: "PAGODA_PORT" },
  threads: { flag: "threads", env: "PAGODA_THREADS" },
  parallel: { flag: "parallel", env: "PAGODA_PARALLEL" },
  ctxSize: { flag: "ctx-size", env: "PAGODA_CTX_SIZE" },
  batchSize: { flag: "batch-size", env: "PAGODA_BATCH_SIZE" },
  prefillBudget: { flag: "prefill-budget", env: "PAGODA_PREFILL_BUDGET" },
  gpu: { flag: "gpu", env: "PAGODA_GPU" },
  flashAttn: { flag: "flash-attn", env: "PAGODA_FLASH_ATTN" },
  logLevel: { flag: "log-level", env: "PAGODA_LOG_LEVEL" },
  seed: { flag: "seed", env: "PAGODA_SEED" },
  maxQueuedRequests: { flag: "max-queued-requests", env: "PAGODA_MAX_QUEUED_REQUESTS" },
  queueTimeoutSeconds: {
    flag: "queue-timeout-seconds",
    env: "PAGODA_QUEUE_TIMEOUT_SECONDS",
    former: { key: "queueTimeout", flag: "queue-timeout", env: "PAGODA_QUEUE_TIMEOUT" },
  },
  embeddings: { flag: "embeddings", env: "PAGODA_EMBEDDINGS" },
  kvCacheMemory: { flag: "kv-cache-memory", env: "PAGODA_KV_CACHE_MEMORY" },
  kvCacheTokens: { flag: "kv-cache-tokens", env: "PAGODA_KV_CACHE_TOKENS" },
  kvBlockSize: { flag: "kv-block-size", env: "PAGODA_KV_BLOCK_SIZE" },
  prefixCaching: { flag: "prefix-caching", env: "PAGODA_PREFIX_CACHING" },
  kvLayout: { flag: "kv-layout", env: "PAGODA_KV_LAYOUT" },
  specMode: { flag: "spec-mode", env: "PAGODA_SPEC_MODE" },
  draftMax: { flag: "draft-max", env: "PAGODA_DRAFT_MAX" },
  draftModel: { flag: "draft-model", env: "PAGODA_DRAFT_MODEL" },
  embeddingModel: { flag: "embedding-model", env: "PAGODA_EMBEDDING_MODEL" },
  rerankModel: { flag: "rerank-model", env: "PAGODA_RERANK_MODEL" },
  specAdaptive: { flag: "spec-adaptive", env: "PAGODA_SPEC_ADAPTIVE" },
  apiKey: { flag: "api-key", env: "PAGODA_API_KEY" },
  apiKeyFile: { flag: "api-key-file", env: "PAGODA_API_KEY_FILE" },
  metricsAuth: { flag: "metrics-auth", env: "PAGODA_METRICS_AUTH" },
  maxTokensLimit: { flag: "max-tokens-limit", env: "PAGODA_MAX_TOKENS_LIMIT" },
  maxN: { flag: "max-n", env: "PAGODA_MAX_N" },
  maxStopLength: { flag: "max-stop-length", env: "PAGODA_MAX_STOP_LENGTH" },
  maxPromptTokens: { flag: "max-prompt-tokens", env: "PAGODA_MAX_PROMPT_TOKENS" },
  bodyLimit: { flag: "body-limit", env: "PAGODA_BODY_LIMIT" },
  corsOrigin: { flag: "cors-origin", env: "PAGODA_CORS_ORIGIN" },
  rateLimit: { flag: "rate-limit", env: "PAGODA_RATE_LIMIT" },
  rateLimitWindowSeconds: {
    flag: "rate-limit-window-seconds",
    env: "PAGODA_RATE_LIMIT_WINDOW_SECONDS",
    former: { key: "rateLimitWindow", flag: "rate-limit-window", env: "PAGODA_RATE_LIMIT_WINDOW" },
  },
  trustProxy: { flag: "trust-proxy", env: "PAGODA_TRUST_PROXY" },
  requestTimeoutSeconds: {
    flag: "request-timeout-seconds",
    env: "PAGODA_REQUEST_TIMEOUT_SECONDS",
    former: { key: "requestTimeout", flag: "request-timeout", env: "PAGODA_REQUEST_TIMEOUT" },
  },
  shutdownGraceSeconds: {
    flag: "shutdown-grace-seconds",
    env: "PAGODA_SHUTDOWN_GRACE_SECONDS",
    former: { key: "shutdownGrace", flag: "shutdown-grace", env: "PAGODA_SHUTDOWN_GRACE" },
  },
  keepAliveTimeoutSeconds: {
    flag: "keep-alive-timeout-seconds",
    env: "PAGODA_KEEP_ALIVE_TIMEOUT_SECONDS",
    former: { key: "keepAliveTimeout", flag: "keep-alive-timeout", env: "PAGODA_KEEP_ALIVE_TIMEOUT" },
  },
};

/**
 * Each key under one kind of its names (flag, config-file key) and, for a renamed key, under the same kind of its
 * former names: the lookup a source resolves what the user wrote with.
 */
export function keysByName(
  current: (key: ConfigKey) => string,
  former: (names: FormerNames) => string,
): Map<string, ConfigKey> {
  const keys = new Map<string, ConfigKey>();
  for (const key of CONFIG_KEYS) {
    keys.set(current(key), key);
    const formerNames = SETTING_NAMES[key].former;
    if (formerNames !== undefined) keys.set(former(formerNames), key);
  }
  return keys;
}
