/**
 * The lexemes of a GBNF sequence that carry values: string literals, character classes and repetition operators,
 * read as llama.cpp's parse_sequence reads them.
 */
import type { GbnfCharRange, GbnfElement } from "./gbnf-ast.ts";
import { type GbnfScanner, isDigit } from "./gbnf-scanner.ts";
import { GrammarError, locateOffset } from "./grammar-error.ts";

/** `*`, `+`, `?`, `{m}`, `{m,}` or `{m,n}` and the space after it; refuses counts above the limit and n < m. */
export function readRepetitionOperator(
  scanner: GbnfScanner,
  isNested: boolean,
  maxRepetitionCount: number,
): { min: number; max: number | null } {
  const start = scanner.pos;
  const char = scanner.peek();
  scanner.pos++;
  scanner.skipSpace(isNested);
  if (char === "*") return { min: 0, max: null };
  if (char === "+") return { min: 1, max: null };
  if (char === "?") return { min: 0, max: 1 };
  if (!isDigit(scanner.text.charCodeAt(scanner.pos))) {
    throw scanner.error("PAGODA_ERR_GRAMMAR_SYNTAX", `expected a number after "{", found ${scanner.describeHere()}`);
  }
  const min = scanner.readInt();
  scanner.skipSpace(isNested);
  let max: number | null = min;
  if (scanner.peek() === ",") {
    scanner.pos++;
    scanner.skipSpace(isNested);
    max = null;
    if (isDigit(scanner.text.charCodeAt(scanner.pos))) {
      max = scanner.readInt();
      scanner.skipSpace(isNested);
    }
  } else if (scanner.peek() !== "}") {
    throw scanner.error("PAGODA_ERR_GRAMMAR_SYNTAX", `expected "," or "}", found ${scanner.describeHere()}`);
  }
  if (scanner.peek() !== "}") {
    throw scanner.error("PAGODA_ERR_GRAMMAR_SYNTAX", `expected "}", found ${scanner.describeHere()}`);
  }
  scanner.pos++;
  scanner.skipSpace(isNested);
  const limit = maxRepetitionCount;
  if (min > limit || (max !== null && max > limit)) {
    throw new GrammarError("PAGODA_ERR_GRAMMAR_LIMIT", `repetition count above maxRepetitionCount (${limit})`, {
      location: locateOffset(scanner.text, start),
      limit: "maxRepetitionCount",
    });
  }
  if (max !== null && max < min) {
    throw scanner.error(
      "PAGODA_ERR_GRAMMAR_SYNTAX",
      `repetition {${min},${max}} has its maximum below its minimum`,
      start,
    );
  }
  return { min, max };
}

/** A `"…"` literal, escapes decoded. */
export function readLiteral(scanner: GbnfScanner): string {
  const start = scanner.pos;
  scanner.pos++;
  const codePoints: number[] = [];
  while (scanner.peek() !== '"') {
    if (scanner.isAtEnd) throw scanner.error("PAGODA_ERR_GRAMMAR_SYNTAX", "unterminated string literal", start);
    codePoints.push(scanner.readChar());
  }
  scanner.pos++;
  return stringFromCodePoints(codePoints);
}

/** A `[…]` or `[^…]` class; empty classes and reversed ranges are refused. */
export function readCharClass(scanner: GbnfScanner): GbnfElement & { kind: "char-class" } {
  const start = scanner.pos;
  scanner.pos++;
  const isNegated = scanner.peek() === "^";
  if (isNegated) scanner.pos++;
  const ranges: GbnfCharRange[] = [];
  while (scanner.peek() !== "]") {
    if (scanner.isAtEnd) throw scanner.error("PAGODA_ERR_GRAMMAR_SYNTAX", "unterminated character class", start);
    const rangeStart = scanner.pos;
    const first = scanner.readChar();
    // As in llama.cpp, "-" makes a range unless "]" follows it: [a-] is "a" or "-".
    if (scanner.peek() === "-" && scanner.peek(1) !== "]") {
      scanner.pos++;
      if (scanner.isAtEnd) throw scanner.error("PAGODA_ERR_GRAMMAR_SYNTAX", "unterminated character class", start);
      const last = scanner.readChar();
      if (last < first)
        throw scanner.error("PAGODA_ERR_GRAMMAR_SYNTAX", "character range ends before it starts", rangeStart);
      ranges.push({ start: first, end: last });
    } else {
      ranges.push({ start: first, end: first });
    }
  }
  scanner.pos++;
  if (ranges.length === 0) throw scanner.error("PAGODA_ERR_GRAMMAR_SYNTAX", "empty character class", start);
  return { kind: "char-class", isNegated, ranges };
}

function stringFromCodePoints(codePoints: readonly number[]): string {
  let value = "";
  for (const codePoint of codePoints) value += String.fromCodePoint(codePoint);
  return value;
}
