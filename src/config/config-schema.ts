/**
 * The configuration schema: every key, its type, bounds, default and description. Defaults live here and only
 * here; `--help` and error messages are rendered from it.
 */
import { z } from "zod";
import { defaultThreads } from "./default-threads.ts";

/** GPU backends accepted by `gpu`; "false" forces CPU-only inference. */
export const GPU_BACKENDS = ["auto", "cuda", "metal", "vulkan", "false"] as const;

/** Flash attention modes accepted by `flashAttn`. */
export const FLASH_ATTENTION_MODES = ["auto", "on", "off"] as const;

/** Speculative decoding modes accepted by `specMode`. */
export const SPEC_MODES = ["off", "ngram", "draft"] as const;

/** Embedding poolings accepted by `pooling` (llama.cpp's, as the engine's `Pooling`). */
export const POOLINGS = ["mean", "cls", "last", "rank"] as const;

/** Inputs embedded in one decode by default, as llama-server is benchmarked (`--embeddings -np 32`). */
export const DEFAULT_EMBEDDING_PARALLEL = 32;

/** KV cache layouts accepted by `kvLayout`. */
export const KV_LAYOUTS = ["shared", "slabs"] as const;

/** Log levels accepted by `logLevel` (the pino level names). */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** llama.cpp seeds are unsigned 32-bit integers. */
const MAX_SEED = 0xffff_ffff;

/**
 * The complete server configuration. Defaults live here and only here; every
 * key has a description because `--help` is rendered from this schema.
 */
