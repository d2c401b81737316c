/**
 * Embeddings in batches: inputs from every waiting request are packed, in arrival order, into one decode of a
 * pooling context (one sequence per input, up to the context's sequences and batch tokens), and each input's
 * pooled vector is read from its sequence. So 32 concurrent one-input requests cost about one decode, not 32.
 *
 * Inputs of one request may land in different decodes; a request resolves when its last input has. A failed
 * decode fails the requests with inputs in it and the batcher goes on with the rest.
 */
import type { EmbeddingResult, TokenId } from "./engine.ts";

/** What the batcher needs of a native pooling context (the patched addon's embedding context). */
export interface PoolingContext {
  /** One decode of `inputs`, input i in sequence i; returns each sequence's pooled vector and frees the sequences. */
  embedBatch(inputs: readonly (readonly TokenId[])[]): Promise<Float32Array[]>;
}

export interface EmbeddingBatcherOptions {
  readonly maxSequences: number;
  /** Most tokens of one decode, and so of one input. */
  readonly maxBatchTokens: number;
  /** Most inputs waiting; a request that would pass it is refused whole with `EmbeddingQueueFullError`. */
  readonly maxWaitingInputs?: number;
}

/** The batcher's queue is full: the server is at capacity for embeddings (a 429 to the client). */
export class EmbeddingQueueFullError extends Error {
  override readonly name = "EmbeddingQueueFullError";
}

interface PendingRequest {
  readonly results: (EmbeddingResult | undefined)[];
  numOpen: number;
  readonly resolve: (results: EmbeddingResult[]) => void;
  readonly reject: (error: unknown) => void;
  failed: boolean;
}

interface PendingInput {
  readonly tokens: readonly TokenId[];
  readonly request: PendingRequest;
  readonly index: number;
}

export class EmbeddingBatcher {
  private readonly context: PoolingContext;
  private readonly options: EmbeddingBatcherOptions;
  private readonly waiting: PendingInput[] = [];
  private isRunning = false;
  /** Decodes run, for tests and metrics. */
  numDecodes = 0;

  /** Inputs waiting for a decode: the embedding queue's length. */
  get numWaiting(): number {
    return this.waiting.length;
  }

  constructor(context: PoolingContext, options: EmbeddingBatcherOptions) {
    if (options.maxSequences < 1 || options.maxBatchTokens < 1) throw new RangeError("an empty batch cannot embed");
    this.context = context;
    this.options = options;
  }

  /**
   * Every input must be non-empty and at most `maxBatchTokens` long (the route refuses others with a 400). An abort
   * drops the inputs not yet decoded and rejects with the signal's reason.
   */
  embed(inputs: readonly (readonly TokenId[])[], signal?: AbortSignal): Promise<EmbeddingResult[]> {
    const bad = inputs.findIndex((tokens) => tokens.length === 0 || tokens.length > this.options.maxBatchTokens);
    if (bad >= 0) {
      return Promise.reject(
        new RangeError(`input ${bad} has ${inputs[bad]?.length} tokens; 1 to ${this.options.maxBatchTokens} fit`),
      );
    }
    if (inputs.length === 0) return Promise.resolve([]);
    const maxWaiting = this.options.maxWaitingInputs ?? Number.POSITIVE_INFINITY;
    if (this.waiting.length > 0 && this.waiting.length + inputs.length > maxWaiting) {
      return Promise.reject(
        new EmbeddingQueueFullError(`${this.waiting.length} embedding inputs are waiting; the limit is ${maxWaiting}`),
      );
    }
    return new Promise<EmbeddingResult[]>((resolve, reject) => {
      const request: PendingRequest = {
        results: new Array(inputs.length),
        numOpen: inputs.length,
        resolve,
        reject,
        failed: false,
      };
      for (const [index, tokens] of inputs.entries()) this.waiting.push({ tokens, request, index });
      signal?.addEventListener("abort", () => this.fail(request, signal.reason), { once: true });
      if (signal?.aborted === true) this.fail(request, signal.reason);
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.isRunning) return;
    this.isRunning = true;
    try {
      while (this.waiting.length > 0) await this.decodeNext();
    } finally {
      this.isRunning = false;
    }
  }

  private async decodeNext(): Promise<void> {
    const batch = this.takeBatch();
    let vectors: Float32Array[];
    try {
      this.numDecodes += 1;
      vectors = await this.context.embedBatch(batch.map((input) => input.tokens));
    } catch (error) {
      for (const input of batch) this.fail(input.request, error);
      return;
    }
    batch.forEach((input, position) => {
      const request = input.request;
      if (request.failed) return;
      request.results[input.index] = { embedding: Array.from(vectors[position] ?? []), numTokens: input.tokens.length };
      request.numOpen -= 1;
      if (request.numOpen === 0) request.resolve(request.results as EmbeddingResult[]);
    });
  }

  /** Rejects a request once and drops its inputs that still wait. */
  private fail(request: PendingRequest, error: unknown): void {
    if (request.failed || request.numOpen === 0) return;
    request.failed = true;
    for (let i = this.waiting.length - 1; i >= 0; i--)
      if (this.waiting[i]?.request === request) this.waiting.splice(i, 1);
    request.reject(error);
  }

  /** The longest arrival-order prefix of waiting inputs that fits one decode (at least one input). */
  private takeBatch(): PendingInput[] {
    let numTokens = 0;
    let count = 0;
    for (const input of this.waiting) {
      if (count === this.options.maxSequences || numTokens + input.tokens.length > this.options.maxBatchTokens) break;
      numTokens += input.tokens.length;
      count += 1;
    }
    return this.waiting.splice(0, Math.max(1, count));
  }
}
