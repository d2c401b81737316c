/**
 * A deterministic, model-free `Engine` for unit tests of the scheduler and server. Its vocabulary is printable
 * ASCII, so text is readable in assertions; its "model" is a fixed function of the previous token and position.
 * It records every step, so tests can assert exactly which sequence got how many tokens in which step.
 */
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

export const FAKE_EOS = 0;
export const FAKE_BOS = 1;
/** Token ids 2 … 96 are the characters 32 … 126. */
const FIRST_CHAR_TOKEN = 2;
const NUM_CHARS = 95;

export interface FakeEngineOptions {
  /** Defaults to 4. */
  readonly numSequences?: number;
  /** Defaults to 256. */
  readonly contextSize?: number;
  /** Defaults to 64. */
  readonly batchSize?: number;
  /** Emit EOS as the n-th generated token of every sequence (1-based). Defaults to never. */
  readonly eosAfter?: number;
  /** Awaited before every step; lets a test hold the loop at a known point. */
  readonly beforeStep?: (stepIndex: number) => Promise<void>;
}

interface FakeSequence {
  sampling: SamplingParams;
  /** Tokens the "KV cache" holds, by position. */
  tokens: TokenId[];
  numGenerated: number;
}

export class FakeEngine implements Engine {
  readonly info: ModelInfo;
  /** Every step's items, in order. */
  readonly steps: StepItem[][] = [];
  private readonly options: FakeEngineOptions;
  private readonly sequences = new Map<SequenceId, FakeSequence>();
  private pendingFailure: Error | null = null;
  isDisposed = false;

  constructor(options: FakeEngineOptions = {}) {
    this.options = options;
    this.info = {
      name: "fake",
      vocabSize: FIRST_CHAR_TOKEN + NUM_CHARS,
      contextSize: options.contextSize ?? 256,
      numSequences: options.numSequences ?? 4,
      batchSize: options.batchSize ?? 64,
      trainContextSize: options.contextSize ?? 256,
      embeddingSize: 8,
      bosToken: FAKE_BOS,
      isFlashAttention: false,
    };
  }

  tokenize(text: string, options: { addBos?: boolean } = {}): TokenId[] {
    const tokens = [...text].map((char) => {
      const code = char.charCodeAt(0);
      return code >= 32 && code <= 126 ? code - 32 + FIRST_CHAR_TOKEN : "?".charCodeAt(0) - 32 + FIRST_CHAR_TOKEN;
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

  renderChat(messages: readonly ChatMessage[]): RenderedChat {
    const text = messages.map((message) => `<${message.role}>${message.content}<end>`).join("") + "<assistant>";
    return { tokens: this.tokenize(text, { addBos: true }), stopStrings: ["<end>"], stopTokens: [] };
  }

  acquireSequence(sampling: SamplingParams): SequenceId | null {
    for (let id = 0; id < this.info.numSequences; id++) {
      const sequenceId = id as SequenceId;
      if (!this.sequences.has(sequenceId)) {
        this.sequences.set(sequenceId, { sampling, tokens: [], numGenerated: 0 });
        return sequenceId;
      }
    }
    return null;
  }

  numFreeSequences(): number {
    return this.info.numSequences - this.sequences.size;
  }

  /** Sequences currently held, for leak assertions. */
  get numAcquiredSequences(): number {
    return this.sequences.size;
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
    this.sequences.delete(sequenceId);
  }

  async embed(inputs: readonly (readonly TokenId[])[]): Promise<EmbeddingResult[]> {
    return inputs.map((tokens) => {
      const embedding = Array.from({ length: this.info.embeddingSize }, (_, index) =>
        tokens.reduce((sum, token, position) => sum + Math.sin(token * (index + 1) + position), 0) / tokens.length,
      );
      return { embedding, numTokens: tokens.length };
    });
  }

  async dispose(): Promise<void> {
    this.isDisposed = true;
    this.sequences.clear();
  }

  private evaluate(item: StepItem): StepOutput {
    const sequence = this.sequences.get(item.sequenceId);
    if (sequence === undefined) throw new Error(`sequence ${item.sequenceId} is not acquired`);
    if (item.startPos !== sequence.tokens.length) {
      throw new Error(`sequence ${item.sequenceId}: step starts at ${item.startPos}, cache holds ${sequence.tokens.length}`);
    }
    sequence.tokens.push(...item.tokens);
    if (!item.shouldSample) return { sequenceId: item.sequenceId, token: null, logprobs: null };
    sequence.numGenerated += 1;
    const token = this.nextToken(sequence);
    const logprobs = sequence.sampling.topLogprobs === null ? null : {
      logprob: -0.5,
      top: [{ token, logprob: -0.5 }, { token: token === FIRST_CHAR_TOKEN ? FIRST_CHAR_TOKEN + 1 : FIRST_CHAR_TOKEN, logprob: -1.5 }]
        .slice(0, sequence.sampling.topLogprobs),
    };
    return { sequenceId: item.sequenceId, token, logprobs };
  }

  private nextToken(sequence: FakeSequence): TokenId {
    if (this.options.eosAfter !== undefined && sequence.numGenerated >= this.options.eosAfter) return FAKE_EOS;
    const position = sequence.tokens.length;
    const last = sequence.tokens[position - 1] ?? 0;
    const salt = sequence.sampling.temperature > 0 ? sequence.sampling.seed + sequence.numGenerated : 0;
    // Lower-case letters only, so stop-string tests can pick characters that never occur by accident.
    return FIRST_CHAR_TOKEN + 65 + ((last * 7 + position * 3 + salt) % 26);
  }
}
