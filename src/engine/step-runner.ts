/**
 * One engine step as one native batch: every item's tokens go into a single `llama_decode`, then raw logits are
 * read and tokens sampled where the items asked. The batch is built through the addon directly, because the
 * library's dispatcher, fed one `evaluate()` per sequence, merges only N−1 of N sequences into a decode.
 */
import type { StepItem, StepOutput, TokenId } from "./engine.ts";
import type { GrammarFollower } from "./grammar-follower.ts";
import type { LlamaGrammars } from "./llama-grammars.ts";
import { isPatchedContext, type NativeContext } from "./llama-internals.ts";
import type { LlamaSequences } from "./llama-sequences.ts";
import { isPlainGreedy } from "./native-sampler-config.ts";
import { sampleStep } from "./sample-step.ts";

export interface StepRunnerOptions {
  /** The most tokens one step may carry. */
  readonly batchSize: number;
  /** Most tokens of one sequence: every token it sampled counts for its penalties. */
  readonly penaltyWindow: number;
}

/** Where a step's outputs are in the decoded batch. */
interface BatchRows {
  /** Per item, the row whose logits it samples from, or null when it samples nothing. */
  readonly logitIndexes: (number | null)[];
  /** Per item, the rows whose raw logits it gets back (`returnLogits`); empty when none. */
  readonly rawLogitIndexes: Uint32Array[];
}

/** Steps of at most this many tokens may decode on the event loop's thread (see `StepRunner.isShortStep`). */
const SHORT_STEP_MAX_TOKENS = 4;
/** ... and only while such steps' recent decodes took at most this long: the event loop is held for no longer. */
const SHORT_STEP_MAX_MS = 1;

/** An exponentially weighted average; starts at 0, so the first short steps are tried on the event loop's thread. */
class RecentAverage {
  value = 0;

  observe(sample: number): void {
    this.value += (sample - this.value) * 0.2;
  }
}

export class StepRunner {
  private readonly native: NativeContext;
  private readonly sequences: LlamaSequences;
  private readonly grammars: LlamaGrammars;
  private readonly follower: GrammarFollower;
  private readonly options: StepRunnerOptions;
  /** Wall time of every step's sampling, summed. */
  sampleMs = 0;
  /** Greedy tokens the decode's native task picked. */
  numPickedInDecode = 0;
  /** Decodes run on the event loop's thread (see `isShortStep`). */
  numDecodesOnLoopThread = 0;
  /** Wall time of recent decodes of short steps (see `isShortStep`). */
  private readonly shortDecodeMs = new RecentAverage();

  constructor(
    native: NativeContext,
    sequences: LlamaSequences,
    grammars: { readonly parsed: LlamaGrammars; readonly follower: GrammarFollower },
    options: StepRunnerOptions,
  ) {
    this.native = native;
    this.sequences = sequences;
    this.grammars = grammars.parsed;
    this.follower = grammars.follower;
    this.options = options;
  }

  async run(items: readonly StepItem[]): Promise<StepOutput[]> {
    const numTokens = items.reduce((sum, item) => sum + item.tokens.length, 0);
    if (numTokens > this.options.batchSize)
      throw new Error(`step of ${numTokens} tokens exceeds batch size ${this.options.batchSize}`);
    return this.sequences.duringStep(async () => {
      const rows = this.addBatch(items, numTokens);
      const picked = numTokens > 0 ? await this.decode(items, rows.logitIndexes, numTokens) : [];
      // Raw logits are read on this thread before any sampler starts, so llama.cpp's lazy output reorder runs once.
      const rawLogits = rows.rawLogitIndexes.map((indexes) => (indexes.length === 0 ? null : this.readLogits(indexes)));
      const sampleStartMs = performance.now();
      const outputs = await sampleStep(items, rows.logitIndexes, {
        native: this.native,
        slotOf: (sequenceId) => this.sequences.inUse(sequenceId),
        penaltyWindow: this.options.penaltyWindow,
        onSampled: (slot, token) => this.follower.follow(slot, [token], slot.history.at(-2) ?? null, true),
        picked,
      }).finally(() => {
        this.sampleMs += performance.now() - sampleStartMs;
      });
      return outputs.map((output, index) => {
        const logits = rawLogits[index];
        if (logits == null) return output;
        return { ...output, logits, grammarMasks: this.masksOf(items[index]!, logits.length) };
      });
    });
  }

