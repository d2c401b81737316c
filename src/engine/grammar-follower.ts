/**
 * Keeps a sequence's grammar state in step with its output, whoever chose the tokens: the native sampler (which
 * advances a grammar it samples under by itself) or the speculative verifier in TypeScript. A lazy grammar
 * (`SamplingParams.grammarTriggers`) starts when its trigger appears: the state is created then and fed the text the
 * output already holds after the trigger, and the sampler is configured with it before the next token.
 *
 * When that text cannot be fed (it does not tokenize back to itself, or the grammar rejects it, which only drafts
 * accepted past the trigger in one verification can cause), the sequence goes on unconstrained and the failure is
 * counted: the output parser then reports the call it cannot read, nothing is hidden.
 */
import type { TokenId } from "./engine.ts";
import type { LlamaGrammars } from "./llama-grammars.ts";
import type { SequenceSlot } from "./llama-sequences.ts";
import { nativeSamplerConfig } from "./native-sampler-config.ts";
import { TriggerWatch } from "./trigger-watch.ts";

export interface GrammarFollowerOptions {
  readonly grammars: LlamaGrammars;
  readonly isEndOfGeneration: (token: TokenId) => boolean;
  /** The text `token` adds after `previous` (null at the start of the output). */
  readonly pieceOf: (previous: TokenId | null, token: TokenId) => string;
  /** Tokens whose pieces spell exactly `text`, or null when there are none the tokenizer finds. */
  readonly tokensOf: (text: string) => TokenId[] | null;
  readonly penaltyWindow: number;
}

export class GrammarFollower {
  private readonly options: GrammarFollowerOptions;
  /** Lazy grammars that could not start, since the process started. */
  numTriggerFailures = 0;

  constructor(options: GrammarFollowerOptions) {
    this.options = options;
  }

  /** Sets up a freshly acquired slot whose output so far is `history` (a resumed sequence replays it). */
  start(slot: SequenceSlot, history: readonly TokenId[]): void {
    const sampling = slot.sampling;
    slot.grammarState = null;
    slot.triggerWatch = null;
    if (sampling?.grammar != null) {
      slot.grammarState = this.options.grammars.stateAfter(sampling.grammar, history);
      return;
    }
    const triggers = sampling?.grammarTriggers ?? null;
    if (triggers === null || triggers.length === 0) return;
    slot.triggerWatch = new TriggerWatch(triggers);
    this.follow(slot, history, null, false);
  }

  /**
   * Takes tokens just appended to the output, after `previous` (the token before them, null at the start).
   * `isSampledNatively`: the native sampler chose them, so it already advanced an active grammar.
   */
  follow(slot: SequenceSlot, tokens: readonly TokenId[], previous: TokenId | null, isSampledNatively: boolean): void {
    let last = previous;
    for (let index = 0; index < tokens.length; index++) {
      const token = tokens[index]!;
      if (this.options.isEndOfGeneration(token)) return;
      if (slot.grammarState !== null) {
        if (!isSampledNatively) this.options.grammars.advance(slot.grammarState, [token]);
      } else if (slot.triggerWatch !== null) {
        const hit = slot.triggerWatch.push(this.options.pieceOf(last, token));
        if (hit !== null) {
          slot.triggerWatch = null;
          this.startLazy(slot, hit.trigger.grammar, hit.rest, tokens.slice(index + 1));
          return;
        }
      }
      last = token;
    }
  }

  private startLazy(
    slot: SequenceSlot,
    grammar: { readonly gbnf: string },
    rest: string,
    laterTokens: readonly TokenId[],
  ): void {
    const grammars = this.options.grammars;
    const state = grammars.stateAfter(grammar, []);
    const restTokens = rest === "" ? [] : this.options.tokensOf(rest);
    try {
      if (restTokens === null) throw new Error(`no tokens spell ${JSON.stringify(rest)}`);
      grammars.advance(state, [...restTokens, ...laterTokens]);
    } catch {
      this.numTriggerFailures += 1;
      return;
    }
    slot.grammarState = state;
    const sampling = slot.sampling;
    if (sampling !== null && slot.sampler !== null)
      slot.sampler.applyConfig(nativeSamplerConfig(sampling, slot.history, this.options.penaltyWindow, state));
  }
}
