/**
 * Narrow types for the parts of node-llama-cpp's internals that pagoda drives directly. The engine loop issues
 * one native batch per step itself, because the library's dispatcher, fed one `evaluate()` per sequence, merges
 * only N−1 of N sequences into a decode; and it creates the native context itself, because the library's
 * `LlamaContext` hard-codes one KV slab per sequence. These members are private to node-llama-cpp, so the version
 * is pinned exactly and `getInternals` checks their shape at start-up instead of failing mid-request.
 * `copySequenceCells`, `getLogits`, `kvUnified` and the save/restore of a sequence's cells exist only in the addon
 * built with pagoda's patch (tools/build-addon.ts); `isPatched` says whether it is the one loaded.
 */
import type { LlamaModel } from "node-llama-cpp";

export interface NativeSampler {
  applyConfig(config: NativeSamplerConfig): void;
  dispose(): void;
}

export interface NativeSamplerConfig {
  temperature?: number;
  minP?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  repeatPenalty?: number;
  repeatPenaltyMaxTokens?: number;
  repeatPenaltyTokens?: Uint32Array;
  repeatPenaltyPresencePenalty?: number;
  repeatPenaltyFrequencyPenalty?: number;
  /** Logit biases as parallel arrays; a config without them drops the sampler's bias. */
  tokenBiasKeys?: Uint32Array;
  tokenBiasValues?: Float32Array;
  /** The sequence's grammar state; a config without it detaches the grammar from the sampler. */
  grammarEvaluationState?: NativeGrammarState;
}

/** llama.cpp's parsed GBNF (`AddonGrammar`): parsing happens in its constructor, which throws on a parse error. */
export interface NativeGrammar {
  readonly __nativeGrammar: never;
}

/**
 * Where a sequence is in a grammar (`AddonGrammarEvaluationState`, a llama.cpp grammar sampler). The native sampler
 * advances it after every token it samples, except end-of-generation tokens.
 */
export interface NativeGrammarState {
  readonly __nativeGrammarState: never;
}

/** The grammar functions the addon offers beside the sampler. */
export interface NativeGrammars {
  /** Parses GBNF with `root` as the start rule; throws "Failed to parse grammar" when llama.cpp refuses it. */
  create(gbnf: string): NativeGrammar;
  /** A state at the start of the grammar. */
  startState(grammar: NativeGrammar): NativeGrammarState;
  /** An independent copy of a state. */
  cloneState(state: NativeGrammarState): NativeGrammarState;
  /**
   * Advances a state by a token chosen outside the native sampler. Never pass an end-of-generation token: llama.cpp
   * aborts the process when one meets an unfinished grammar. Throws when the grammar rejects the token.
   */
  accept(state: NativeGrammarState, token: number): void;
}

export interface NativeContextOptions {
  /** Cells of the whole KV cache (the library's LlamaContext passes per-sequence size × sequences). */
  readonly contextSize: number;
  readonly batchSize: number;
  readonly sequences: number;
  readonly threads: number;
  readonly flashAttention: boolean;
  /** One pool for every sequence; honoured by the patched addon only. */
  readonly kvUnified: boolean;
  /** A context that computes embeddings rather than logits. */
  readonly embeddings?: boolean;
  /** llama.cpp's `llama_pooling_type` for an embedding context, overriding the model's; patched addon only. */
  readonly poolingType?: number;
}

export interface NativeContext {
  init(): Promise<boolean>;
  dispose(): Promise<void>;
  getContextSize(): number;
  initBatch(size: number): void;
  addToBatch(
    sequenceId: number,
    firstTokenSequenceIndex: number,
    tokens: Uint32Array,
    logitIndexes: Uint32Array,
  ): Uint32Array;
  decodeBatch(): Promise<void>;
  sampleToken(
    batchLogitIndex: number,
    sampler: NativeSampler,
    probabilities: boolean,
    confidence?: boolean,
  ): Promise<[token: number, probabilities: number[] | undefined, confidence: number | undefined]>;
  removeTokenCellsFromSequence(sequenceId: number, startPos: number, endPos: number): boolean;
  getSequenceKvCacheMinPosition(sequenceId: number): number;
  getSequenceKvCacheMaxPosition(sequenceId: number): number;
}

/** What the patched addon adds to the native context. */
export interface PatchedNativeContext extends NativeContext {
  copySequenceCells(src: number, dst: number, startPos: number, endPos: number): void;
  getLogits(batchLogitIndex: number): Float32Array;
  isKvUnified(): boolean;
  /** llama.cpp's state of one sequence: its cells' positions and K/V, copied to host memory. */
  saveSequenceCells(sequenceId: number): Uint8Array;
  /** Replaces what the sequence holds by saved cells; false when the pool has no room (it then holds nothing). */
  restoreSequenceCells(sequenceId: number, cells: Uint8Array): boolean;
  /** Writes 1 for every token the grammar state allows next and 0 for the rest; `mask` has the vocabulary's size. */
  getGrammarMask(state: NativeGrammarState, mask: Uint8Array): void;
  /** Sampled tokens, over the whole process, whose grammar fell back to a full pass (the first pick was rejected). */
  getGrammarFallbacks(): number;
  /** An embedding context's pooled vector of one sequence after a decode. */
  getSequenceEmbedding(sequenceId: number): Float32Array;
  /** The `llama_pooling_type` the context settled on. */
  getPoolingType(): number;
  /**
   * `decodeBatch`, then the highest logit's token of each given batch row, in the same native task (one thread-pool
   * round trip, not two). Absent from addons built before the patch had it.
   */
  decodeBatchArgmax?(logitIndexes: Uint32Array): Promise<Int32Array>;
  /** `decodeBatchArgmax` on the calling thread; absent from addons built before the patch had it. */
  decodeBatchArgmaxSync?(logitIndexes: Uint32Array): Int32Array;
}