export const ConfigSchema = z
  .object({
    model: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Path to a GGUF model file. When absent, the first *.gguf in modelsDir is used, " +
          "or a small synthetic model is generated in cacheDir.",
      ),
    modelAlias: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Model id reported by /v1/models and accepted in requests. Defaults to the model file name without extension.",
      ),
    chatTemplate: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Chat template: a Jinja template file, or a built-in name (chatML, llama3.1, qwen, …) for a GGUF whose " +
          "template is missing or lacks tool calling. Defaults to the GGUF's own.",
      ),
    pooling: z
      .enum(POOLINGS)
      .optional()
      .describe(
        "How /v1/embeddings pools a sequence's token vectors: mean, cls, last or rank. Defaults to the GGUF's " +
          "pooling, or last for a generative model.",
      ),
    embeddingParallel: z
      .int()
      .min(1)
      .max(256)
      .default(DEFAULT_EMBEDDING_PARALLEL)
      .describe("Embedding inputs, from any requests, computed together in one decode."),
    embeddingModel: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "Embedding models served beside the generator, each with its own pooling context: a GGUF path, or " +
          "NAME=PATH to serve it as NAME (default: the file name without extension). Requests pick one by model.",
      ),
    rerankModel: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "Rerankers (cross-encoders) served beside the generator for /v1/rerank and /v1/score, pooled as rank: a " +
          "GGUF path, or NAME=PATH. Requests pick one by model; without one, the first.",
      ),
    modelsDir: z
      .string()
      .min(1)
      .default("./models")
      .describe("Directory searched for a *.gguf file when no model is given."),
    cacheDir: z
      .string()
      .min(1)
      .default("./.cache/pagoda")
      .describe("Directory where generated artifacts such as the synthetic model are written."),
    host: z
      .string()
      .min(1)
      .default("127.0.0.1")
      .describe("Interface to listen on. Use 0.0.0.0 to accept remote connections."),
    port: z.int().min(0).max(65535).default(8080).describe("TCP port to listen on; 0 picks a free port."),
    threads: z
      .int()
      .min(1)
      .default(defaultThreads)
      .describe(
        "CPU threads used for inference. Defaults to physical cores minus one, because a threadpool " +
          "spanning every core stalls on its spin barriers whenever the event loop needs CPU.",
      ),
    parallel: z
      .int()
      .min(1)
      .max(256)
      .default(8)
      .describe("Maximum number of sequences decoded concurrently; further requests wait in the queue."),
    ctxSize: z
      .int()
      .min(16)
      .default(2048)
      .describe("Context size in tokens for each sequence (prompt plus completion)."),
    batchSize: z
      .int()
      .min(1)
      .default(512)
      .describe("Token budget for one engine step, shared by all running sequences."),
    prefillBudget: z
      .int()
      .min(1)
      .optional()
      .describe(
        "Most prompt tokens in a step that also decodes: a long prompt is prefilled in chunks this size beside the " +
          "decoding requests, which bounds their time between tokens. Alone, a prompt uses the whole --batch-size. " +
          "Defaults to --batch-size.",
      ),
    gpu: z
      .enum(GPU_BACKENDS)
      .default("auto")
      .describe(
        'GPU backend. "auto" uses the best available backend and falls back to CPU; ' +
          '"false" forces CPU, which gives reproducible startup on machines without a GPU.',
      ),
    flashAttn: z
      .enum(FLASH_ATTENTION_MODES)
      .default("auto")
      .describe(
        'Flash attention. "auto" enables it on GPU backends and for the shared KV pool (its kernel skips the ' +
          "other sequences' masked cells), and disables it for CPU slabs, where it was slower in our measurements.",
      ),
    logLevel: z.enum(LOG_LEVELS).default("info").describe("Minimum level of log lines written to stdout."),
    seed: z
      .int()
      .min(0)
      .max(MAX_SEED)
      .optional()
      .describe(
        "Base sampling seed for requests that do not set their own. When absent, each such request " +
          "gets a random seed, so identical prompts do not produce identical samples.",
      ),
    maxQueuedRequests: z
      .int()
      .min(0)
      .default(256)
      .describe("Maximum number of requests waiting to be scheduled; beyond this the server answers 429."),
    queueTimeoutSeconds: z
      .int()
      .min(0)
      .default(60)
      .describe("Seconds a request may wait in the queue before it is answered 503; 0 waits without limit."),
    embeddings: z
      .boolean()
      .default(true)
      .describe(
        "The generator answers /v1/embeddings and the rerank routes itself. Models of embeddingModel and rerankModel answer either way.",
      ),
    kvCacheMemory: z
      .int()
      .min(1)
      .optional()
      .describe(
        "KV cache budget in bytes. When set, the tokens per sequence (ctxSize) are derived from it: " +
          "budget / (KV bytes per token x parallel), rounded down to a multiple of 256 and capped at ctxSize.",
      ),
    kvCacheTokens: z
      .int()
      .min(16)
      .optional()
      .describe(
        "Tokens in the shared KV pool of all sequences. Defaults to ctxSize x parallel; smaller pools queue and " +
          "preempt requests instead of failing them.",
      ),
    kvBlockSize: z
      .int()
      .min(1)
      .max(1024)
      .default(16)
      .describe("Tokens per KV block: the unit the pool hands out and caches by prefix."),
    prefixCaching: z
      .boolean()
      .default(true)
      .describe("Reuse the KV cache of identical prompt prefixes across requests."),
    specMode: z
      .enum(SPEC_MODES)
      .default("off")
      .describe(
        "Speculative decoding. ngram: draft tokens by prompt lookup (the request's latest tokens matched earlier in " +
          "its prompt and output); draft: tokens from --draft-model. Verified by the model in its normal step; greedy " +
          "output is unchanged and sampled output keeps the model's distribution. Needs the patched addon.",
      ),
    specAdaptive: z
      .boolean()
      .default(true)
      .describe(
        "Choose the draft length per request and step from acceptance and measured step times; false always drafts draftMax.",
      ),
    draftModel: z
      .string()
      .min(1)
      .optional()
      .describe("GGUF of the draft model for --spec-mode draft: a small model with the target's tokenizer."),
    draftMax: z
      .int()
      .min(1)
      .max(32)
      .default(4)
      .describe("Most draft tokens per request and step; fewer when drafts are rarely accepted."),
    kvLayout: z
      .enum(KV_LAYOUTS)
      .default("shared")
      .describe(
        "shared: one KV pool handed out in blocks (needs the patched addon, else falls back); " +
          "slabs: ctxSize cells reserved per sequence, as llama-server's slots; each sequence attends over its own " +
          "cells, and cached prefixes are copied into them (with the patched addon).",
      ),
    apiKey: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'API keys clients must send as "Authorization: Bearer <key>". Repeat the flag, or give a comma-separated ' +
          "list or a JSON array. With no key (here or in apiKeyFile) the server is open to anyone who can reach it.",
      ),
    apiKeyFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        "File of API keys, one per line (blank lines and lines starting with # are skipped), added to apiKey. Keeps keys out of the process list.",
      ),
    metricsAuth: z
      .boolean()
      .default(false)
      .describe("Require an API key on /metrics as well. /health is always public."),
    maxTokensLimit: z
      .int()
      .min(0)
      .default(0)
      .describe(
        "Largest max_tokens a request may ask for; also the default for requests that omit it when that is lower. " +
          "0 leaves only the context bound.",
      ),
    maxN: z.int().min(1).max(128).default(16).describe("Largest n (choices per prompt) a request may ask for."),
    maxStopLength: z
      .int()
      .min(1)
      .default(256)
      .describe(
        "Longest stop string in characters (at most 4 stop strings, as OpenAI allows); every token is checked against each.",
      ),
    maxPromptTokens: z
      .int()
      .min(0)
      .default(0)
      .describe("Most tokens in one prompt (or one embeddings input); 0 leaves only the context bound."),
    bodyLimit: z
      .int()
      .min(1024)
      .default(8 * 1024 * 1024)
      .describe(
        "Largest request body in bytes; larger ones are answered 413. A 128k-token prompt is about half a megabyte of JSON.",
      ),
    corsOrigin: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'Origins browsers may call the API from (CORS), e.g. https://app.example.com; "*" allows any. CORS is off when empty.',
      ),
    rateLimit: z
      .int()
      .min(0)
      .default(0)
      .describe(
        "Requests each API key (or client IP when no keys are configured) may make per rateLimitWindowSeconds; 0 turns rate limiting off.",
      ),
    rateLimitWindowSeconds: z.int().min(1).default(60).describe("Length of the rate-limit window in seconds."),
    trustProxy: z
      .int()
      .min(0)
      .max(16)
      .default(0)
      .describe(
        "Proxies in front of pagoda whose X-Forwarded-For entries are trusted, counted from the server; the client IP " +
          "(per-IP rate limits, logs) is the entry just before them. 0 ignores the header. Trusting more hops than " +
          "there are proxies lets clients pick their own IP.",
      ),
    requestTimeoutSeconds: z
      .int()
      .min(0)
      .default(600)
      .describe(
        "Seconds a generation may run, queue time included, before it is stopped and answered 504; 0 means no limit.",
      ),
    shutdownGraceSeconds: z
      .int()
      .min(0)
      .default(30)
      .describe("Seconds a shutdown lets running requests finish before failing them with 503."),
    keepAliveTimeoutSeconds: z
      .int()
      .min(1)
      .default(72)
      .describe(
        "Seconds an idle keep-alive connection stays open. Keep it above the idle timeout of the load balancer in front " +
          "(60 s for AWS ALB and nginx), or the balancer may reuse a connection the server is closing.",
      ),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;

/** A configuration key, in schema order. */
export type ConfigKey = keyof Config;

/** All configuration keys, in the order they are documented. */
export const CONFIG_KEYS = Object.keys(ConfigSchema.shape) as ConfigKey[];
