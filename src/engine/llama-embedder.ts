/**
 * Embeddings, on a context of their own created on first use. With the patched addon that is a pooling context of
 * many sequences behind an `EmbeddingBatcher`, so concurrent requests share decodes; with the stock addon it is
 * node-llama-cpp's one-sequence embedding context (`llama_get_embeddings_seq(ctx, 0)`), one input after another.
 */
import type { LlamaEmbeddingContext, LlamaModel } from "node-llama-cpp";
import { EmbeddingBatcher } from "./embedding-batcher.ts";
import type { EmbeddingResult, TokenId } from "./engine.ts";
import type { LlamaInternals } from "./llama-internals.ts";
import { LlamaPoolingContext, type Pooling } from "./llama-pooling-context.ts";
import { asTokens } from "./llama-tokenizer.ts";

export interface LlamaEmbedderOptions {
  /** Most tokens of one input, and of one decode. */
  readonly contextSize: number;
  readonly threads: number;
  /** Inputs embedded together in one decode. */
  readonly maxSequences: number;
  readonly flashAttention: boolean;
  readonly pooling: Pooling;
  readonly kvLayout: "slabs" | "pool";
  /** Most inputs waiting before requests are refused (`EmbeddingQueueFullError`). */
  readonly maxWaitingInputs: number;
}

type Backend =
  | { readonly kind: "batched"; readonly context: LlamaPoolingContext; readonly batcher: EmbeddingBatcher }
  | { readonly kind: "single"; readonly context: LlamaEmbeddingContext };

export class LlamaEmbedder {
  private readonly model: LlamaModel;
  private readonly internals: LlamaInternals;
  private readonly options: LlamaEmbedderOptions;
  private backend: Promise<Backend> | null = null;
  /** The batcher of the batched backend once it is open, for the queue's length. */
  private batcher: EmbeddingBatcher | null = null;
  /** Orders the stock context's calls; the batcher orders its own. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(model: LlamaModel, internals: LlamaInternals, options: LlamaEmbedderOptions) {
    this.model = model;
    this.internals = internals;
    this.options = options;
  }

  async embed(inputs: readonly (readonly TokenId[])[], signal?: AbortSignal): Promise<EmbeddingResult[]> {
    const backend = await this.getBackend();
    if (backend.kind === "batched") return backend.batcher.embed(inputs, signal);
    const run = this.queue.then(async () => {
      const results: EmbeddingResult[] = [];
      for (const tokens of inputs) {
        signal?.throwIfAborted();
        const embedding = await backend.context.getEmbeddingFor(asTokens(tokens));
        results.push({ embedding: [...embedding.vector], numTokens: tokens.length });
      }
      return results;
    });
    // The caller gets the failure through `run`; the queue only orders calls, so the next one starts regardless.
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Inputs waiting for a decode; the stock backend keeps no queue of its own. */
  numWaitingInputs(): number {
    return this.batcher?.numWaiting ?? 0;
  }

  async dispose(): Promise<void> {
    const backend = this.backend;
    this.backend = null;
    this.batcher = null;
    // A context that failed to be created holds nothing; the embed call that awaited it got the failure.
    if (backend !== null)
      await backend.then(
        (created) => created.context.dispose(),
        () => undefined,
      );
  }

  private getBackend(): Promise<Backend> {
    if (this.backend === null) {
      const backend = this.openBackend();
      this.backend = backend;
      // A failed creation is retried on the next request rather than cached forever; the caller awaiting it gets
      // the failure. A newer backend (after a dispose) stays.
      backend.catch(() => {
        if (this.backend === backend) this.backend = null;
      });
    }
    return this.backend;
  }

  private async openBackend(): Promise<Backend> {
    const options = this.options;
    const pooling = await LlamaPoolingContext.open(this.internals, {
      maxSequences: options.maxSequences,
      maxBatchTokens: options.contextSize,
      threads: options.threads,
      flashAttention: options.flashAttention,
      pooling: options.pooling,
      kvLayout: options.kvLayout,
    });
    if (pooling !== null) {
      const batcher = new EmbeddingBatcher(pooling, {
        maxSequences: options.maxSequences,
        maxBatchTokens: options.contextSize,
        maxWaitingInputs: options.maxWaitingInputs,
      });
      this.batcher = batcher;
      return { kind: "batched", context: pooling, batcher };
    }
    const context = await this.model.createEmbeddingContext({
      contextSize: options.contextSize,
      threads: options.threads,
    });
    return { kind: "single", context };
  }
}
