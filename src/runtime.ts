/**
 * Loads the model behind a `ServingState`: engine, scheduler and engine loop, wired with the configuration.
 */
import type { FastifyBaseLogger } from "fastify";
import type { Config } from "./config/config-schema.ts";
import type { TokenId } from "./engine/engine.ts";
import { LlamaEngine } from "./engine/llama-engine.ts";
import { resolveModel } from "./model/resolve-model.ts";
import { formatBytes } from "./plan/format-plan.ts";
import { type GgufModelInfo, readGgufModelInfo } from "./plan/gguf-model-info.ts";
import { contextSizeForKvBudget, KV_CELL_PADDING } from "./plan/kv-budget.ts";
import { planMemory } from "./plan/memory-plan.ts";
import { embeddingKvLayout } from "./plan/pooled-plan.ts";
import { loadPooledModels, pooledModelSpecs } from "./pooled-models.ts";
import { EngineLoop, type StepStats } from "./scheduler/engine-loop.ts";
import type { RequestStats } from "./scheduler/output-processor.ts";
import { Scheduler } from "./scheduler/scheduler.ts";
import type { Runtime } from "./server/serving-state.ts";
import { DraftModel } from "./spec/draft-model.ts";
import { Speculator } from "./spec/speculator.ts";

export interface RuntimeHooks {
  /** Receives every engine step's stats (metrics, benchmarks, tests). */
  readonly onStep?: (stats: StepStats) => void;
  /** Receives every finished request's stats. */
  readonly onRequestFinished?: (stats: RequestStats) => void;
  /** The engine loop died; every request was failed. The process should exit so a supervisor restarts it. */
  readonly onFatal?: (error: Error) => void;
}

/** A runtime as loaded: its engine is the `LlamaEngine` itself, for the process that owns it (tests reach in). */
export interface LoadedRuntime extends Runtime {
  readonly engine: LlamaEngine;
}

export async function loadRuntime(
  config: Config,
  log: FastifyBaseLogger,
  hooks: RuntimeHooks = {},
): Promise<LoadedRuntime> {
  const model = await resolveModel(config);
  // Checked before anything loads: a clash of ids is a configuration error, not a failed load.
  const pooledSpecs = pooledModelSpecs(config, model.alias);
  if (model.isSynthetic) {
    log.warn(
      { modelPath: model.path },
      "No model configured and none found in the models folder: serving a synthetic model with RANDOM weights. " +
        "Its output is meaningless. Point --model (or PAGODA_MODEL) at a real GGUF file, or put one in ./models.",
    );
  }
  // Read once: the KV budget and the startup summary both plan from the header. A header the planner cannot read
  // never stops a model llama.cpp can load, unless a KV budget needs it.
  const modelInfo = await readGgufModelInfo(model.path).catch((error: unknown) => {
    log.warn({ err: error }, "could not read the GGUF header for the memory plan");
    return null;
  });
  const kvCacheTokens = resolveKvCacheTokens(config, modelInfo, log);
  // A request must fit the pool's whole blocks, or it could wait forever and preempt everyone else meanwhile.
  const ctxSize = Math.min(config.ctxSize, Math.floor(kvCacheTokens / config.kvBlockSize) * config.kvBlockSize);
  if (ctxSize < 1) throw new Error(`--kv-cache-tokens ${kvCacheTokens} holds no block of ${config.kvBlockSize} tokens`);
  log.info(
    {
      modelPath: model.path,
      alias: model.alias,
      threads: config.threads,
      parallel: config.parallel,
      ctxSize,
      kvCacheTokens,
    },
    "loading model",
  );
  const engine = await LlamaEngine.load({
    modelPath: model.path,
    threads: config.threads,
    numSequences: config.parallel,
    contextSize: ctxSize,
    kvCacheTokens,
    kvLayout: config.kvLayout,
    // Every running sequence must be able to add its decode token to one step.
    batchSize: Math.max(config.batchSize, config.parallel),
    gpu: config.gpu,
    flashAttention: config.flashAttn,
    chatTemplate: config.chatTemplate ?? null,
    embeddingSequences: config.embeddingParallel,
    // As many inputs as the queue's requests would fill decodes with.
    maxWaitingEmbeddingInputs: config.maxQueuedRequests * config.embeddingParallel,
    embeddingKvLayout: embeddingKvLayout(modelInfo, Math.min(ctxSize, config.ctxSize), config.embeddingParallel),
    ...(config.pooling === undefined ? {} : { pooling: config.pooling }),
    onNativeLog: (level, message) => {
      if (!isPoolSizeWarning(message)) log[level]({ source: "llama.cpp" }, message.trim());
    },
    onLoadProgress: progressLogger(log),
  });
  const speculator = await createSpeculator(config, engine, log);
  const scheduler = new Scheduler(engine, {
    maxNumSequences: config.parallel,
    maxNumBatchedTokens: engine.info.batchSize,
    maxNumPrefillTokens: config.prefillBudget,
    maxNumWaiting: config.maxQueuedRequests,
    queueTimeoutMs: config.queueTimeoutSeconds * 1000,
    blockSize: config.kvBlockSize,
    enablePrefixCaching: config.prefixCaching,
    speculator,
    onDraftError: (error) => log.warn({ err: error }, "a draft model step failed; that step ran without drafts"),
  });
  const loop = new EngineLoop(engine, scheduler, {
    onStepError: (error) => log.error({ err: error }, "engine step failed; its requests were failed"),
    ...(hooks.onStep === undefined ? {} : { onStep: hooks.onStep }),
    ...(hooks.onRequestFinished === undefined ? {} : { onRequestFinished: hooks.onRequestFinished }),
    onFatal: (error) => {
      log.fatal({ err: error }, "the engine loop failed");
      hooks.onFatal?.(error);
    },
  });
  loop.start();
  const kvCache = scheduler.kvCacheState();
  log.info({ ...engine.info, kvBlocks: kvCache.numBlocks, kvBlockSize: kvCache.blockSize }, "model loaded");
  if (ctxSize > engine.info.trainContextSize) {
    log.warn(
      { ctxSize, trainContextSize: engine.info.trainContextSize },
      "--ctx-size exceeds the model's training context: quality may drop past it",
    );
  }
  if (!engine.info.isKvShared && !engine.info.canCopyCells)
    log.warn(
      "KV cache: one slab per sequence (stock addon); run npm run build:addon for the shared pool and prefix caching",
    );
  const planSource = {
    modelPath: model.path,
    ctxSize,
    parallel: config.parallel,
    batchSize: engine.info.batchSize,
    kvCacheTokens: engine.info.isKvShared ? engine.info.kvCacheTokens : null,
    kvType: "f16" as const,
    flashAttention: engine.info.isFlashAttention,
  };
  if (modelInfo !== null)
    logStartupSummary(log, modelInfo, planSource, {
      alias: model.alias,
      threads: config.threads,
      backend: engine.backend,
    });
  const release = async (): Promise<void> => {
    await engine.dispose();
    await speculator?.dispose();
  };
  const pooled = await loadPooledModels(config, pooledSpecs, log).catch(async (error: unknown) => {
    await loop.stop(new Error("the server failed to start"));
    await release();
    throw error;
  });
  return {
    engine,
    loop,
    modelId: model.alias,
    createdSeconds: Math.floor(Date.now() / 1000),
    planSource,
    pooledModels: pooled.models,
    dispose: async () => {
      try {
        await pooled.dispose();
      } finally {
        await release();
      }
    },
  };
}

