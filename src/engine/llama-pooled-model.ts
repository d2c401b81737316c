/**
 * A model served only for embeddings or reranking beside the generator (`--embedding-model`, `--rerank-model`): its
 * tokenizer and a pooling context of its own. It holds no generation context and no slot of the engine loop; its
 * inputs are batched across requests by its own `EmbeddingBatcher`.
 */
import type { LlamaModel } from "node-llama-cpp";
import type { EmbeddingResult, PoolingEngine, PoolingInfo, TokenId } from "./engine.ts";
import { LlamaEmbedder } from "./llama-embedder.ts";
import { type FlashAttentionOption, resolveFlashAttention } from "./llama-engine-options.ts";
import { getInternals } from "./llama-internals.ts";
import { type GpuOption, loadLlama } from "./llama-loader.ts";
import { modelPooling, type Pooling, rankOutputOf } from "./llama-pooling-context.ts";
import { LlamaTokenizer } from "./llama-tokenizer.ts";
import { vocabSizeOf } from "./open-llama-context.ts";

export interface LlamaPooledModelOptions {
  readonly modelPath: string;
  readonly threads: number;
  readonly gpu: GpuOption;
  /** Most tokens of one input; the model's training context caps it. */
  readonly contextSize: number;
  /** Inputs embedded together in one decode. */
  readonly maxSequences: number;
  /** Most inputs waiting before requests are refused. */
  readonly maxWaitingInputs: number;
  /** "auto" is on. */
  readonly flashAttention: FlashAttentionOption;
  readonly kvLayout: "slabs" | "pool";
  /** Defaults to the GGUF's pooling; "rank" serves a cross-encoder as a reranker. */
  readonly pooling?: Pooling;
  readonly onLoadProgress?: (progress: number) => void;
}

export class LlamaPooledModel implements PoolingEngine {
  readonly info: PoolingInfo;
  private readonly model: LlamaModel;
  private readonly tokenizer: LlamaTokenizer;
  private readonly embedder: LlamaEmbedder;

  private constructor(model: LlamaModel, options: LlamaPooledModelOptions, isGpu: boolean) {
    this.model = model;
    this.tokenizer = new LlamaTokenizer(model);
    const contextSize = Math.min(options.contextSize, model.trainContextSize);
    this.info = {
      name: model.fileInfo.metadata.general?.name ?? "model",
      vocabSize: vocabSizeOf(model),
      contextSize,
      trainContextSize: model.trainContextSize,
      embeddingSize: model.embeddingVectorSize,
      pooling: options.pooling ?? modelPooling(model),
      rankOutput: rankOutputOf(model),
    };
    this.embedder = new LlamaEmbedder(model, getInternals(model), {
      contextSize,
      threads: options.threads,
      maxSequences: options.maxSequences,
      // "auto" is on even on CPU: every input attends within cells it shares with masked ones (a slab's unused
      // tail, or the pool's other inputs), which the CPU flash-attention kernel skips; served alone as the model,
      // the same file pooled 2.5× faster with it on than off.
      flashAttention: resolveFlashAttention(options.flashAttention, isGpu, true),
      pooling: this.info.pooling,
      kvLayout: options.kvLayout,
      maxWaitingInputs: options.maxWaitingInputs,
    });
  }

  /**
   * Loads the model and embeds one input, so its pooling context is allocated at start-up and a file that cannot
   * pool as asked (a reranker without a classification head) fails here rather than on the first request.
   */
  static async load(options: LlamaPooledModelOptions): Promise<LlamaPooledModel> {
    const llama = await loadLlama(options.gpu);
    const model = await llama.loadModel({
      modelPath: options.modelPath,
      ...(options.onLoadProgress === undefined ? {} : { onLoadProgress: options.onLoadProgress }),
    });
    let pooled: LlamaPooledModel | null = null;
    try {
      if (options.pooling === "rank" && !hasClassificationHead(model)) {
        throw new Error("it has no classification head (cls.weight or cls.output.weight): it cannot score pairs");
      }
      pooled = new LlamaPooledModel(model, options, llama.gpu !== false);
      await pooled.embed([pooled.tokenize("warm-up", { addBos: true })]);
      return pooled;
    } catch (error) {
      await (pooled === null ? model.dispose() : pooled.dispose()).catch(() => undefined);
      throw error;
    }
  }

  tokenize(text: string, options: { addBos?: boolean } = {}): TokenId[] {
    return this.tokenizer.tokenize(text, options);
  }

  detokenize(tokens: readonly TokenId[]): string {
    return this.tokenizer.detokenize(tokens);
  }

  tokenizeWithSpecials(text: string): TokenId[] {
    return this.tokenizer.tokenizeWithSpecials(text);
  }

  rerankInput(query: string, document: string): TokenId[] {
    return this.tokenizer.rerankInput(query, document);
  }

  embed(inputs: readonly (readonly TokenId[])[], signal?: AbortSignal): Promise<EmbeddingResult[]> {
    return this.embedder.embed(inputs, signal);
  }

  numWaitingInputs(): number {
    return this.embedder.numWaitingInputs();
  }

  /** Frees the pooling context, then the model, even when the context's release fails. */
  async dispose(): Promise<void> {
    try {
      await this.embedder.dispose();
    } finally {
      await this.model.dispose();
    }
  }
}

/**
 * Without a head llama.cpp's rank pooling returns the first token's hidden state, whose first value would pass for
 * a score.
 */
function hasClassificationHead(model: LlamaModel): boolean {
  return (model.fileInfo.tensorInfo ?? []).some(
    (tensor) => tensor.name === "cls.weight" || tensor.name === "cls.output.weight",
  );
}
