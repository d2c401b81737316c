/**
 * A deterministic, model-free `Engine` for unit tests of the scheduler and server. Its vocabulary is printable
 * ASCII, so text is readable in assertions; its "model" is a fixed function of the previous token and position.
 * It records every step, so tests can assert exactly which sequence got how many tokens in which step.
 * Its KV cache behaves like llama.cpp's shared pool: `kvCacheTokens` cells, any free cell per token, cells shared
 * by forks and freed when no sequence holds them, saved to and restored from "host memory" (a copy of their
 * tokens), and a step that finds no free cell fails as llama.cpp's does. With `kvLayout: "slabs"` it stands for
 * pagoda's slabs on the patched addon: a fork copies cells into fresh ones, and only into a sequence that holds
 * none, from position 0 (as `LlamaSequences` does between slabs).
 */
import type {
  ChatMessage,
  ChatTool,
  ChatToolSyntax,
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

/** Token ids 2 … 96 are the characters 32 … 126. */
const FIRST_CHAR_TOKEN = 2;
const NUM_CHARS = 95;

/** The fake vocabulary's token at `index`; every token id this engine makes comes from here. */
function fakeToken(index: number): TokenId {
  return index as TokenId;
}

export const FAKE_EOS = fakeToken(0);
export const FAKE_BOS = fakeToken(1);
/** What a cell outside the pool reads as. */
const NO_TOKEN = fakeToken(-1);

export interface FakeEngineOptions {
  /** Defaults to 4. */
  readonly numSequences?: number;
  /** Defaults to 256. */
  readonly contextSize?: number;
  /** Defaults to 64. */
  readonly batchSize?: number;
  /** Cells of the shared KV pool. Defaults to contextSize × numSequences. */
  readonly kvCacheTokens?: number;
  /** Emit EOS as the n-th generated token of every sequence (1-based). Defaults to never. */
  readonly eosAfter?: number;
  /** Awaited before every step; lets a test hold the loop at a known point. */
  readonly beforeStep?: (stepIndex: number) => Promise<void>;
  /** Awaited before each `embed` computes, so a test can hold an embedding request; an abort ends the wait. */
  readonly beforeEmbed?: () => Promise<void>;
  /** The tool-call syntax its "template" claims. Defaults to null. */
  readonly toolSyntax?: ChatToolSyntax | null;
  /** "slabs" copies forked cells (`canCopyCells`) instead of sharing them. Defaults to "shared". */
  readonly kvLayout?: "shared" | "slabs";
  /** Its embeddings' pooling; "rank" makes it a reranker. Defaults to "last". */
  readonly pooling?: "mean" | "cls" | "last" | "rank";
}

interface FakeSavedCells extends SavedCells {
  readonly tokens: readonly TokenId[];
}

/** A position a sequence does not hold (yet): a restore cut at its front leaves these until a fork fills them. */
const NO_CELL = -1;

interface FakeSequence {
  sampling: SamplingParams;
  /** The pool cell of each position this sequence holds, or `NO_CELL`. */
  cells: number[];
  numGenerated: number;
}

export class FakeEngine implements Engine {
  readonly info: ModelInfo;
  /** Every step's items, in order. */
  readonly steps: StepItem[][] = [];
  private readonly options: FakeEngineOptions;
  private readonly sequences = new Map<SequenceId, FakeSequence>();
  /** Token stored in each cell of the pool, and how many sequences hold that cell (0 = free). */
  private readonly cellTokens: TokenId[];
  private readonly cellHolders: number[];
  private pendingFailure: Error | null = null;
  /** Forks that copied cells between slabs, for tests. */
  numCopies = 0;
  /** Calls of `saveCells` and of successful `restoreCells`, for tests. */
  numSaves = 0;
  numRestores = 0;
  isDisposed = false;
  /** The GBNF text of every `prepareGrammar` call, in order; the fake samples without grammars. */
  readonly preparedGrammars: string[] = [];

  constructor(options: FakeEngineOptions = {}) {
    this.options = options;
    this.info = {
      name: "fake",
      vocabSize: FIRST_CHAR_TOKEN + NUM_CHARS,
      contextSize: options.contextSize ?? 256,
      numSequences: options.numSequences ?? 4,
      kvCacheTokens: options.kvCacheTokens ?? (options.contextSize ?? 256) * (options.numSequences ?? 4),
      isKvShared: options.kvLayout !== "slabs",
      canCopyCells: options.kvLayout === "slabs",
      batchSize: options.batchSize ?? 64,
      trainContextSize: options.contextSize ?? 256,
      embeddingSize: 8,
      bosToken: FAKE_BOS,
      isFlashAttention: false,
      toolSyntax: options.toolSyntax ?? null,
      pooling: options.pooling ?? "last",
      rankOutput: "logits",
    };
    this.cellTokens = new Array<TokenId>(this.info.kvCacheTokens).fill(fakeToken(0));
    this.cellHolders = new Array<number>(this.info.kvCacheTokens).fill(0);
  }

  tokenize(text: string, options: { addBos?: boolean } = {}): TokenId[] {
    const tokens = [...text].map((char) => {
      const code = char.charCodeAt(0);
      return fakeToken(
        code >= 32 && code <= 126 ? code - 32 + FIRST_CHAR_TOKEN : "?".charCodeAt(0) - 32 + FIRST_CHAR_TOKEN,
      );
    });
    return options.addBos === true ? [FAKE_BOS, ...tokens] : tokens;
  }

  detokenize(tokens: readonly TokenId[]): string {
    return tokens
      .filter((token) => token >= FIRST_CHAR_TOKEN)
      .map((token) => String.fromCharCode(token - FIRST_CHAR_TOKEN + 32))
      .join("");
  }

  isEndOfGeneration(token: TokenId): boolean {
    return token === FAKE_EOS;
  }

  /** Query, separator (EOS), document: the fake's vocabulary has no SEP. */
  tokenizeWithSpecials(text: string): TokenId[] {
    return this.tokenize(text, { addBos: true });
  }

  rerankInput(query: string, document: string): TokenId[] {
    return [...this.tokenize(query, { addBos: true }), FAKE_EOS, ...this.tokenize(document)];
  }

  /** The tool lists `renderChat` was given, in order. */
  readonly renderedTools: (readonly ChatTool[] | null)[] = [];
  /** The messages `renderChat` was given, in order. */
  readonly renderedMessages: (readonly ChatMessage[])[] = [];

  renderChat(messages: readonly ChatMessage[], tools: readonly ChatTool[] | null = null): RenderedChat {
    this.renderedMessages.push(messages);
    this.renderedTools.push(tools);
    const text = `${messages.map((message) => `<${message.role}>${message.content}<end>`).join("")}<assistant>`;
    return { tokens: this.tokenize(text, { addBos: true }), stopStrings: ["<end>"], stopTokens: [] };
  }

  /** The sampling settings of every `acquireSequence` call, in order. */
  readonly acquiredSamplings: SamplingParams[] = [];
  /** Tokens `acceptTokens` recorded, per sequence; the fake model does not depend on them. */
  readonly acceptedTokens = new Map<SequenceId, TokenId[]>();

  acceptTokens(sequenceId: SequenceId, tokens: readonly TokenId[]): void {
    if (!this.sequences.has(sequenceId)) throw new Error(`sequence ${sequenceId} is not acquired`);
    this.acceptedTokens.set(sequenceId, [...(this.acceptedTokens.get(sequenceId) ?? []), ...tokens]);
  }

  prepareGrammar(grammar: GrammarConstraint): void {
    this.preparedGrammars.push(grammar.gbnf);
  }

  acquireSequence(sampling: SamplingParams, history: readonly TokenId[] = []): SequenceId | null {
    this.acquiredSamplings.push(sampling);
    for (let id = 0; id < this.info.numSequences; id++) {
      const sequenceId = id as SequenceId;
      if (!this.sequences.has(sequenceId)) {
        this.sequences.set(sequenceId, { sampling, cells: [], numGenerated: history.length });
        return sequenceId;
      }
    }
    return null;
  }

  samplingCounters(): SamplingCounters {
    return { sampleMs: 0, numGrammarFallbacks: 0, numTriggerFailures: 0, numPickedInDecode: 0 };
  }

  numFreeSequences(): number {
    return this.info.numSequences - this.sequences.size;
  }

  /** Sequences currently held by requests, for leak assertions. */
  get numAcquiredSequences(): number {
    return this.sequences.size;
  }

  /** Pool cells some sequence holds. */
  get numUsedCells(): number {
    return this.cellHolders.filter((holders) => holders > 0).length;
  }

  /** The tokens a sequence's cells hold, by position; for tests. */
  cachedTokensOf(sequenceId: SequenceId): TokenId[] {
    return (this.sequences.get(sequenceId)?.cells ?? []).map((cell) => this.cellTokens[cell] ?? NO_TOKEN);
  }

  /** Makes the next step reject with `error`, as a failed native decode would. */
  failNextStep(error: Error): void {
    this.pendingFailure = error;
  }

  async step(items: readonly StepItem[]): Promise<StepOutput[]> {
    const stepIndex = this.steps.length;
    this.steps.push(items.map((item) => ({ ...item, tokens: [...item.tokens] })));
    await this.options.beforeStep?.(stepIndex);
    // A native decode completes in a later event-loop turn; so does this one, so I/O interleaves as in production.
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.pendingFailure !== null) {
      const failure = this.pendingFailure;
      this.pendingFailure = null;
      throw failure;
    }
    const numTokens = items.reduce((sum, item) => sum + item.tokens.length, 0);
    if (numTokens > this.info.batchSize) throw new Error(`step of ${numTokens} tokens exceeds batch size`);
    return items.map((item) => this.evaluate(item));
  }

  releaseSequence(sequenceId: SequenceId): void {
    const sequence = this.sequences.get(sequenceId);
    if (sequence === undefined) return;
    this.dropCells(sequence, 0);
    this.sequences.delete(sequenceId);
  }

  truncateSequence(sequenceId: SequenceId, fromPos: number): void {
    const sequence = this.sequences.get(sequenceId);
    if (sequence !== undefined) this.dropCells(sequence, Math.max(0, fromPos));
  }

  saveCells(sequenceId: SequenceId, numTokens: number): SavedCells {
    const sequence = this.sequences.get(sequenceId);
    if (sequence === undefined) throw new Error(`sequence ${sequenceId} is not acquired`);
    this.dropCells(sequence, numTokens);
    if (sequence.cells.includes(NO_CELL)) throw new Error(`sequence ${sequenceId} has positions without cells`);
    const tokens = sequence.cells.map((cell) => this.cellTokens[cell] ?? NO_TOKEN);
    const saved: FakeSavedCells = { numTokens: tokens.length, numBytes: tokens.length * 4, tokens };
    this.numSaves += 1;
    return saved;
  }

  restoreCells(saved: SavedCells, dst: SequenceId, startPos: number, endPos: number): boolean {
    const sequence = this.sequences.get(dst);
    if (sequence === undefined || sequence.cells.length > 0)
      throw new Error(`sequence ${dst} is not acquired or holds cells`);
    const tokens = (saved as Partial<FakeSavedCells>).tokens;
    if (tokens === undefined || endPos > tokens.length || startPos < 0 || startPos >= endPos)
      throw new Error("these cells were not saved by this engine");
    // As llama.cpp does, every saved cell goes in first, then the sequence is cut to what was asked for.
    if (this.cellHolders.filter((holders) => holders === 0).length < tokens.length) return false;
    for (const token of tokens) this.placeToken(sequence, token);
    this.dropCells(sequence, endPos);
    for (let position = 0; position < startPos; position++) {
      this.cellHolders[sequence.cells[position]!]! -= 1;
      sequence.cells[position] = NO_CELL;
    }
    this.numRestores += 1;
    return true;
  }

  shareCells(src: SequenceId, dst: SequenceId, startPos: number, endPos: number): void {
    const from = this.sequences.get(src);
    const to = this.sequences.get(dst);
    if (from === undefined || to === undefined || src === dst)
      throw new Error(`cannot share cells from ${src} to ${dst}`);
    if (to.cells.length < startPos)
      throw new Error(`sequence ${dst} holds ${to.cells.length} cells, a fork at ${startPos} would leave a gap`);
    if (endPos > from.cells.length || from.cells.slice(startPos, endPos).includes(NO_CELL))
      throw new Error(`sequence ${src} holds no cells at some of ${startPos}..${endPos}`);
    if (!this.info.isKvShared) {
      if (startPos !== 0 || to.cells.length > 0)
        throw new Error(`a copy between slabs starts at position 0 of an empty sequence, not ${startPos} of ${dst}`);
      for (const cell of from.cells.slice(0, endPos)) this.placeToken(to, this.cellTokens[cell] ?? NO_TOKEN);
      this.numCopies += 1;
      return;
    }
    for (let position = startPos; position < endPos; position++) {
      const cell = from.cells[position]!;
      // A fork appends, or fills the positions a restore left without cells.
      if (position < to.cells.length && to.cells[position] !== NO_CELL)
        throw new Error(`sequence ${dst} holds position ${position} already`);
      this.cellHolders[cell]! += 1;
      to.cells[position] = cell;
    }
  }

  /** The fake embeds at once and queues nothing; tests set this to stand for a queue. */
  waitingInputs = 0;

  numWaitingInputs(): number {
    return this.waitingInputs;
  }

  async embed(inputs: readonly (readonly TokenId[])[], signal?: AbortSignal): Promise<EmbeddingResult[]> {
    const hold = this.options.beforeEmbed;
    if (hold !== undefined) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => reject(signal?.reason);
        if (signal?.aborted === true) return onAbort();
        signal?.addEventListener("abort", onAbort, { once: true });
        hold().then(() => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        }, reject);
      });
    }
    return inputs.map((tokens) => {
      const embedding = Array.from(
        { length: this.info.embeddingSize },
        (_, index) =>
          tokens.reduce((sum, token, position) => sum + Math.sin(token * (index + 1) + position), 0) / tokens.length,
      );
      return { embedding, numTokens: tokens.length };
    });
  }

  async dispose(): Promise<void> {
    this.isDisposed = true;
    this.sequences.clear();
    this.cellHolders.fill(0);
  }

  private placeToken(sequence: FakeSequence, token: TokenId): void {
    const cell = this.cellHolders.indexOf(0);
    if (cell < 0) throw new Error("could not find a KV slot for the batch (the fake pool is full)");
    this.cellHolders[cell] = 1;
    this.cellTokens[cell] = token;
    sequence.cells.push(cell);
  }

  private dropCells(sequence: FakeSequence, fromPos: number): void {
    for (const cell of sequence.cells.splice(fromPos)) if (cell !== NO_CELL) this.cellHolders[cell]! -= 1;
  }

  private evaluate(item: StepItem): StepOutput {
    const sequence = this.sequences.get(item.sequenceId);
    if (sequence === undefined) throw new Error(`sequence ${item.sequenceId} is not acquired`);
    if (item.startPos !== sequence.cells.length || sequence.cells.includes(NO_CELL)) {
      throw new Error(
        `sequence ${item.sequenceId}: step starts at ${item.startPos}, cache holds ${sequence.cells.length} ` +
          `positions (${sequence.cells.filter((cell) => cell === NO_CELL).length} without cells)`,
      );
    }
    for (const token of item.tokens) this.placeToken(sequence, token);
    const numRaw = Math.min(item.returnLogits ?? 0, item.tokens.length);
    if (numRaw > 0) {
      // Logits that make the fake model's own next token the clear favourite after each requested position.
      const logits = Array.from({ length: numRaw }, (_, index) => {
        const cells = sequence.cells.slice(0, sequence.cells.length - numRaw + index + 1);
        const next = this.tokenAfter(cells, sequence.sampling, sequence.numGenerated + index + 1);
        const row = new Float32Array(this.info.vocabSize).fill(-5);
        row[next] = 5;
        return row;
      });
      return { sequenceId: item.sequenceId, token: null, logprobs: null, logits };
    }
    if (!item.shouldSample) return { sequenceId: item.sequenceId, token: null, logprobs: null };
    sequence.numGenerated += 1;
    const token = this.nextToken(sequence, sequence.sampling);
    const logprobs =
      sequence.sampling.topLogprobs === null
        ? null
        : {
            logprob: -0.5,
            top: [
              { token, logprob: -0.5 },
              { token: fakeToken(token === FIRST_CHAR_TOKEN ? FIRST_CHAR_TOKEN + 1 : FIRST_CHAR_TOKEN), logprob: -1.5 },
            ].slice(0, sequence.sampling.topLogprobs),
          };
    return { sequenceId: item.sequenceId, token, logprobs };
  }

  private nextToken(sequence: FakeSequence, sampling: SamplingParams): TokenId {
    return this.tokenAfter(sequence.cells, sampling, sequence.numGenerated);
  }

  /** The fake model: a function of the last cached token, the position, and (when sampling) seed and count. */
  private tokenAfter(cells: readonly number[], sampling: SamplingParams | undefined, numGenerated: number): TokenId {
    if (this.options.eosAfter !== undefined && numGenerated >= this.options.eosAfter) return FAKE_EOS;
    const position = cells.length;
    const last = this.cellTokens[cells[position - 1] ?? -1] ?? 0;
    const salt = sampling !== undefined && sampling.temperature > 0 ? sampling.seed + numGenerated : 0;
    // Lower-case letters only, so stop-string tests can pick characters that never occur by accident.
    return fakeToken(FIRST_CHAR_TOKEN + 65 + ((last * 7 + position * 3 + salt) % 26));
  }
}
