/**
 * The node-llama-cpp engine: one model, one context with `numSequences` slots, and one native batch per `step`.
 */
import {
  getLlama,
  LlamaLogLevel,
  resolveChatWrapper,
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  type LlamaContext,
  type LlamaEmbeddingContext,
  type LlamaModel,
  type Token,
} from "node-llama-cpp";
import type {
  ChatMessage,
  EmbeddingResult,
  Engine,
  ModelInfo,
  RenderedChat,
  SamplingParams,
  SequenceId,
  StepItem,
  StepOutput,
  TokenId,
} from "./engine.ts";
import { getInternals, type LlamaInternals, type NativeSampler, type NativeSamplerConfig } from "./llama-internals.ts";
import { toSampledLogprobs } from "./logprobs.ts";

export type GpuOption = "auto" | "cuda" | "metal" | "vulkan" | "false";
export type FlashAttentionOption = "auto" | "on" | "off";

export interface LlamaEngineOptions {
  readonly modelPath: string;
  /** Threads of each decode. Defaults to the caller's choice; there is no safe library default on small machines. */
  readonly threads: number;
  readonly numSequences: number;
  /** Tokens per sequence. */
  readonly contextSize: number;
  /** Most tokens per step. */
  readonly batchSize: number;
  readonly gpu: GpuOption;
  /** "auto" is on for GPU backends and off on CPU. Defaults to "auto". */
  readonly flashAttention?: FlashAttentionOption;
  /** Receives llama.cpp's own log lines at warn level and above. */
  readonly onNativeLog?: (level: "error" | "warn", message: string) => void;
  /** Receives the model's load progress, 0 to 1. */
  readonly onLoadProgress?: (progress: number) => void;
}

interface Slot {
  readonly id: SequenceId;
  sampler: NativeSampler | null;
  sampling: SamplingParams | null;
  /** Sampled tokens, for presence and frequency penalties. */
  history: TokenId[];
  isInUse: boolean;
}

export class LlamaEngine implements Engine {
  readonly info: ModelInfo;
  /** "cpu", or the GPU backend node-llama-cpp loaded. */
  readonly backend: string;
  private readonly llama: Llama;
  private readonly model: LlamaModel;
  private readonly context: LlamaContext;
  private readonly internals: LlamaInternals;
  private readonly chatWrapper: ChatWrapper;
  private readonly slots: Slot[];
  private readonly threads: number;
  private embeddingContext: Promise<LlamaEmbeddingContext> | null = null;
  private embeddingQueue: Promise<unknown> = Promise.resolve();
  private isStepping = false;
  private readonly deferredReleases: SequenceId[] = [];
  private isDisposed = false;

  private constructor(llama: Llama, model: LlamaModel, context: LlamaContext, options: LlamaEngineOptions) {
    this.llama = llama;
    this.model = model;
    this.context = context;
    this.threads = options.threads;
    this.internals = getInternals(model, context);
    this.chatWrapper = resolveChatWrapper(model);
    this.slots = Array.from({ length: options.numSequences }, (_, index) => ({
      id: index as SequenceId,
      sampler: null,
      sampling: null,
      history: [],
      isInUse: false,
    }));
    this.backend = llama.gpu === false ? "cpu" : llama.gpu;
    this.info = {
      name: model.fileInfo.metadata.general?.name ?? "model",
      vocabSize: vocabSizeOf(model),
      contextSize: context.contextSize,
      numSequences: options.numSequences,
      batchSize: context.batchSize,
      trainContextSize: model.trainContextSize,
      embeddingSize: model.embeddingVectorSize,
      bosToken: model.tokens.bos,
      isFlashAttention: context.flashAttention === true,
    };
  }

  static async load(options: LlamaEngineOptions): Promise<LlamaEngine> {
    const llama = await getLlama({
      gpu: options.gpu === "false" ? false : options.gpu,
      build: "never",
      logLevel: LlamaLogLevel.warn,
      logger: (level, message) => {
        if (level === LlamaLogLevel.error || level === LlamaLogLevel.fatal) options.onNativeLog?.("error", message);
        else if (level === LlamaLogLevel.warn) options.onNativeLog?.("warn", message);
      },
    });
    const model = await llama.loadModel({
      modelPath: options.modelPath,
      ...(options.onLoadProgress === undefined ? {} : { onLoadProgress: options.onLoadProgress }),
    });
    try {
      const context = await model.createContext({
        sequences: options.numSequences,
        contextSize: options.contextSize,
        batchSize: options.batchSize,
        threads: options.threads,
        flashAttention: resolveFlashAttention(options.flashAttention ?? "auto", llama.gpu !== false),
      });
      return new LlamaEngine(llama, model, context, options);
    } catch (error) {
      await model.dispose();
      throw error;
    }
  }

