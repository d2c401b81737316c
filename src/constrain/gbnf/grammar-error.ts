/**
 * The one error every GBNF refusal raises: bad syntax, an undefined or missing rule, a grammar llama.cpp would
 * loop or blow up on, or a limit breach. Positional errors name the line and column in the message and as fields.
 */
import type { GbnfLimitName } from "./gbnf-limits.ts";

export type GrammarErrorCode =
  | "PAGODA_ERR_GRAMMAR_SYNTAX"
  | "PAGODA_ERR_GRAMMAR_UNSUPPORTED"
  | "PAGODA_ERR_GRAMMAR_UNDEFINED_RULE"
  | "PAGODA_ERR_GRAMMAR_DUPLICATE_RULE"
  | "PAGODA_ERR_GRAMMAR_MISSING_ROOT"
  | "PAGODA_ERR_GRAMMAR_LEFT_RECURSION"
  | "PAGODA_ERR_GRAMMAR_NULLABLE_REPETITION"
  | "PAGODA_ERR_GRAMMAR_LIMIT"
  | "PAGODA_ERR_GRAMMAR_MATCH_BUDGET";

/** A 1-based line and column; columns count code points, lines end at `\n`, `\r\n` or a lone `\r`. */
export interface GrammarLocation {
  readonly line: number;
  readonly column: number;
}

export interface GrammarErrorOptions {
  readonly location?: GrammarLocation | null;
  /** The limit that was exceeded, for `PAGODA_ERR_GRAMMAR_LIMIT`. */
  readonly limit?: GbnfLimitName | null;
  readonly cause?: unknown;
}

export class GrammarError extends Error {
  override readonly name = "GrammarError";
  readonly code: GrammarErrorCode;
  readonly line: number | null;
  readonly column: number | null;
  readonly limit: GbnfLimitName | null;

  /** `message` says what is wrong; the location, when given, is appended as "at line L, column C". */
  constructor(code: GrammarErrorCode, message: string, options: GrammarErrorOptions = {}) {
    const location = options.location ?? null;
    const suffix = location === null ? "" : ` at line ${location.line}, column ${location.column}`;
    super(message + suffix, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.line = location?.line ?? null;
    this.column = location?.column ?? null;
    this.limit = options.limit ?? null;
  }
}

/** The line and column of a UTF-16 offset in `text`; linear, so only call it when raising an error. */
export function locateOffset(text: string, offset: number): GrammarLocation {
  let line = 1;
  let column = 1;
  const end = Math.min(offset, text.length);
  for (let i = 0; i < end; i++) {
    const unit = text.charCodeAt(i);
    if (unit === 0x0a || (unit === 0x0d && text.charCodeAt(i + 1) !== 0x0a)) {
      line++;
      column = 1;
    } else if (unit === 0x0d) {
      // the \r of a \r\n: the \n that follows ends the line
    } else if (unit < 0xdc00 || unit > 0xdfff || i === 0 || !isHighSurrogate(text.charCodeAt(i - 1))) {
      column++;
    }
  }
  return { line, column };
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}
