/**
 * The engine seam: everything above this file talks to a model only through the roles defined here. The server
 * gets a `ServerEngine` (tokenizer, chat template, embeddings), the scheduler and the engine loop a
 * `SequenceEngine` (sequences, cells, the batched step), and whoever loaded the model its `EngineLifecycle`.
 * The node-llama-cpp implementation lives in `llama-engine.ts`; `FakeEngine` is a deterministic stand-in for
 * unit tests of the layers above. Both implement `Engine`, every role at once.
 */

import type { SequenceId, TokenId } from "./ids.ts";

export type { SequenceId, TokenId } from "./ids.ts";

/** Sampling settings of one sequence, fixed for its lifetime. */
export interface SamplingParams {
  /** 0 means greedy (argmax). */
  readonly temperature: number;
  readonly topP: number;
  /** 0 disables top-k. */
  readonly topK: number;
  readonly minP: number;
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  /** Seed of this sequence's private random stream; sampling of equal seeds and equal inputs is identical. */
  readonly seed: number;
  /** How many alternatives to report with each sampled token; null reports no logprobs at all. */
  readonly topLogprobs: number | null;
  /**
   * Added to these tokens' logits before anything else samples (OpenAI's `logit_bias`, −100…100). Absent or empty:
   * no bias.
   */
  readonly logitBias?: ReadonlyMap<TokenId, number> | null;
  /** The grammar every sampled token must keep the output inside; absent or null: unconstrained. */
  readonly grammar?: GrammarConstraint | null;
  /**
   * A grammar that starts later (`tool_choice: "auto"`): the output is free until one of these triggers appears,
   * and from then on the trigger's grammar constrains what follows it. Ignored when `grammar` is set.
   */
  readonly grammarTriggers?: readonly GrammarTrigger[] | null;
}

/** Where a lazy grammar starts: `text` in the output (at its start only, after blanks, if so marked). */
export interface GrammarTrigger {
  readonly text: string;
  readonly isAtStartOnly: boolean;
  /** Constrains the output after `text`. */
  readonly grammar: GrammarConstraint;
}

/**
 * A grammar in llama.cpp's GBNF with a `root` rule, already checked by pagoda's own parser (`src/constrain`):
 * native code never parses text a request wrote directly. End-of-generation is sampled only where the grammar is
 * complete.
 */
export interface GrammarConstraint {
  readonly gbnf: string;
}

/** Argmax sampling with no penalties and no logprobs; `seed` only matters to what later reads the settings. */
export function greedySampling(seed = 0): SamplingParams {
  return {
    temperature: 0,
    topP: 1,
    topK: 0,
    minP: 0,
    presencePenalty: 0,
    frequencyPenalty: 0,
    seed,
    topLogprobs: null,
  };
}

export interface TokenLogprob {
  readonly token: TokenId;
  readonly logprob: number;
}

export interface SampledLogprobs {
  /** Log-probability of the sampled token. */
  readonly logprob: number;
  /** The most likely tokens, most likely first. */
  readonly top: readonly TokenLogprob[];
}

/** Tokens of one sequence to evaluate in a step. */
export interface StepItem {
  readonly sequenceId: SequenceId;
  /** Position of `tokens[0]` in the sequence: how many tokens of it the KV cache already holds. */
  readonly startPos: number;
  readonly tokens: readonly TokenId[];
  /** Sample a next token after the last of `tokens`. */
  readonly shouldSample: boolean;
  /**
   * Instead of sampling, return the raw logits after each of the last `returnLogits` tokens (speculative
   * verification samples in TypeScript). 0 or absent: none.
   */
  readonly returnLogits?: number;
}

export interface StepOutput {
  readonly sequenceId: SequenceId;
  /** The sampled token, or null when the item asked for none or the sampler produced none. */
  readonly token: TokenId | null;
  readonly logprobs: SampledLogprobs | null;
  /** With `returnLogits`, one vocabulary-sized array per requested position, in order; else null. */
  readonly logits?: readonly Float32Array[] | null;
  /**
   * With `returnLogits` and a grammar, per logits row the tokens the grammar allows there (1) and rejects (0), the
   * item's tokens before the row taken as generated; null without a grammar. Rows after a token the grammar rejects
   * repeat the last mask: a verifier never reaches them.
   */
  readonly grammarMasks?: readonly Uint8Array[] | null;
}