  tokenize(text: string, options: { addBos?: boolean } = {}): TokenId[] {
    const tokens = this.model.tokenize(text, false);
    const bos = this.model.tokens.bos;
    if (options.addBos === true && bos != null && this.model.tokens.shouldPrependBosToken && tokens[0] !== bos) {
      return [bos, ...tokens];
    }
    return tokens;
  }

  detokenize(tokens: readonly TokenId[]): string {
    return this.model.detokenize(asTokens(tokens), false);
  }

  isEndOfGeneration(token: TokenId): boolean {
    return this.model.isEogToken(token as Token);
  }

  renderChat(messages: readonly ChatMessage[]): RenderedChat {
    const chatHistory: ChatHistoryItem[] = messages.map((message): ChatHistoryItem => {
      if (message.role === "system" || message.role === "developer") return { type: "system", text: message.content };
      if (message.role === "assistant") return { type: "model", response: [message.content] };
      return { type: "user", text: message.content };
    });
    chatHistory.push({ type: "model", response: [] });
    const state = this.chatWrapper.generateContextState({ chatHistory });
    const stopStrings: string[] = [];
    const stopTokens: TokenId[] = [];
    for (const trigger of state.stopGenerationTriggers) {
      const triggerTokens = trigger.tokenize(this.model.tokenizer);
      const text = this.model.detokenize(triggerTokens, false);
      if (triggerTokens.length === 1 && triggerTokens[0] !== undefined) stopTokens.push(triggerTokens[0]);
      if (text.length > 0) stopStrings.push(text);
    }
    return { tokens: state.contextText.tokenize(this.model.tokenizer), stopStrings, stopTokens };
  }

  acquireSequence(sampling: SamplingParams): SequenceId | null {
    this.flushDeferredReleases();
    const slot = this.slots.find((candidate) => !candidate.isInUse);
    if (slot === undefined) return null;
    const sampler = this.internals.createSampler();
    sampler.applyConfig(toNativeConfig(sampling, [], this.info.contextSize));
    slot.sampler = sampler;
    slot.sampling = sampling;
    slot.history = [];
    slot.isInUse = true;
    return slot.id;
  }

  numFreeSequences(): number {
    return this.slots.filter((slot) => !slot.isInUse).length;
  }

  async step(items: readonly StepItem[]): Promise<StepOutput[]> {
    if (this.isDisposed) throw new Error("engine is disposed");
    const numTokens = items.reduce((sum, item) => sum + item.tokens.length, 0);
    if (numTokens > this.info.batchSize) throw new Error(`step of ${numTokens} tokens exceeds batch size ${this.info.batchSize}`);
    const native = this.internals.context;
    this.isStepping = true;
    try {
      const logitIndexes: (number | null)[] = [];
      if (numTokens > 0) native.initBatch(numTokens);
      for (const item of items) {
        const slot = this.slotInUse(item.sequenceId);
        if (item.tokens.length === 0) {
          logitIndexes.push(null);
          continue;
        }
        const wanted = item.shouldSample ? Uint32Array.of(item.tokens.length - 1) : new Uint32Array(0);
        const returned = native.addToBatch(slot.id, item.startPos, Uint32Array.from(item.tokens), wanted);
        logitIndexes.push(item.shouldSample ? (returned[0] ?? null) : null);
      }
      if (numTokens > 0) await native.decodeBatch();
      return await this.sampleAll(items, logitIndexes);
    } finally {
      this.isStepping = false;
      this.flushDeferredReleases();
    }
  }

  releaseSequence(sequenceId: SequenceId): void {
    const slot = this.slots[sequenceId];
    if (slot === undefined || !slot.isInUse || this.isDisposed) return;
    if (this.isStepping) {
      if (!this.deferredReleases.includes(sequenceId)) this.deferredReleases.push(sequenceId);
      return;
    }
    this.internals.context.removeTokenCellsFromSequence(sequenceId, 0, -1);
    resetSlot(slot);
  }

  async embed(inputs: readonly (readonly TokenId[])[]): Promise<EmbeddingResult[]> {
    const run = this.embeddingQueue.then(async () => {
      const context = await this.getEmbeddingContext();
      const results: EmbeddingResult[] = [];
      for (const tokens of inputs) {
        const embedding = await context.getEmbeddingFor(asTokens(tokens));
        results.push({ embedding: [...embedding.vector], numTokens: tokens.length });
      }
      return results;
    });
    this.embeddingQueue = run.catch(() => undefined);
    return run;
  }

  async dispose(): Promise<void> {
    if (this.isDisposed) return;
    this.isDisposed = true;
    for (const slot of this.slots) resetSlot(slot);
    const embeddingContext = this.embeddingContext;
    this.embeddingContext = null;
    if (embeddingContext !== null) await embeddingContext.then((context) => context.dispose(), () => undefined);
    await this.context.dispose();
    await this.model.dispose();
    void this.llama;
  }

