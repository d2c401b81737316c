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

export class LlamaGrammars {
  private readonly natives: NativeGrammars;
  private readonly isEndOfGeneration: (token: TokenId) => boolean;
  private readonly capacity: number;
  /** By GBNF text, least recently used first (a Map keeps insertion order). */
  private readonly parsed = new Map<string, NativeGrammar>();

  constructor(
    natives: NativeGrammars,
    isEndOfGeneration: (token: TokenId) => boolean,
    capacity = DEFAULT_GRAMMAR_CACHE_SIZE,
  ) {
    this.natives = natives;
    this.isEndOfGeneration = isEndOfGeneration;
    this.capacity = capacity;
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
}
