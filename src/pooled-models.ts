/**
 * The embedding models and rerankers a process serves beside its generator (`--embedding-model`,
 * `--rerank-model`), so one process answers a RAG stack's three kinds of request. Each has its own pooling context
 * and input queue; the generator's engine loop never waits for them.
 */
import type { FastifyBaseLogger } from "fastify";
import type { Config } from "./config/config-schema.ts";
import { parsePooledModelEntry } from "./config/pooled-model-entry.ts";
import { LlamaPooledModel } from "./engine/llama-pooled-model.ts";
import { readGgufModelInfo } from "./plan/gguf-model-info.ts";
import { embeddingKvLayout, pooledContextSize } from "./plan/pooled-plan.ts";
import type { PooledModelRuntime } from "./server/serving-state.ts";

/** One `--embedding-model` or `--rerank-model` entry. */
export interface PooledModelSpec {
  readonly modelId: string;
  readonly modelPath: string;
  readonly role: PooledModelRuntime["role"];
}

export interface LoadedPooledModels {
  readonly models: readonly PooledModelRuntime[];
  dispose(): Promise<void>;
}

/**
 * The entries as served: `NAME=PATH` or a path, whose id is its file name without extension. Ids are unique across
 * the process, the generator's included, since a request names its model by id alone.
 */
export function pooledModelSpecs(config: Config, generatorId: string): PooledModelSpec[] {
  const specs = [
    ...config.embeddingModel.map((entry) => specOf(entry, "embedding")),
    ...config.rerankModel.map((entry) => specOf(entry, "rerank")),
  ];
  const ids = new Set([generatorId]);
  for (const spec of specs) {
    if (ids.has(spec.modelId)) {
      throw new Error(
        `--${spec.role}-model ${spec.modelPath}: the id ${spec.modelId} is already served; name it with NAME=PATH`,
      );
    }
    ids.add(spec.modelId);
  }
  return specs;
}

function specOf(entry: string, role: PooledModelSpec["role"]): PooledModelSpec {
  return { ...parsePooledModelEntry(entry), role };
}

/** Loads every entry in turn; when one fails, the ones loaded are released and the error names the file. */
export async function loadPooledModels(
  config: Config,
  specs: readonly PooledModelSpec[],
  log: FastifyBaseLogger,
): Promise<LoadedPooledModels> {
  const loaded: { readonly runtime: PooledModelRuntime; readonly model: LlamaPooledModel }[] = [];
  const dispose = async (): Promise<void> => {
    for (const { model } of loaded.splice(0).reverse()) await model.dispose();
  };
  try {
    for (const spec of specs) {
      const info = await readGgufModelInfo(spec.modelPath).catch(() => null);
      const contextSize = config.ctxSize;
      log.info({ modelPath: spec.modelPath, modelId: spec.modelId, role: spec.role }, "loading pooled model");
      const model = await LlamaPooledModel.load({
        modelPath: spec.modelPath,
        threads: config.threads,
        gpu: config.gpu,
        contextSize,
        maxSequences: config.embeddingParallel,
        maxWaitingInputs: config.maxQueuedRequests * config.embeddingParallel,
        flashAttention: config.flashAttn,
        kvLayout: embeddingKvLayout(
          info,
          info === null ? contextSize : pooledContextSize(info, contextSize),
          config.embeddingParallel,
        ),
        ...(spec.role === "rerank" ? { pooling: "rank" as const } : {}),
      }).catch((error: unknown) => {
        const reason = error instanceof Error ? error.message : String(error);
        throw new Error(
          `--${spec.role}-model ${spec.modelPath}: could not load it as ${roleName(spec.role)}: ${reason}`,
          {
            cause: error,
          },
        );
      });
      loaded.push({ runtime: { ...spec, createdSeconds: Math.floor(Date.now() / 1000), engine: model }, model });
      if (spec.role === "embedding" && model.info.pooling === "rank") {
        throw new Error(
          `--embedding-model ${spec.modelPath}: its pooling is rank (a reranker); pass it as --rerank-model`,
        );
      }
      log.info({ modelId: spec.modelId, role: spec.role, ...model.info }, "pooled model loaded");
    }
  } catch (error) {
    await dispose();
    throw error;
  }
  return { models: loaded.map((entry) => entry.runtime), dispose };
}

function roleName(role: PooledModelSpec["role"]): string {
  return role === "rerank" ? "a reranker" : "an embedding model";
}