  /**
   * llama.cpp restores the batch's output order lazily, on the first read of the logits after a decode, and that
   * reorder is not thread-safe: samplers running at once on the thread pool would swap rows twice and hand one
   * sequence another's token (seen whenever a step's outputs left the split out of order). One sampler goes first
   * and alone, the rest then only read.
   */
  private async sampleAll(items: readonly StepItem[], logitIndexes: readonly (number | null)[]): Promise<StepOutput[]> {
    const first = logitIndexes.findIndex((index) => index !== null);
    if (first < 0) return items.map((item) => ({ sequenceId: item.sequenceId, token: null, logprobs: null }));
    const firstOutput = await this.sample(items[first]!, logitIndexes[first] ?? null);
    return Promise.all(items.map((item, index) => (index === first ? firstOutput : this.sample(item, logitIndexes[index] ?? null))));
  }

  private async sample(item: StepItem, logitIndex: number | null): Promise<StepOutput> {
    if (!item.shouldSample || logitIndex === null) return { sequenceId: item.sequenceId, token: null, logprobs: null };
    const slot = this.slotInUse(item.sequenceId);
    const sampling = slot.sampling;
    const sampler = slot.sampler;
    if (sampling === null || sampler === null) throw new Error(`sequence ${item.sequenceId} has no sampler`);
    if (hasPenalties(sampling)) sampler.applyConfig(toNativeConfig(sampling, slot.history, this.info.contextSize));
    const wantsLogprobs = sampling.topLogprobs !== null;
    const [token, probabilities] = await this.internals.context.sampleToken(logitIndex, sampler, wantsLogprobs);
    if (token < 0) return { sequenceId: item.sequenceId, token: null, logprobs: null };
    slot.history.push(token);
    const logprobs = wantsLogprobs ? toSampledLogprobs(token, probabilities ?? [], sampling.topLogprobs ?? 0) : null;
    return { sequenceId: item.sequenceId, token, logprobs };
  }

  private slotInUse(sequenceId: SequenceId): Slot {
    const slot = this.slots[sequenceId];
    if (slot === undefined || !slot.isInUse) throw new Error(`sequence ${sequenceId} is not acquired`);
    return slot;
  }

  private flushDeferredReleases(): void {
    if (this.isStepping) return;
    for (const sequenceId of this.deferredReleases.splice(0)) this.releaseSequence(sequenceId);
  }

  private getEmbeddingContext(): Promise<LlamaEmbeddingContext> {
    if (this.embeddingContext === null) {
      this.embeddingContext = this.model.createEmbeddingContext({
        contextSize: Math.min(this.info.contextSize, this.info.trainContextSize),
        threads: this.threads,
      });
      // A failed creation is retried on the next request rather than cached forever.
      this.embeddingContext.catch(() => {
        this.embeddingContext = null;
      });
    }
    return this.embeddingContext;
  }
}

function resetSlot(slot: Slot): void {
  slot.sampler?.dispose();
  slot.sampler = null;
  slot.sampling = null;
  slot.history = [];
  slot.isInUse = false;
}

/** CPU flash attention was several times slower here at a few hundred tokens of context, so auto means GPU only. */
function resolveFlashAttention(option: FlashAttentionOption, isGpu: boolean): boolean {
  if (option === "on") return true;
  if (option === "off") return false;
  return isGpu;
}

/** node-llama-cpp brands token ids; the seam uses plain numbers. */
function asTokens(tokens: readonly TokenId[]): Token[] {
  return tokens as Token[];
}

function vocabSizeOf(model: LlamaModel): number {
  const tokens = model.fileInfo.metadata.tokenizer?.ggml?.tokens;
  return Array.isArray(tokens) ? tokens.length : 0;
}

function hasPenalties(sampling: SamplingParams): boolean {
  return sampling.presencePenalty !== 0 || sampling.frequencyPenalty !== 0;
}

function toNativeConfig(sampling: SamplingParams, history: readonly TokenId[], penaltyWindow: number): NativeSamplerConfig {
  const config: NativeSamplerConfig = { seed: sampling.seed >>> 0 };
  if (sampling.temperature > 0) {
    config.temperature = sampling.temperature;
    if (sampling.topK > 0) config.topK = sampling.topK;
    if (sampling.topP < 1) config.topP = sampling.topP;
    if (sampling.minP > 0) config.minP = sampling.minP;
  }
  if (hasPenalties(sampling)) {
    config.repeatPenalty = 1;
    config.repeatPenaltyPresencePenalty = sampling.presencePenalty;
    config.repeatPenaltyFrequencyPenalty = sampling.frequencyPenalty;
    // OpenAI's penalties count every generated token, not a recent window; a sequence never holds more than this.
    config.repeatPenaltyMaxTokens = penaltyWindow;
    config.repeatPenaltyTokens = Uint32Array.from(history);
  }
  return config;
}
