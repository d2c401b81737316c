/**
 * Embeddings through node-llama-cpp's own embedding context, created on first use. That context has one sequence
 * (`llama_get_embeddings_seq(ctx, 0)`), so calls run one after another.
 */
import type { LlamaEmbeddingContext, LlamaModel } from "node-llama-cpp";
import type { EmbeddingResult, TokenId } from "./engine.ts";
import { asTokens } from "./llama-tokenizer.ts";

export interface LlamaEmbedderOptions {
  readonly contextSize: number;
  readonly threads: number;
}

export class LlamaEmbedder {
  private readonly model: LlamaModel;
  private readonly options: LlamaEmbedderOptions;
  private context: Promise<LlamaEmbeddingContext> | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(model: LlamaModel, options: LlamaEmbedderOptions) {
    this.model = model;
    this.options = options;
  }

  async embed(inputs: readonly (readonly TokenId[])[]): Promise<EmbeddingResult[]> {
    const run = this.queue.then(async () => {
      const context = await this.getContext();
      const results: EmbeddingResult[] = [];
      for (const tokens of inputs) {
        const embedding = await context.getEmbeddingFor(asTokens(tokens));
        results.push({ embedding: [...embedding.vector], numTokens: tokens.length });
      }
      return results;
    });
    // The caller gets the failure through `run`; the queue only orders calls, so the next one starts regardless.
    this.queue = run.catch(() => undefined);
    return run;
  }

  async dispose(): Promise<void> {
    const context = this.context;
    this.context = null;
    // A context that failed to be created holds nothing; the embed call that awaited it got the failure.
    if (context !== null)
      await context.then(
        (created) => created.dispose(),
        () => undefined,
      );
  }

  private getContext(): Promise<LlamaEmbeddingContext> {
    if (this.context === null) {
      const context = this.model.createEmbeddingContext({
        contextSize: this.options.contextSize,
        threads: this.options.threads,
      });
      this.context = context;
      // A failed creation is retried on the next request rather than cached forever; the caller awaiting `context`
      // gets the failure. A newer context (after a dispose) stays.
      context.catch(() => {
        if (this.context === context) this.context = null;
      });
    }
    return this.context;
  }
}
