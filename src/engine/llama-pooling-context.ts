/**
 * A native embedding context with many sequences (the patched addon's `poolingType` and `getSequenceEmbedding`):
 * one decode pools every input of a batch, each in its own sequence, and the sequences are emptied for the next.
 */

import type { LlamaModel } from "node-llama-cpp";
import type { PoolingContext } from "./embedding-batcher.ts";
import type { TokenId } from "./engine.ts";
import { isPatchedContext, type LlamaInternals, type PatchedNativeContext } from "./llama-internals.ts";

/** How a sequence's token vectors become one: llama.cpp's pooling types. */
export const POOLINGS = ["mean", "cls", "last", "rank"] as const;
export type Pooling = (typeof POOLINGS)[number];

/** `llama_pooling_type` values. */
const POOLING_TYPE: Readonly<Record<Pooling, number>> = { mean: 1, cls: 2, last: 3, rank: 4 };

export interface LlamaPoolingContextOptions {
  readonly maxSequences: number;
  readonly maxBatchTokens: number;
  readonly threads: number;
  readonly flashAttention: boolean;
  readonly pooling: Pooling;
  /**
   * "slabs": a slab of `maxBatchTokens` cells per sequence, as llama-server's slots, so each input attends over its
   * own cells only; "pool": one pool of `maxBatchTokens` cells, 1/`maxSequences` of the memory, where every token of
   * a batch attends over the cells of every input in it (llama.cpp masks other sequences' cells but still scans
   * them: on stories260K, 7 inputs of 73 tokens per decode ran at 0.76× of one at a time).
   */
  readonly kvLayout: "slabs" | "pool";
}

export class LlamaPoolingContext implements PoolingContext {
  private readonly native: PatchedNativeContext;
  private readonly options: LlamaPoolingContextOptions;

  private constructor(native: PatchedNativeContext, options: LlamaPoolingContextOptions) {
    this.native = native;
    this.options = options;
  }

  /** Null with the stock addon, which cannot read one sequence's pooled vector. */
  static async open(
    internals: LlamaInternals,
    options: LlamaPoolingContextOptions,
  ): Promise<LlamaPoolingContext | null> {
    if (!internals.isPatched) return null;
    const native = internals.createContext({
      // Every decode's inputs fit at once; sequences are emptied after each decode.
      contextSize:
        options.kvLayout === "slabs" ? options.maxBatchTokens * options.maxSequences : options.maxBatchTokens,
      batchSize: options.maxBatchTokens,
      sequences: options.maxSequences,
      threads: options.threads,
      flashAttention: options.flashAttention,
      kvUnified: options.kvLayout === "pool",
      embeddings: true,
      poolingType: POOLING_TYPE[options.pooling],
    });
    if (!(await native.init()) || !isPatchedContext(native)) {
      await native.dispose();
      throw new Error("llama.cpp could not create the embedding context");
    }
    return new LlamaPoolingContext(native, options);
  }

  async embedBatch(inputs: readonly (readonly TokenId[])[]): Promise<Float32Array[]> {
    const numTokens = inputs.reduce((sum, tokens) => sum + tokens.length, 0);
    if (inputs.length > this.options.maxSequences || numTokens > this.options.maxBatchTokens)
      throw new RangeError(`a batch of ${inputs.length} inputs and ${numTokens} tokens does not fit the context`);
    const native = this.native;
    native.initBatch(numTokens);
    try {
      inputs.forEach((tokens, sequenceId) => {
        // Pooling reads every token's output.
        const outputs = Uint32Array.from(tokens, (_, index) => index);
        native.addToBatch(sequenceId, 0, Uint32Array.from(tokens), outputs);
      });
      await native.decodeBatch();
      return inputs.map((_, sequenceId) => native.getSequenceEmbedding(sequenceId));
    } finally {
      for (let sequenceId = 0; sequenceId < inputs.length; sequenceId++)
        native.removeTokenCellsFromSequence(sequenceId, 0, -1);
    }
  }

  async dispose(): Promise<void> {
    await this.native.dispose();
  }
}

/** The GGUF's pooling (`<arch>.pooling_type`), or `last` for a generative model, which declares none. */
export function modelPooling(model: LlamaModel): Pooling {
  const metadata: Record<string, unknown> = model.fileInfo.metadata;
  const architecture = model.fileInfo.metadata.general?.architecture;
  const fields = architecture === undefined ? undefined : metadata[architecture];
  const poolingType =
    typeof fields === "object" && fields !== null ? (fields as { pooling_type?: unknown }).pooling_type : undefined;
  return POOLINGS.find((name) => POOLING_TYPE[name] === poolingType) ?? "last";
}

/** Architectures whose rank pooling ends in a softmax inside llama.cpp's graph (`build_pooling`). */
const RANK_SOFTMAX_ARCHITECTURES: readonly string[] = ["qwen3", "qwen3vl"];

/** What a reranker's head outputs: see `ModelInfo.rankOutput`. */
export function rankOutputOf(model: LlamaModel): "logits" | "probabilities" {
  return RANK_SOFTMAX_ARCHITECTURES.includes(model.fileInfo.metadata.general?.architecture ?? "")
    ? "probabilities"
    : "logits";
}