/** The n-gram speculator, when asked for and the addon can hand out raw logits. */
async function createSpeculator(
  config: Config,
  engine: LlamaEngine,
  log: FastifyBaseLogger,
): Promise<Speculator | null> {
  // --draft-model alone is enough to speculate with it, as with llama-server's --model-draft.
  const mode = config.specMode === "off" && config.draftModel !== undefined ? "draft" : config.specMode;
  if (mode === "off") return null;
  if (!engine.canReturnLogits) {
    log.warn(`--spec-mode ${mode} needs the patched addon's raw logits (npm run build:addon); speculation is off`);
    return null;
  }
  const draftModel = mode === "draft" ? new DraftModel(await loadDraftEngine(config, engine, log)) : null;
  log.info({ specMode: mode, draftMax: config.draftMax, draftModel: config.draftModel }, "speculative decoding on");
  return new Speculator({
    maxDraft: config.draftMax,
    minNgram: 1,
    maxNgram: 4,
    draftModel,
    isAdaptive: config.specAdaptive,
  });
}

/**
 * The draft model's engine: one slot per running request and a pool of the target's cells plus K + 1 per slot,
 * handed out by the draft's own block manager (src/spec/draft-model.ts). Its tokenizer must be the target's.
 */
async function loadDraftEngine(config: Config, target: LlamaEngine, log: FastifyBaseLogger): Promise<LlamaEngine> {
  if (config.draftModel === undefined) throw new Error("--spec-mode draft needs --draft-model <gguf>");
  const draft = await LlamaEngine.load({
    modelPath: config.draftModel,
    threads: config.threads,
    numSequences: config.parallel,
    contextSize: target.info.contextSize,
    kvCacheTokens: target.info.kvCacheTokens + config.parallel * (config.draftMax + 1),
    batchSize: target.info.batchSize,
    gpu: config.gpu,
    kvLayout: "shared",
    onNativeLog: (level, message) => {
      if (!isPoolSizeWarning(message)) log[level]({ source: "llama.cpp", model: "draft" }, message.trim());
    },
  });
  const mismatch = tokenizerMismatch(target, draft);
  if (mismatch !== null) {
    await draft.dispose();
    throw new Error(`--draft-model ${config.draftModel}: its tokenizer differs from the target's (${mismatch})`);
  }
  if (!draft.info.isKvShared || !draft.canReturnLogits) {
    await draft.dispose();
    throw new Error("--spec-mode draft needs the patched addon for the draft model too (npm run build:addon)");
  }
  return draft;
}