export interface ModelInfo {
  /** File name or alias-independent description of the model. */
  readonly name: string;
  readonly vocabSize: number;
  /** Tokens one sequence can hold. */
  readonly contextSize: number;
  /** Sequence slots, one per running request. */
  readonly numSequences: number;
  /**
   * KV cells of the whole context. With a shared pool every sequence draws from these; with slabs each sequence
   * owns `contextSize` of them.
   */
  readonly kvCacheTokens: number;
  /**
   * One KV pool shared by all sequences, where `shareCells` forks a prefix without copying. False with the stock
   * addon: a static slab per sequence and no sharing.
   */
  readonly isKvShared: boolean;
  /**
   * Slabs with the patched addon: `shareCells` copies a prefix's cells from another sequence's slab, and
   * `saveCells`/`restoreCells` work, so prefixes can be cached while each sequence attends over its own cells only.
   */
  readonly canCopyCells: boolean;
  /** The most tokens one `step` may carry. */
  readonly batchSize: number;
  readonly trainContextSize: number;
  readonly embeddingSize: number;
  readonly bosToken: TokenId | null;
  /** Whether the context runs attention with flash attention (it changes the compute buffer). */
  readonly isFlashAttention: boolean;
  /** The tool-call syntax the chat template teaches; null when it has none pagoda knows. */
  readonly toolSyntax: ChatToolSyntax | null;
  /**
   * How `embed` pools a sequence: "rank" makes it a reranker, whose vector is its classifier head's outputs for a
   * (query, document) input.
   */
  readonly pooling: "mean" | "cls" | "last" | "rank";
  /**
   * What a reranker's head outputs: logits, or probabilities (llama.cpp applies a softmax inside Qwen3 rerankers,
   * whose two outputs are then P(yes) and P(no)).
   */
  readonly rankOutput: "logits" | "probabilities";
}

export type ChatRole = "system" | "developer" | "user" | "assistant" | "tool";

export interface ChatMessage {
  readonly role: ChatRole;
  readonly content: string;
  /** An assistant message's tool calls. */
  readonly toolCalls?: readonly ChatToolCall[];
  /** A `tool` message: the call it answers. */
  readonly toolCallId?: string;
}

export interface ChatToolCall {
  readonly id: string;
  readonly name: string;
  /** The arguments as JSON text, as the model wrote them. */
  readonly arguments: string;
}

/** A function the model may call, as the chat template presents it. */
export interface ChatTool {
  readonly name: string;
  readonly description?: string;
  /** A JSON schema of the arguments object. */
  readonly parameters?: unknown;
}

/**
 * How the model's chat template writes a tool call, when pagoda can read and force that syntax: Hermes-style
 * `<tool_call>` blocks (Qwen2.5, Hermes) or Llama 3.1's bare `{"name", "parameters"}` object. Null: the template
 * has no tool syntax pagoda knows.
 */
export type ChatToolSyntax = "hermes" | "llama3";

export interface RenderedChat {
  readonly tokens: TokenId[];
  /** Text sequences that end a generation in this template (e.g. an end-of-turn marker), beyond EOS tokens. */
  readonly stopStrings: string[];
  /** Tokens that end a generation in this template, beyond EOG tokens. */
  readonly stopTokens: TokenId[];
}

export interface EmbeddingResult {
  readonly embedding: number[];
  readonly numTokens: number;
}

/** Cumulative counts of the engine's sampling, for the metrics. */
export interface SamplingCounters {
  /** Wall time of the steps' sampling phases (after the decode), summed. */
  readonly sampleMs: number;
  /**
   * Sampled tokens whose first pick the grammar rejected, so the grammar ran over the whole vocabulary (llama.cpp's
   * sample-then-check fast path missed). Counted over every context of the process, draft models included.
   */
  readonly numGrammarFallbacks: number;
  /**
   * Lazy grammars whose trigger appeared but which could not take the text after it (see `GrammarFollower`); the
   * sequence went on unconstrained.
   */
  readonly numTriggerFailures: number;
  /** Greedy tokens picked in the decode's own native task instead of by a sampler (see `isPlainGreedy`). */
  readonly numPickedInDecode: number;
}

/** KV cells of positions [0, numTokens) of a sequence, copied to host memory by `saveCells`. */
export interface SavedCells {
  readonly numTokens: number;
  readonly numBytes: number;
}

/** Text to tokens and back. */
export interface Tokenizer {
  tokenize(text: string, options?: { addBos?: boolean }): TokenId[];
  detokenize(tokens: readonly TokenId[]): string;
}

/** What embedding and rerank requests need to know of a model. */
export type PoolingInfo = Pick<
  ModelInfo,
  "name" | "vocabSize" | "contextSize" | "trainContextSize" | "embeddingSize" | "pooling" | "rankOutput"
>;

/**
 * What the embedding and rerank routes use of a model: the generator's own engine, or a model served only for
 * pooling beside it (`--embedding-model`, `--rerank-model`).
 */