interface NativeSamplerConstructor {
  new (model: unknown): NativeSampler;
}

interface NativeGrammarConstructor {
  new (gbnf: string, options: { addonExports: unknown; rootRuleName: string }): NativeGrammar;
}

interface NativeGrammarStateConstructor {
  new (modelOrState: unknown, grammar?: NativeGrammar): NativeGrammarState;
}

interface NativeSamplerStatics {
  acceptGrammarEvaluationStateToken(state: NativeGrammarState, token: number): void;
}

interface NativeContextConstructor {
  new (model: unknown, options: NativeContextOptions): NativeContext;
}

export interface LlamaInternals {
  createSampler(): NativeSampler;
  readonly grammars: NativeGrammars;
  /** A native context; call `init()` before use and `dispose()` before the model's. */
  createContext(options: NativeContextOptions): NativeContext;
  /** Whether the loaded addon carries pagoda's patch. */
  readonly isPatched: boolean;
}

const CONTEXT_METHODS = [
  "init",
  "dispose",
  "getContextSize",
  "initBatch",
  "addToBatch",
  "decodeBatch",
  "sampleToken",
  "removeTokenCellsFromSequence",
  "getSequenceKvCacheMinPosition",
  "getSequenceKvCacheMaxPosition",
];
const PATCH_METHODS = [
  "copySequenceCells",
  "getLogits",
  "isKvUnified",
  "saveSequenceCells",
  "restoreSequenceCells",
  "getGrammarMask",
  "getGrammarFallbacks",
  "getSequenceEmbedding",
  "getPoolingType",
];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null;
}

/** Whether `value` has a function under every one of `names`, on itself or its prototype chain. */
function hasMethods(value: unknown, names: readonly string[]): boolean {
  // A class's static methods live on the constructor, a function.
  if (!isRecord(value) && typeof value !== "function") return false;
  const holder = value as Record<string, unknown>;
  return names.every((name) => typeof holder[name] === "function");
}

export function isPatchedContext(context: NativeContext): context is PatchedNativeContext {
  return hasMethods(context, PATCH_METHODS);
}

export function getInternals(model: LlamaModel): LlamaInternals {
  const modelFields: unknown = model;
  if (!isRecord(modelFields)) throw new Error("node-llama-cpp objects are not objects");
  const nativeModel = modelFields._model;
  const llama = modelFields._llama;
  const bindings = isRecord(llama) ? llama._bindings : undefined;
  const samplerClass = isRecord(bindings) ? bindings.AddonSampler : undefined;
  const contextClass = isRecord(bindings) ? bindings.AddonContext : undefined;
  const grammarClass = isRecord(bindings) ? bindings.AddonGrammar : undefined;
  const grammarStateClass = isRecord(bindings) ? bindings.AddonGrammarEvaluationState : undefined;
  const prototype: unknown =
    typeof contextClass === "function" ? (contextClass as { prototype: unknown }).prototype : undefined;
  if (
    nativeModel == null ||
    typeof samplerClass !== "function" ||
    typeof grammarClass !== "function" ||
    typeof grammarStateClass !== "function" ||
    !hasMethods(samplerClass, ["acceptGrammarEvaluationStateToken"]) ||
    !hasMethods(prototype, CONTEXT_METHODS)
  ) {
    throw new Error("node-llama-cpp internals differ from version 3.21.1, which pagoda is pinned to");
  }
  const Sampler = samplerClass as NativeSamplerConstructor;
  const Context = contextClass as NativeContextConstructor;
  const Grammar = grammarClass as NativeGrammarConstructor;
  const GrammarState = grammarStateClass as NativeGrammarStateConstructor;
  const samplerStatics = samplerClass as unknown as NativeSamplerStatics;
  return {
    createSampler: () => new Sampler(nativeModel),
    grammars: {
      create: (gbnf) => new Grammar(gbnf, { addonExports: bindings, rootRuleName: "root" }),
      startState: (grammar) => new GrammarState(nativeModel, grammar),
      cloneState: (state) => new GrammarState(state),
      accept: (state, token) => samplerStatics.acceptGrammarEvaluationStateToken(state, token),
    },
    createContext: (options) => new Context(nativeModel, options),
    isPatched: hasMethods(prototype, PATCH_METHODS),
  };
}