/** Why two models' tokenizers differ, or null: vocabulary size, special tokens, and a probe text's tokens. */
function tokenizerMismatch(target: LlamaEngine, draft: LlamaEngine): string | null {
  if (target.info.vocabSize !== draft.info.vocabSize)
    return `vocabulary ${draft.info.vocabSize} vs ${target.info.vocabSize} tokens`;
  if (target.info.bosToken !== draft.info.bosToken) return `BOS ${draft.info.bosToken} vs ${target.info.bosToken}`;
  const probe = 'Once upon a time, 12 naïve cats said: "héllo" 🙂\n\tdone.';
  const targetTokens = target.tokenize(probe, { addBos: true }).join(",");
  if (draft.tokenize(probe, { addBos: true }).join(",") !== targetTokens) return "a probe text tokenizes differently";
  for (let token = 0; token < target.info.vocabSize; token += Math.max(1, Math.floor(target.info.vocabSize / 512))) {
    const oneToken = [token as TokenId];
    if (target.detokenize(oneToken) !== draft.detokenize(oneToken)) return `token ${token} reads differently`;
  }
  return null;
}

/**
 * With the shared pool llama.cpp compares the whole pool with the training context and warns of an overflow; a
 * sequence's context is pagoda's --ctx-size, checked at start-up instead.
 */
function isPoolSizeWarning(message: string): boolean {
  return /n_ctx_seq \(\d+\) > n_ctx_train/.test(message);
}

/**
 * Cells of the shared KV pool: `--kv-cache-tokens`, or what `--kv-cache-memory` holds (rounded down to llama.cpp's
 * 256-cell padding so the allocation stays within the budget), or by default every sequence's full context.
 */
function resolveKvCacheTokens(config: Config, model: GgufModelInfo | null, log: FastifyBaseLogger): number {
  const allContexts = config.ctxSize * config.parallel;
  if (config.kvCacheTokens !== undefined) return config.kvCacheTokens;
  if (config.kvCacheMemory === undefined) return allContexts;
  if (model === null)
    throw new Error("--kv-cache-memory: the model's GGUF header could not be read to size the KV cache");
  const { kvBytesPerToken } = planMemory(model, {
    ctxSize: config.ctxSize,
    parallel: config.parallel,
    batchSize: config.batchSize,
    kvType: "f16",
    kvCacheTokens: null,
  });
  const kvCacheTokens = contextSizeForKvBudget(kvBytesPerToken, 1, config.kvCacheMemory, allContexts);
  if (kvCacheTokens === null) {
    throw new Error(
      `--kv-cache-memory: ${config.kvCacheMemory} bytes cannot hold ${KV_CELL_PADDING} tokens; at least ${KV_CELL_PADDING * kvBytesPerToken} bytes are needed`,
    );
  }
  log.info(
    { kvCacheMemory: config.kvCacheMemory, kvBytesPerToken, kvCacheTokens },
    "KV pool sized from the memory budget",
  );
  return kvCacheTokens;
}

/** Logs load progress in quarters: enough to see a large model move, without a line per tensor. */
function progressLogger(log: FastifyBaseLogger): (progress: number) => void {
  let lastQuarter = -1;
  return (progress) => {
    const quarter = Math.floor(progress * 4);
    if (quarter <= lastQuarter) return;
    lastQuarter = quarter;
    log.info({ progress: Math.round(progress * 100) / 100 }, `loading model: ${Math.round(progress * 100)}%`);
  };
}

/** One line that says what is being served and where the memory goes. A failed plan never stops the server. */
function logStartupSummary(
  log: FastifyBaseLogger,
  model: GgufModelInfo,
  source: {
    ctxSize: number;
    parallel: number;
    batchSize: number;
    kvCacheTokens: number | null;
    flashAttention: boolean;
  },
  facts: { alias: string; threads: number; backend: string },
): void {
  try {
    // The context that runs: the shared pool's cells when the engine has one, else one slab per sequence.
    const plan = planMemory(model, { ...source, kvType: "f16" });
    log.info(
      {
        ...facts,
        parameters: plan.numParameters,
        activeParameters: plan.numActiveParameters,
        weightsBytes: plan.weightsBytes,
        kvBytes: plan.kvBytes,
        kvBytesPerToken: plan.kvBytesPerToken,
        kvCells: plan.numKvCells,
        computeBytes: plan.computeBytes,
        totalBytes: plan.totalBytes,
      },
      `serving ${facts.alias}: ${plan.numParameters.toLocaleString("en")} parameters; memory ${formatBytes(plan.totalBytes)} = ` +
        `weights ${formatBytes(plan.weightsBytes)} + KV ${formatBytes(plan.kvBytes)} (${plan.numKvCells} cells) + ` +
        `compute ${formatBytes(plan.computeBytes)} + output ${formatBytes(plan.outputBytes)}; ${facts.threads} threads on ${facts.backend}`,
    );
  } catch (error) {
    log.warn({ err: error }, "could not compute the memory plan for the startup summary");
  }
}