export interface PoolingEngine extends Tokenizer {
  readonly info: PoolingInfo;
  /**
   * `text` as llama.cpp tokenizes it with `add_special` (embedding inputs, `/tokenize`): BOS and EOS where the
   * vocabulary adds them, and SEP at the end for a WordPiece (BERT) vocabulary, whose encoders were trained on
   * `[CLS] … [SEP]`.
   */
  tokenizeWithSpecials(text: string): TokenId[];
  /**
   * A reranker's input for one (query, document) pair, as llama.cpp's server builds it: the GGUF's rerank template
   * with `{query}` and `{document}` filled in, else BOS, query, EOS, SEP, document, EOS as the vocabulary adds them.
   */
  rerankInput(query: string, document: string): TokenId[];
  /**
   * One pooled vector per input, as the model computes it (not normalised). An abort drops the inputs not yet
   * embedded and rejects with the signal's reason.
   */
  embed(inputs: readonly (readonly TokenId[])[], signal?: AbortSignal): Promise<EmbeddingResult[]>;
  /** Inputs waiting for a decode of the pooling context, for the metrics. */
  numWaitingInputs(): number;
}

/** What the HTTP routes use of a model: its facts, its tokenizer, its chat template and embeddings; never a step. */
export interface ServerEngine extends PoolingEngine {
  readonly info: ModelInfo;
  /**
   * Renders through the model's own template; `tools` are offered only when the template has a tool syntax
   * (`info.toolSyntax`). Every tool call in `messages` must be answered by a later `tool` message.
   */
  renderChat(messages: readonly ChatMessage[], tools?: readonly ChatTool[] | null): RenderedChat;
  /**
   * Compiles a grammar for this model's vocabulary (kept for the sequences that use it), throwing when the engine's
   * own parser refuses it, so a request learns before it is queued.
   */
  prepareGrammar(grammar: GrammarConstraint): void;
}

/** What the scheduler and the engine loop drive: sequence slots, the KV cells they hold, and the batched step. */
export interface SequenceEngine {
  readonly info: ModelInfo;
  /** True for tokens that end generation (EOS, EOT and the like). */
  isEndOfGeneration(token: TokenId): boolean;
  /**
   * Reserves a free sequence slot with its sampler, or returns null when every slot is taken.
   * `history` restores the tokens a resumed request already generated, for its penalties.
   */
  acquireSequence(sampling: SamplingParams, history?: readonly TokenId[]): SequenceId | null;
  /**
   * Evaluates the items of many sequences in one batch and samples where asked. Each item's sampled token is
   * recorded for that sequence's penalties. Rejects only when the whole batch failed.
   */
  step(items: readonly StepItem[]): Promise<StepOutput[]>;
  /**
   * Records tokens chosen outside the native sampler (speculative verification): they count for the sequence's
   * penalties and advance its grammar, up to the first end-of-generation token, which ends a constrained output.
   */
  acceptTokens(sequenceId: SequenceId, tokens: readonly TokenId[]): void;
  /** Ends the slot's request: drops its sampler and all its KV cells; the slot is free. Safe to call twice. */
  releaseSequence(sequenceId: SequenceId): void;
  /** Drops the sequence's KV cells from `fromPos` on. */
  truncateSequence(sequenceId: SequenceId, fromPos: number): void;
  /**
   * Makes `dst` hold `src`'s KV cells of positions [startPos, endPos): without copying them on the shared pool; on
   * slabs (`canCopyCells`) by copying them into `dst`'s slab, which must hold nothing yet, from `startPos` 0.
   * Both must be acquired.
   */
  shareCells(src: SequenceId, dst: SequenceId, startPos: number, endPos: number): void;
  /**
   * Copies the sequence's KV cells of positions [0, numTokens) to host memory (not with the stock addon), dropping its
   * cells from `numTokens` on. The copy outlives the sequence: a cached prefix kept this way occupies no cell of
   * the pool, whose attention spans every cell up to the highest occupied one.
   */
  saveCells(sequenceId: SequenceId, numTokens: number): SavedCells;
  /**
   * Gives an acquired sequence that holds no cells the saved cells of positions [startPos, endPos); `shareCells`
   * fills the positions before `startPos` afterwards, when running sequences hold them. Needs room for all
   * `saved.numTokens` cells for a moment; false when the pool has none (the sequence then holds nothing).
   */
  restoreCells(saved: SavedCells, dst: SequenceId, startPos: number, endPos: number): boolean;
  numFreeSequences(): number;
  samplingCounters(): SamplingCounters;
}

export interface EngineLifecycle {
  dispose(): Promise<void>;
}

/**
 * A whole model: every role at once. Implementations (`LlamaEngine`, `FakeEngine`) provide it; each consumer is
 * handed only its role.
 */
export interface Engine extends ServerEngine, SequenceEngine, EngineLifecycle {}
