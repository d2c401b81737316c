/**
 * The node-llama-cpp engine: one model, one context with `numSequences` slots, and one native batch per `step`.
 */
import {
  type ChatHistoryItem,
  type ChatWrapper,
  type Llama,
  type LlamaEmbeddingContext,
  type LlamaModel,
  resolveChatWrapper,
  type Token,
} from "node-llama-cpp";
import type {
  ChatMessage,
  EmbeddingResult,
  Engine,
  ModelInfo,
  RenderedChat,
  SamplingParams,
  SavedCells,
  SequenceId,
  StepItem,
  StepOutput,
  TokenId,
} from "./engine.ts";
import {
  getInternals,
  isPatchedContext,
  type LlamaInternals,
  type NativeContext,
  type NativeSampler,
  type NativeSamplerConfig,
  type PatchedNativeContext,
} from "./llama-internals.ts";
import { type GpuOption, loadLlama, setNativeLogSink } from "./llama-loader.ts";
import { toSampledLogprobs } from "./logprobs.ts";
import { seedAtPosition } from "./seeded-random.ts";

export type { GpuOption };
export type FlashAttentionOption = "auto" | "on" | "off";
/** "shared": one KV pool for all sequences (needs the patched addon); "slabs": `contextSize` cells per sequence. */
export type KvLayout = "shared" | "slabs";

export interface LlamaEngineOptions {
  readonly modelPath: string;
  /** Threads of each decode. Defaults to the caller's choice; there is no safe library default on small machines. */
  readonly threads: number;
  /** Sequence slots for running requests. */
  readonly numSequences: number;
  /** Most tokens of one sequence. */
  readonly contextSize: number;
  /** Cells of the shared pool. Defaults to contextSize × numSequences; ignored with slabs. */
  readonly kvCacheTokens?: number;
  /** Defaults to "shared", which falls back to "slabs" (with `onNativeLog` told why) when the addon is stock. */
  readonly kvLayout?: KvLayout;
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
  state: "free" | "active";
}

/** Saved cells as this engine keeps them: llama.cpp's sequence state, null until the running step is over. */
class HostCells implements SavedCells {
  readonly numTokens: number;
  bytes: Uint8Array | null = null;

  constructor(numTokens: number) {
    this.numTokens = numTokens;
  }

  get numBytes(): number {
    return this.bytes?.byteLength ?? 0;
  }
}

interface ResolvedOptions extends Omit<LlamaEngineOptions, "flashAttention"> {
  readonly kvLayout: KvLayout;
  readonly kvCacheTokens: number;
  readonly flashAttention: boolean;
}

export class LlamaEngine implements Engine {
  readonly info: ModelInfo;
  /** "cpu", or the GPU backend node-llama-cpp loaded. */
  readonly backend: string;
  private readonly llama: Llama;
  private readonly model: LlamaModel;
  private readonly native: NativeContext;
  private readonly internals: LlamaInternals;
  private readonly chatWrapper: ChatWrapper;
  private readonly slots: Slot[];
  private readonly threads: number;
  private embeddingContext: Promise<LlamaEmbeddingContext> | null = null;
  private embeddingQueue: Promise<unknown> = Promise.resolve();
  private isStepping = false;
  private readonly deferred: (() => void)[] = [];
  private isDisposed = false;

  private constructor(
    llama: Llama,
    model: LlamaModel,
    internals: LlamaInternals,
    native: NativeContext,
    options: ResolvedOptions,
  ) {
    this.llama = llama;
    this.model = model;
    this.native = native;
    this.threads = options.threads;
    this.internals = internals;
    this.chatWrapper = resolveChatWrapper(model);
    this.slots = Array.from({ length: options.numSequences }, (_, index) => ({
      id: index as SequenceId,
      sampler: null,
      sampling: null,
      history: [],
      state: "free",
    }));
    this.backend = llama.gpu === false ? "cpu" : llama.gpu;
    this.info = {
      name: model.fileInfo.metadata.general?.name ?? "model",
      vocabSize: vocabSizeOf(model),
      contextSize: options.contextSize,
      numSequences: options.numSequences,
      kvCacheTokens: options.kvCacheTokens,
      isKvShared: options.kvLayout === "shared",
      batchSize: options.batchSize,
      trainContextSize: model.trainContextSize,
      embeddingSize: model.embeddingVectorSize,
      bosToken: model.tokens.bos,
      isFlashAttention: options.flashAttention,
    };
  }

