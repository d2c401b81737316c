/**
 * The node-llama-cpp engine: one model, one context with `numSequences` slots, and one native batch per `step`.
 * The parts: `open-llama-context.ts` loads the model and creates the context, `step-runner.ts` and `sample-step.ts`
 * run a step, `llama-sequences.ts` keeps the slots and their KV cells, `llama-tokenizer.ts` and `llama-embedder.ts`
 * serve text and embeddings.
 */

import type { LlamaModel } from "node-llama-cpp";
import { combinedFailure } from "./combined-failure.ts";
import type {
  ChatMessage,
  ChatTool,
  EmbeddingResult,
  Engine,
  GrammarConstraint,
  ModelInfo,
  RenderedChat,
  SamplingCounters,
  SamplingParams,
  SavedCells,
  SequenceId,
  StepItem,
  StepOutput,
  TokenId,
} from "./engine.ts";
import { GrammarFollower } from "./grammar-follower.ts";
import { LlamaEmbedder } from "./llama-embedder.ts";
import { DEFAULT_EMBEDDING_SEQUENCES, type LlamaEngineOptions } from "./llama-engine-options.ts";
import { LlamaGrammars } from "./llama-grammars.ts";
import { isPatchedContext, type NativeContext } from "./llama-internals.ts";
import { modelPooling, rankOutputOf } from "./llama-pooling-context.ts";
import { LlamaSequences } from "./llama-sequences.ts";
import { LlamaTokenizer } from "./llama-tokenizer.ts";
import { modelInfoOf, type OpenedLlamaContext, openLlamaContext } from "./open-llama-context.ts";
import { StepRunner } from "./step-runner.ts";

export type { FlashAttentionOption, KvLayout, LlamaEngineOptions } from "./llama-engine-options.ts";
export type { GpuOption } from "./llama-loader.ts";

export class LlamaEngine implements Engine {
  readonly info: ModelInfo;
  /** "cpu", or the GPU backend node-llama-cpp loaded. */
  readonly backend: string;
  private readonly model: LlamaModel;
  private readonly native: NativeContext;
  private readonly tokenizer: LlamaTokenizer;
  private readonly sequences: LlamaSequences;
  private readonly runner: StepRunner;
  private readonly embedder: LlamaEmbedder;
  private readonly grammars: LlamaGrammars;
  private readonly follower: GrammarFollower;
  private isDisposed = false;

  private constructor({ llama, model, internals, native, options }: OpenedLlamaContext) {
    this.model = model;
    this.native = native;
    this.backend = llama.gpu === false ? "cpu" : llama.gpu;
    this.tokenizer = new LlamaTokenizer(model, options.chatTemplate ?? null);
    this.info = {
      ...modelInfoOf(model, options, isPatchedContext(native)),
      toolSyntax: this.tokenizer.toolSyntax,
      pooling: options.pooling ?? modelPooling(model),
      rankOutput: rankOutputOf(model),
    };
    const patched = isPatchedContext(native) ? native : null;
    this.grammars = new LlamaGrammars(internals.grammars, {
      isEndOfGeneration: (token) => this.tokenizer.isEndOfGeneration(token),
      vocabSize: this.info.vocabSize,
      masker: patched === null ? null : (state, mask) => patched.getGrammarMask(state, mask),
    });
    this.follower = new GrammarFollower({
      grammars: this.grammars,
      isEndOfGeneration: (token) => this.tokenizer.isEndOfGeneration(token),
      pieceOf: (previous, token) => this.tokenizer.pieceAfter(previous, token),
      tokensOf: (text) => this.tokenizer.tokensSpelling(text),
      penaltyWindow: options.contextSize,
    });
    this.sequences = new LlamaSequences(native, internals, {
      numSequences: options.numSequences,
      contextSize: options.contextSize,
      isKvShared: this.info.isKvShared,
      canCopyCells: this.info.canCopyCells,
      grammars: this.follower,
      onNativeLog: options.onNativeLog,
    });
    this.runner = new StepRunner(
      native,
      this.sequences,
      { parsed: this.grammars, follower: this.follower },
      {
        batchSize: options.batchSize,
        penaltyWindow: options.contextSize,
      },
    );
    this.embedder = new LlamaEmbedder(model, internals, {
      contextSize: Math.min(this.info.contextSize, this.info.trainContextSize),
      threads: options.threads,
      maxSequences: options.embeddingSequences ?? DEFAULT_EMBEDDING_SEQUENCES,
      flashAttention: options.flashAttention,
      pooling: this.info.pooling,
      kvLayout: options.embeddingKvLayout ?? "pool",
      maxWaitingInputs: options.maxWaitingEmbeddingInputs ?? 8192,
    });
  }

