/**
 * Character-level reading of GBNF text, matching llama.cpp's parse_space, parse_name, parse_int and parse_char
 * (src/llama-grammar.cpp) so that both parsers split the same text the same way.
 */
import { GrammarError, type GrammarErrorCode, locateOffset } from "./grammar-error.ts";

const MAX_CODE_POINT = 0x10ffff;

export class GbnfScanner {
  readonly text: string;
  /** UTF-16 offset of the next unread character. */
  pos = 0;

  constructor(text: string) {
    this.text = text;
  }

  get isAtEnd(): boolean {
    return this.pos >= this.text.length;
  }

  /** The UTF-16 unit at `pos + ahead` as a one-character string, or "" past the end. */
  peek(ahead = 0): string {
    return this.text.charAt(this.pos + ahead);
  }

  startsWith(prefix: string): boolean {
    return this.text.startsWith(prefix, this.pos);
  }

  error(code: GrammarErrorCode, message: string, offset = this.pos): GrammarError {
    return new GrammarError(code, message, { location: locateOffset(this.text, offset) });
  }

  /** Describes the character at `pos` for an error message. */
  describeHere(): string {
    if (this.isAtEnd) return "end of input";
    const codePoint = this.text.codePointAt(this.pos) ?? 0;
    if (codePoint === 0x0a || codePoint === 0x0d) return "end of line";
    if (codePoint < 0x20 || codePoint === 0x7f) return `character U+${hex(codePoint, 4)}`;
    return JSON.stringify(String.fromCodePoint(codePoint));
  }

  /** Skips spaces, tabs and `#` comments, and line breaks too when `isNewlineOk` (inside parentheses, after `|`). */
  skipSpace(isNewlineOk: boolean): void {
    const text = this.text;
    let pos = this.pos;
    while (pos < text.length) {
      const char = text[pos];
      if (char === " " || char === "\t" || (isNewlineOk && (char === "\n" || char === "\r"))) {
        pos++;
      } else if (char === "#") {
        while (pos < text.length && text[pos] !== "\n" && text[pos] !== "\r") pos++;
      } else {
        break;
      }
    }
    this.pos = pos;
  }

  /** Reads a rule name (`[a-zA-Z0-9-]+`). */
  readName(): string {
    const start = this.pos;
    while (this.pos < this.text.length && isWordChar(this.text.charCodeAt(this.pos))) this.pos++;
    if (this.pos === start)
      throw this.error("PAGODA_ERR_GRAMMAR_SYNTAX", `expected a rule name, found ${this.describeHere()}`);
    return this.text.slice(start, this.pos);
  }

  /** Reads decimal digits; a huge number becomes a huge (or infinite) value for the caller's limit to refuse. */
  readInt(): number {
    const start = this.pos;
    while (this.pos < this.text.length && isDigit(this.text.charCodeAt(this.pos))) this.pos++;
    if (this.pos === start)
      throw this.error("PAGODA_ERR_GRAMMAR_SYNTAX", `expected a number, found ${this.describeHere()}`);
    return Number(this.text.slice(start, this.pos));
  }

  /** Reads one character of a string literal or character class: a raw code point or an escape. */
  readChar(): number {
    const start = this.pos;
    const text = this.text;
    if (text[start] !== "\\") {
      const codePoint = text.codePointAt(start);
      if (codePoint === undefined) throw this.error("PAGODA_ERR_GRAMMAR_SYNTAX", "unexpected end of input");
      if (codePoint === 0) throw this.error("PAGODA_ERR_GRAMMAR_SYNTAX", "NUL character (write it as \\x00)");
      if (codePoint >= 0xd800 && codePoint <= 0xdfff)
        throw this.error("PAGODA_ERR_GRAMMAR_SYNTAX", "unpaired surrogate");
      this.pos += codePoint > 0xffff ? 2 : 1;
      return codePoint;
    }
    const kind = text[start + 1] ?? "";
    this.pos = start + 2;
    switch (kind) {
      case "x":
        return this.readHex(2, start);
      case "u":
        return this.readHex(4, start);
      case "U":
        return this.readHex(8, start);
      case "t":
        return 0x09;
      case "r":
        return 0x0d;
      case "n":
        return 0x0a;
      case "\\":
      case '"':
      case "[":
      case "]":
      case "-":
        return kind.charCodeAt(0);
      default:
        this.pos = start;
        throw this.error("PAGODA_ERR_GRAMMAR_SYNTAX", `unknown escape "\\${kind}"`, start);
    }
  }

  private readHex(numDigits: number, escapeStart: number): number {
    const digits = this.text.slice(this.pos, this.pos + numDigits);
    if (!new RegExp(`^[0-9a-fA-F]{${numDigits}}$`).test(digits)) {
      throw this.error("PAGODA_ERR_GRAMMAR_SYNTAX", `expected ${numDigits} hex digits in escape`, escapeStart);
    }
    const codePoint = Number.parseInt(digits, 16);
    if (codePoint > MAX_CODE_POINT || (codePoint >= 0xd800 && codePoint <= 0xdfff)) {
      throw this.error(
        "PAGODA_ERR_GRAMMAR_SYNTAX",
        `escape names invalid code point U+${hex(codePoint, 4)}`,
        escapeStart,
      );
    }
    this.pos += numDigits;
    return codePoint;
  }
}

export function isWordChar(unit: number): boolean {
  return (unit >= 0x61 && unit <= 0x7a) || (unit >= 0x41 && unit <= 0x5a) || unit === 0x2d || isDigit(unit);
}

export function isDigit(unit: number): boolean {
  return unit >= 0x30 && unit <= 0x39;
}

export function hex(value: number, minDigits: number): string {
  return value.toString(16).toUpperCase().padStart(minDigits, "0");
}
