/**
 * Grammars as llama.cpp holds them: parsed once per distinct GBNF text and kept for the sequences that use them,
 * and a state per sequence, rebuilt for a resumed sequence by replaying the tokens it already generated.
 */
import type { GrammarConstraint, TokenId } from "./engine.ts";
import type { NativeGrammar, NativeGrammarState, NativeGrammars } from "./llama-internals.ts";

/** Distinct grammars kept parsed; a request whose grammar was dropped parses it again. */
export const DEFAULT_GRAMMAR_CACHE_SIZE = 64;

/** llama.cpp refused a grammar; pagoda's own parser should have refused it first. */
export class NativeGrammarError extends Error {
  readonly code = "PAGODA_ERR_NATIVE_GRAMMAR";

  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = "NativeGrammarError";
  }
}

/** Writes a state's allowed tokens into a vocabulary-sized mask (the patched addon's `getGrammarMask`). */
export type GrammarMasker = (state: NativeGrammarState, mask: Uint8Array) => void;

export interface LlamaGrammarsOptions {
  readonly isEndOfGeneration: (token: TokenId) => boolean;
  readonly vocabSize: number;
  /** Null with the stock addon: no masks, so no speculative verification of constrained requests. */
  readonly masker: GrammarMasker | null;
  /** Defaults to `DEFAULT_GRAMMAR_CACHE_SIZE`. */
  readonly capacity?: number;
}

export class LlamaGrammars {
  private readonly natives: NativeGrammars;
  private readonly isEndOfGeneration: (token: TokenId) => boolean;
  private readonly vocabSize: number;
  private readonly masker: GrammarMasker | null;
  private readonly capacity: number;
  /** By GBNF text, least recently used first (a Map keeps insertion order). */
  private readonly parsed = new Map<string, NativeGrammar>();

  constructor(natives: NativeGrammars, options: LlamaGrammarsOptions) {
    this.natives = natives;
    this.isEndOfGeneration = options.isEndOfGeneration;
    this.vocabSize = options.vocabSize;
    this.masker = options.masker;
    this.capacity = options.capacity ?? DEFAULT_GRAMMAR_CACHE_SIZE;
  }

  /** The parsed grammar, from the cache or parsed now; throws `NativeGrammarError` when llama.cpp refuses it. */
  prepare(grammar: GrammarConstraint): NativeGrammar {
    const cached = this.parsed.get(grammar.gbnf);
    if (cached !== undefined) {
      this.parsed.delete(grammar.gbnf);
      this.parsed.set(grammar.gbnf, cached);
      return cached;
    }
    let native: NativeGrammar;
    try {
      native = this.natives.create(grammar.gbnf);
    } catch (error) {
      throw new NativeGrammarError("llama.cpp could not parse the grammar", error);
    }
    this.parsed.set(grammar.gbnf, native);
    if (this.parsed.size > this.capacity) {
      const oldest = this.parsed.keys().next().value;
      if (oldest !== undefined) this.parsed.delete(oldest);
    }
    return native;
  }

  /**
   * A state after `history`, the tokens the sequence generated so far. End-of-generation tokens are skipped, as the
   * native sampler skips them (accepting one into an unfinished grammar would abort the process).
   */
  stateAfter(grammar: GrammarConstraint, history: readonly TokenId[]): NativeGrammarState {
    const state = this.natives.startState(this.prepare(grammar));
    for (const token of history) if (!this.isEndOfGeneration(token)) this.natives.accept(state, token);
    return state;
  }

  /**
   * Advances a state by tokens chosen outside the native sampler, up to the first end-of-generation token: the
   * output ends there, and accepting one into an unfinished grammar would abort the process.
   */
  advance(state: NativeGrammarState, tokens: readonly TokenId[]): void {
    for (const token of tokens) {
      if (this.isEndOfGeneration(token)) return;
      this.natives.accept(state, token);
    }
  }

  /**
   * Masks for `1 + drafts.length` logits rows: the first at `state`, each next one after one more draft token. A
   * draft the grammar rejects (or an end-of-generation token) ends the walk; later rows repeat the last mask, since a
   * verifier rejects that draft and never reads them. Null with the stock addon.
   */
  rowMasks(state: NativeGrammarState, drafts: readonly TokenId[]): Uint8Array[] | null {
    const masker = this.masker;
    if (masker === null) return null;
    const first = new Uint8Array(this.vocabSize);
    masker(state, first);
    const masks = [first];
    let walker: NativeGrammarState | null = drafts.length > 0 ? this.natives.cloneState(state) : null;
    for (const draft of drafts) {
      const previous = masks[masks.length - 1]!;
      if (walker === null || previous[draft] !== 1 || this.isEndOfGeneration(draft)) {
        walker = null;
        masks.push(previous);
        continue;
      }
      this.natives.accept(walker, draft);
      const mask = new Uint8Array(this.vocabSize);
      masker(walker, mask);
      masks.push(mask);
    }
    return masks;
  }
}