  static async load(options: LlamaEngineOptions): Promise<LlamaEngine> {
    return new LlamaEngine(await openLlamaContext(options));
  }

  tokenize(text: string, options: { addBos?: boolean } = {}): TokenId[] {
    return this.tokenizer.tokenize(text, options);
  }

  detokenize(tokens: readonly TokenId[]): string {
    return this.tokenizer.detokenize(tokens);
  }

  isEndOfGeneration(token: TokenId): boolean {
    return this.tokenizer.isEndOfGeneration(token);
  }

  renderChat(messages: readonly ChatMessage[], tools: readonly ChatTool[] | null = null): RenderedChat {
    return this.tokenizer.renderChat(messages, tools);
  }

  tokenizeWithSpecials(text: string): TokenId[] {
    return this.tokenizer.tokenizeWithSpecials(text);
  }

  rerankInput(query: string, document: string): TokenId[] {
    return this.tokenizer.rerankInput(query, document);
  }

  prepareGrammar(grammar: GrammarConstraint): void {
    if (this.isDisposed) throw new Error("engine is disposed");
    this.grammars.prepare(grammar);
  }

  acquireSequence(sampling: SamplingParams, history: readonly TokenId[] = []): SequenceId | null {
    // A sampler made on a disposed model would point into freed native memory.
    if (this.isDisposed) throw new Error("engine is disposed");
    return this.sequences.acquire(sampling, history);
  }

  samplingCounters(): SamplingCounters {
    const native = this.native;
    return {
      sampleMs: this.runner.sampleMs,
      numGrammarFallbacks: isPatchedContext(native) && !this.isDisposed ? native.getGrammarFallbacks() : 0,
      numTriggerFailures: this.follower.numTriggerFailures,
      numPickedInDecode: this.runner.numPickedInDecode,
    };
  }

  /** Decodes of short steps run on the event loop's thread instead of the thread pool; for tests and benchmarks. */
  get numDecodesOnLoopThread(): number {
    return this.runner.numDecodesOnLoopThread;
  }

  numFreeSequences(): number {
    return this.sequences.numFree();
  }

  async step(items: readonly StepItem[]): Promise<StepOutput[]> {
    if (this.isDisposed) throw new Error("engine is disposed");
    return this.runner.run(items);
  }

  acceptTokens(sequenceId: SequenceId, tokens: readonly TokenId[]): void {
    if (this.isDisposed) return;
    const slot = this.sequences.inUse(sequenceId);
    const previous = slot.history.at(-1) ?? null;
    slot.history.push(...tokens);
    this.follower.follow(slot, tokens, previous, false);
  }

  releaseSequence(sequenceId: SequenceId): void {
    if (!this.isDisposed) this.sequences.release(sequenceId);
  }

  truncateSequence(sequenceId: SequenceId, fromPos: number): void {
    if (!this.isDisposed) this.sequences.truncate(sequenceId, fromPos);
  }

  shareCells(src: SequenceId, dst: SequenceId, startPos: number, endPos: number): void {
    this.sequences.shareCells(src, dst, startPos, endPos);
  }

  saveCells(sequenceId: SequenceId, numTokens: number): SavedCells {
    return this.sequences.saveCells(sequenceId, numTokens);
  }

  restoreCells(saved: SavedCells, dst: SequenceId, startPos: number, endPos: number): boolean {
    return this.sequences.restoreCells(saved, dst, startPos, endPos);
  }

  /** Whether raw logits (`returnLogits`) are available: the patched addon is loaded. */
  get canReturnLogits(): boolean {
    return this.runner.canReturnLogits;
  }

  /** The range of positions a sequence holds in the KV cache, or null when it holds none; for tests and checks. */
  positionsOf(sequenceId: SequenceId): { readonly min: number; readonly max: number } | null {
    return this.sequences.positionsOf(sequenceId);
  }

  async embed(inputs: readonly (readonly TokenId[])[], signal?: AbortSignal): Promise<EmbeddingResult[]> {
    return this.embedder.embed(inputs, signal);
  }

  numWaitingInputs(): number {
    return this.embedder.numWaitingInputs();
  }

  async dispose(): Promise<void> {
    if (this.isDisposed) return;
    this.isDisposed = true;
    // Each part is disposed even when an earlier one fails, so a failed embedder never leaks the model's memory.
    const failures: unknown[] = [];
    const parts = [
      () => this.sequences.freeAll(),
      () => this.embedder.dispose(),
      () => this.native.dispose(),
      () => this.model.dispose(),
    ];
    for (const dispose of parts) {
      try {
        await dispose();
      } catch (error) {
        failures.push(error);
      }
    }
    if (failures.length > 0) throw combinedFailure(failures);
  }
}
