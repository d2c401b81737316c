import type { TokenId } from "../engine/engine.ts";

export type Detokenize = (tokens: readonly TokenId[]) => string;

/** How many tokens before the unread ones are decoded again, so tokenizers that merge spaces get context. */
export const CONTEXT_TOKENS = 4;

/**
 * Turns a growing token list into text without decoding it all again each step, and without splitting a
 * multi-byte character across two deltas: text ending in U+FFFD is held until the next token completes it.
 * It starts from the prompt's last tokens as context: SentencePiece-style tokenizers drop the leading space of
 * the first token they decode, and the first generated token's space belongs to the output.
 */
export class IncrementalDetokenizer {
  private readonly detokenize: Detokenize;
  private readonly tokens: TokenId[];
  /** Start of the tokens decoded for context only. */
  private prefixOffset = 0;
  /** Start of the tokens whose text has not been emitted. */
  private readOffset: number;
  private text = "";

  constructor(detokenize: Detokenize, contextTokens: readonly TokenId[] = []) {
    this.detokenize = detokenize;
    this.tokens = contextTokens.slice(-CONTEXT_TOKENS);
    this.readOffset = this.tokens.length;
  }

  /** Adds a token and returns the text it completes (possibly empty). */
  push(token: TokenId): string {
    this.tokens.push(token);
    return this.emit(false);
  }

  /** Emits what is still held back, an incomplete character included; for the end of a request. */
  flush(): string {
    return this.emit(true);
  }

  /** All text emitted so far. */
  get emittedText(): string {
    return this.text;
  }

  private emit(isFinal: boolean): string {
    if (this.readOffset >= this.tokens.length) return "";
    const prefixText = this.detokenize(this.tokens.slice(this.prefixOffset, this.readOffset));
    const fullText = this.detokenize(this.tokens.slice(this.prefixOffset));
    if (fullText.length <= prefixText.length || (!isFinal && fullText.endsWith("\uFFFD"))) return "";
    const delta = fullText.slice(prefixText.length);
    this.readOffset = this.tokens.length;
    this.prefixOffset = Math.max(0, this.readOffset - CONTEXT_TOKENS);
    this.text += delta;
    return delta;
  }
}

/**
 * The text one token adds after `previous`: decoding it alone would drop a SentencePiece leading space.
 * For logprobs, where every token is reported on its own.
 */
export function tokenTextAfter(detokenize: Detokenize, previous: TokenId | null, token: TokenId): string {
  if (previous === null) return detokenize([token]);
  return detokenize([previous, token]).slice(detokenize([previous]).length);
}