  static async load(options: LlamaEngineOptions): Promise<LlamaEngine> {
    const llama = await loadLlama(options.gpu);
    setNativeLogSink(options.onNativeLog);
    const model = await llama.loadModel({
      modelPath: options.modelPath,
      ...(options.onLoadProgress === undefined ? {} : { onLoadProgress: options.onLoadProgress }),
    });
    try {
      const internals = getInternals(model);
      const wantsShared = (options.kvLayout ?? "shared") === "shared";
      if (wantsShared && !internals.isPatched) {
        options.onNativeLog?.(
          "warn",
          "the llama addon lacks pagoda's patch (npm run build:addon): one KV slab per sequence, no prefix cache",
        );
      }
      const isShared = wantsShared && internals.isPatched;
      const resolved: ResolvedOptions = {
        ...options,
        kvLayout: isShared ? "shared" : "slabs",
        kvCacheTokens: isShared
          ? (options.kvCacheTokens ?? options.contextSize * options.numSequences)
          : options.contextSize * options.numSequences,
        flashAttention: resolveFlashAttention(options.flashAttention ?? "auto", llama.gpu !== false, isShared),
      };
      const native = internals.createContext({
        contextSize: resolved.kvCacheTokens,
        batchSize: resolved.batchSize,
        sequences: resolved.numSequences,
        threads: resolved.threads,
        flashAttention: resolved.flashAttention,
        kvUnified: isShared,
      });
      const failure = !(await native.init())
        ? "llama.cpp could not create the context"
        : isShared && !(isPatchedContext(native) && native.isKvUnified())
          ? "the context was not created with a shared KV pool"
          : null;
      if (failure !== null) {
        await native.dispose();
        throw new Error(failure);
      }
      return new LlamaEngine(llama, model, internals, native, resolved);
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

  acquireSequence(sampling: SamplingParams, history: readonly TokenId[] = []): SequenceId | null {
    this.flushDeferred();
    const slot = this.slots.find((candidate) => candidate.state === "free");
    if (slot === undefined) return null;
    const sampler = this.internals.createSampler();
    sampler.applyConfig(toNativeConfig(sampling, history, this.info.contextSize));
    slot.sampler = sampler;
    slot.sampling = sampling;
    slot.history = [...history];
    slot.state = "active";
    return slot.id;
  }

  numFreeSequences(): number {
    return this.slots.filter((slot) => slot.state === "free").length;
  }

  async step(items: readonly StepItem[]): Promise<StepOutput[]> {
    if (this.isDisposed) throw new Error("engine is disposed");
    const numTokens = items.reduce((sum, item) => sum + item.tokens.length, 0);
    if (numTokens > this.info.batchSize)
      throw new Error(`step of ${numTokens} tokens exceeds batch size ${this.info.batchSize}`);
    const native = this.native;
    this.isStepping = true;
    try {
      const logitIndexes: (number | null)[] = [];
      const rawLogitIndexes: Uint32Array[] = [];
      if (numTokens > 0) native.initBatch(numTokens);
      for (const item of items) {
        const slot = this.slotInUse(item.sequenceId);
        const numRaw = Math.min(item.returnLogits ?? 0, item.tokens.length);
        if (item.tokens.length === 0) {
          logitIndexes.push(null);
          rawLogitIndexes.push(new Uint32Array(0));
          continue;
        }
        const wanted =
          numRaw > 0
            ? Uint32Array.from({ length: numRaw }, (_, index) => item.tokens.length - numRaw + index)
            : item.shouldSample
              ? Uint32Array.of(item.tokens.length - 1)
              : new Uint32Array(0);
        const returned = native.addToBatch(slot.id, item.startPos, Uint32Array.from(item.tokens), wanted);
        logitIndexes.push(item.shouldSample && numRaw === 0 ? (returned[0] ?? null) : null);
        rawLogitIndexes.push(numRaw > 0 ? returned : new Uint32Array(0));
      }
      if (numTokens > 0) await native.decodeBatch();
      // Raw logits are read on this thread before any sampler starts, so llama.cpp's lazy output reorder runs once.
      const rawLogits = rawLogitIndexes.map((indexes) => (indexes.length === 0 ? null : this.readLogits(indexes)));
      const outputs = await this.sampleAll(items, logitIndexes);
      return outputs.map((output, index) =>
        rawLogits[index] == null ? output : { ...output, logits: rawLogits[index] },
      );
    } finally {
      this.isStepping = false;
      this.flushDeferred();
    }
  }

  releaseSequence(sequenceId: SequenceId): void {
    const slot = this.slots[sequenceId];
    if (slot === undefined || slot.state !== "active" || this.isDisposed) return;
    this.whenIdle(() => {
      if (slot.state !== "active") return;
      this.native.removeTokenCellsFromSequence(sequenceId, 0, -1);
      resetSlot(slot);
    });
  }

  truncateSequence(sequenceId: SequenceId, fromPos: number): void {
    const slot = this.slots[sequenceId];
    if (slot === undefined || slot.state === "free" || this.isDisposed) return;
    this.whenIdle(() => {
      if (slot.state === "free") return;
      this.native.removeTokenCellsFromSequence(sequenceId, Math.max(0, fromPos), -1);
    });
  }

  shareCells(src: SequenceId, dst: SequenceId, startPos: number, endPos: number): void {
    const native = this.idlePatchedContext("sharing KV cells", [src, dst]);
    native.copySequenceCells(src, dst, startPos, endPos);
  }

  saveCells(sequenceId: SequenceId, numTokens: number): SavedCells {
    const native = this.patchedContext("saving KV cells", [sequenceId]);
    const saved = new HostCells(numTokens);
    // A request failed from outside the loop (at shutdown) ends during a step; its copy is taken once the step is over.
    this.whenIdle(() => {
      native.removeTokenCellsFromSequence(sequenceId, numTokens, -1);
      saved.bytes = native.saveSequenceCells(sequenceId);
    });
    return saved;
  }

  restoreCells(saved: SavedCells, dst: SequenceId, numTokens: number): boolean {
    const native = this.idlePatchedContext("restoring KV cells", [dst]);
    if (!(saved instanceof HostCells) || saved.bytes === null)
      throw new TypeError("these cells were not saved by this engine");
    if (numTokens > saved.numTokens) throw new RangeError(`${saved.numTokens} saved cells cannot restore ${numTokens}`);
    if (!native.restoreSequenceCells(dst, saved.bytes)) return false;
    if (numTokens < saved.numTokens) native.removeTokenCellsFromSequence(dst, numTokens, -1);
    return true;
  }

  /** The patched context, for a KV operation on acquired sequences of the shared pool. */
  private patchedContext(what: string, sequenceIds: readonly SequenceId[]): PatchedNativeContext {
    const native = this.native;
    if (!this.info.isKvShared || !isPatchedContext(native)) throw new Error(`${what} needs the shared pool`);
    for (const id of sequenceIds) {
      if (this.slots[id]?.state !== "active") throw new Error(`sequence ${id} is not acquired`);
    }
    return native;
  }

  /** The same, for an operation that must happen between steps, after the KV changes a step deferred. */
  private idlePatchedContext(what: string, sequenceIds: readonly SequenceId[]): PatchedNativeContext {
    const native = this.patchedContext(what, sequenceIds);
    if (this.isStepping) throw new Error(`${what} cannot happen during a step`);
    this.flushDeferred();
    return native;
  }

  private readLogits(indexes: Uint32Array): Float32Array[] {
    const native = this.native;
    if (!isPatchedContext(native)) throw new Error("raw logits need the patched addon (npm run build:addon)");
    return Array.from(indexes, (index) => native.getLogits(index));
  }

  /** Whether raw logits (`returnLogits`) are available: the patched addon is loaded. */
  get canReturnLogits(): boolean {
    return isPatchedContext(this.native);
  }

  /** The range of positions a sequence holds in the KV cache, or null when it holds none; for tests and checks. */
  positionsOf(sequenceId: SequenceId): { readonly min: number; readonly max: number } | null {
    const max = this.native.getSequenceKvCacheMaxPosition(sequenceId);
    if (max < 0) return null;
    return { min: this.native.getSequenceKvCacheMinPosition(sequenceId), max };
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
    for (const slot of this.slots) {
      resetSlot(slot);
      slot.state = "free";
    }
    const embeddingContext = this.embeddingContext;
    this.embeddingContext = null;
    if (embeddingContext !== null)
      await embeddingContext.then(
        (context) => context.dispose(),
        () => undefined,
      );
    await this.native.dispose();
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
    // Every sampler finishes before the step ends, failed or not: a released sequence disposes its native sampler.
    const settled = await Promise.allSettled(
      items.map((item, index) => (index === first ? firstOutput : this.sample(item, logitIndexes[index] ?? null))),
    );
    return settled.map((result) => {
      if (result.status === "rejected") throw result.reason;
      return result.value;
    });
  }

  private async sample(item: StepItem, logitIndex: number | null): Promise<StepOutput> {
    if (!item.shouldSample || logitIndex === null) return { sequenceId: item.sequenceId, token: null, logprobs: null };
    const slot = this.slotInUse(item.sequenceId);
    const sampling = slot.sampling;
    const sampler = slot.sampler;
    if (sampling === null || sampler === null) throw new Error(`sequence ${item.sequenceId} has no sampler`);
    if (sampling.temperature > 0 || hasPenalties(sampling))
      sampler.applyConfig(toNativeConfig(sampling, slot.history, this.info.contextSize));
    const wantsLogprobs = sampling.topLogprobs !== null;
    const [token, probabilities] = await this.native.sampleToken(logitIndex, sampler, wantsLogprobs);
    if (token < 0) return { sequenceId: item.sequenceId, token: null, logprobs: null };
    slot.history.push(token);
    const logprobs = wantsLogprobs ? toSampledLogprobs(token, probabilities ?? [], sampling.topLogprobs ?? 0) : null;
    return { sequenceId: item.sequenceId, token, logprobs };
  }

  private slotInUse(sequenceId: SequenceId): Slot {
    const slot = this.slots[sequenceId];
    if (slot === undefined || slot.state !== "active") throw new Error(`sequence ${sequenceId} is not acquired`);
    return slot;
  }

  /** KV changes wait for the running step to end: the batch being decoded may refer to those cells. */
  private whenIdle(operation: () => void): void {
    if (this.isStepping) this.deferred.push(operation);
    else operation();
  }

  private flushDeferred(): void {
    if (this.isStepping) return;
    for (const operation of this.deferred.splice(0)) operation();
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
  slot.state = "free";
}

/**
 * "auto": on for GPU backends and for the shared pool. The shared pool's attention spans every occupied cell and
 * masks the other sequences' ones; llama.cpp's CPU flash-attention kernel skips masked cells, the plain path
 * computes them (16 sequences of stories260K: 8.1 vs 15.5 ms per step). With slabs on CPU, flash attention was
 * slower (4.7 vs 6.1 ms), so it stays off there.
 */
function resolveFlashAttention(option: FlashAttentionOption, isGpu: boolean, isKvShared: boolean): boolean {
  if (option === "on") return true;
  if (option === "off") return false;
  return isGpu || isKvShared;
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

/**
 * The native sampler's settings before sampling the token after `history` (the tokens generated so far). A sampled
 * token draws from a random stream seeded for its output position, so a sequence resumed on a new sampler after a
 * preemption continues exactly as it would have.
 */
function toNativeConfig(
  sampling: SamplingParams,
  history: readonly TokenId[],
  penaltyWindow: number,
): NativeSamplerConfig {
  const config: NativeSamplerConfig = {
    seed: sampling.temperature > 0 ? seedAtPosition(sampling.seed, history.length) : sampling.seed >>> 0,
  };
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
