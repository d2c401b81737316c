import type { TokenId } from "../engine/engine.ts";

export type Detokenize = (tokens: readonly TokenId[]) => string;

/** How many tokens before the unread ones are decoded again, so tokenizers that merge spaces get context. */
const CONTEXT_TOKENS = 4;

/**
 * Turns a growing token list into text without decoding it all again each step, and without splitting a
 * multi-byte character across two deltas: text ending in U+FFFD is held until the next token completes it.
 */
export class IncrementalDetokenizer {
  private readonly detokenize: Detokenize;
  private readonly tokens: TokenId[] = [];
  /** Start of the tokens decoded for context only. */
  private prefixOffset = 0;
  /** Start of the tokens whose text has not been emitted. */
  private readOffset = 0;
  private text = "";

  constructor(detokenize: Detokenize) {
    this.detokenize = detokenize;
  }

  /** Adds a token and returns the text it completes (possibly empty). */
  push(token: TokenId): string {
    this.tokens.push(token);
    const prefixText = this.detokenize(this.tokens.slice(this.prefixOffset, this.readOffset));
    const fullText = this.detokenize(this.tokens.slice(this.prefixOffset));
    if (fullText.length <= prefixText.length || fullText.endsWith("\uFFFD")) return "";
    const delta = fullText.startsWith(prefixText) ? fullText.slice(prefixText.length) : fullText;
    this.readOffset = this.tokens.length;
    this.prefixOffset = Math.max(0, this.readOffset - CONTEXT_TOKENS);
    this.text += delta;
    return delta;
  }

  /** All text emitted so far. */
  get emittedText(): string {
    return this.text;
  }
}
