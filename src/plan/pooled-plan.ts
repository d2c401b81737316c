/**
 * The memory of a pooling context (embeddings, reranking), as `LlamaPoolingContext` creates it: every input of a
 * decode at once, in a slab of the context per sequence or in one pool of a decode's cells.
 */
import type { GgufModelInfo } from "./gguf-model-info.ts";
import { type MemoryPlan, planMemory } from "./memory-plan.ts";

/** A pooling context gets llama-server's slab per sequence when that costs at most this much KV memory. */
const EMBEDDING_SLABS_MAX_BYTES = 256 * 1024 * 1024;

/**
 * Slabs keep each input's attention to its own cells, which decides the speed of small models; a model whose slabs
 * would cost more than `EMBEDDING_SLABS_MAX_BYTES` (a 7B model's 32 × 2048 cells are gigabytes) shares one pool of a
 * batch's cells, where its matrix products dominate anyway.
 */
export function embeddingKvLayout(
  model: GgufModelInfo | null,
  ctxSize: number,
  numSequences: number,
): "slabs" | "pool" {
  if (model === null) return "pool";
  try {
    const { kvBytesPerToken } = planMemory(model, {
      ctxSize,
      parallel: 1,
      batchSize: ctxSize,
      kvType: "f16",
      kvCacheTokens: null,
    });
    return kvBytesPerToken * ctxSize * numSequences <= EMBEDDING_SLABS_MAX_BYTES ? "slabs" : "pool";
  } catch {
    return "pool";
  }
}

/** Most tokens of one input of a model served for pooling: the server's context, capped by the training context. */
export function pooledContextSize(model: GgufModelInfo, ctxSize: number): number {
  return Math.min(ctxSize, model.contextLength ?? ctxSize);
}

/**
 * A model served beside the generator (`--embedding-model`, `--rerank-model`): its weights and its pooling context
 * of `numSequences` inputs per decode, with flash attention on as the server sets it.
 */
export function planPooledModel(model: GgufModelInfo, options: { ctxSize: number; numSequences: number }): MemoryPlan {
  const contextSize = pooledContextSize(model, options.ctxSize);
  const kvLayout = embeddingKvLayout(model, contextSize, options.numSequences);
  return planMemory(model, {
    ctxSize: contextSize,
    parallel: options.numSequences,
    batchSize: contextSize,
    kvType: "f16",
    kvCacheTokens: kvLayout === "pool" ? contextSize : null,
    flashAttention: true,
  });
}