  /**
   * Decodes the batch. Plain greedy items (see `isPlainGreedy`) get their token picked in the decode's own native
   * task where the addon can, which saves the sampling round trip to the thread pool; returns those tokens by item.
   */
  private async decode(
    items: readonly StepItem[],
    logitIndexes: readonly (number | null)[],
    numTokens: number,
  ): Promise<(TokenId | null)[]> {
    const native = this.native;
    const patched = isPatchedContext(native) ? native : null;
    const canPick = patched?.decodeBatchArgmax !== undefined;
    const greedy = items.map((item, index) => canPick && logitIndexes[index] != null && this.isPickedInDecode(item));
    const rows = Uint32Array.from(
      logitIndexes.filter((row, index): row is number => greedy[index] === true && row !== null),
    );
    let tokens: Int32Array | null = null;
    let startMs = performance.now();
    if (patched?.decodeBatchArgmaxSync !== undefined && this.isShortStep(numTokens)) {
      // One turn of the event loop first, as a thread-pool decode gives: the chunks of the last step's tokens go out
      // (their writes wait for the turn) and I/O is served before the decode holds this thread. The turn is not the
      // decode's time.
      await new Promise<void>((resolve) => setImmediate(resolve));
      startMs = performance.now();
      tokens = patched.decodeBatchArgmaxSync(rows);
      this.numDecodesOnLoopThread++;
    } else if (patched?.decodeBatchArgmax !== undefined && rows.length > 0) {
      tokens = await patched.decodeBatchArgmax(rows);
    } else {
      await native.decodeBatch();
    }
    if (numTokens <= SHORT_STEP_MAX_TOKENS) this.shortDecodeMs.observe(performance.now() - startMs);
    if (tokens === null || tokens.length === 0) return [];
    this.numPickedInDecode += tokens.length;
    let next = 0;
    return greedy.map((isGreedy) => (isGreedy ? (tokens[next++]! as TokenId) : null));
  }

  /**
   * Whether a step is short enough to decode on the event loop's thread: at most `SHORT_STEP_MAX_TOKENS` tokens, and
   * such steps have recently taken at most `SHORT_STEP_MAX_MS`. A thread-pool decode wakes two threads (about 0.1
   * ms); llama.cpp's own server decodes on the thread that schedules.
   */
  private isShortStep(numTokens: number): boolean {
    return numTokens <= SHORT_STEP_MAX_TOKENS && this.shortDecodeMs.value <= SHORT_STEP_MAX_MS;
  }

  /** Whether the decode can pick this item's token: its sequence samples plain greedy (see `isPlainGreedy`). */
  private isPickedInDecode(item: StepItem): boolean {
    const slot = this.sequences.inUse(item.sequenceId);
    const hasGrammar = slot.grammarState !== null || slot.triggerWatch !== null;
    return slot.sampling !== null && isPlainGreedy(slot.sampling, hasGrammar);
  }

  /** Whether raw logits (`returnLogits`) are available: the patched addon is loaded. */
  get canReturnLogits(): boolean {
    return isPatchedContext(this.native);
  }

  private addBatch(items: readonly StepItem[], numTokens: number): BatchRows {
    const logitIndexes: (number | null)[] = [];
    const rawLogitIndexes: Uint32Array[] = [];
    if (numTokens > 0) this.native.initBatch(numTokens);
    for (const item of items) {
      const slot = this.sequences.inUse(item.sequenceId);
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
      const returned = this.native.addToBatch(slot.id, item.startPos, Uint32Array.from(item.tokens), wanted);
      logitIndexes.push(item.shouldSample && numRaw === 0 ? (returned[0] ?? null) : null);
      rawLogitIndexes.push(numRaw > 0 ? returned : new Uint32Array(0));
    }
    return { logitIndexes, rawLogitIndexes };
  }

  /** The grammar masks of an item's `numRows` logits rows: its last real token, then each draft after it. */
  private masksOf(item: StepItem, numRows: number): Uint8Array[] | null {
    const state = this.sequences.inUse(item.sequenceId).grammarState;
    if (state === null) return null;
    return this.grammars.rowMasks(state, item.tokens.slice(item.tokens.length - numRows + 1));
  }

  private readLogits(indexes: Uint32Array): Float32Array[] {
    const native = this.native;
    if (!isPatchedContext(native)) throw new Error("raw logits need the patched addon (npm run build:addon)");
    return Array.from(indexes, (index) => native.getLogits(index));
  }
}
