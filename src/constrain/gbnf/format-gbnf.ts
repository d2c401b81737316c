/**
 * `GbnfGrammar` → canonical GBNF text: one rule per line, ASCII only (other characters escaped), which both our
 * parser and llama.cpp's read back to the same grammar. The engine hands llama.cpp only text made here.
 */
import type { GbnfAlternatives, GbnfCharRange, GbnfElement, GbnfGrammar, GbnfSequence } from "./gbnf-ast.ts";
import { hex } from "./gbnf-scanner.ts";

export function formatGbnf(grammar: GbnfGrammar): string {
  let text = "";
  for (const [name, alternatives] of grammar.rules) text += `${name} ::= ${formatAlternatives(alternatives)}\n`;
  return text;
}

function formatAlternatives(alternatives: GbnfAlternatives): string {
  return alternatives.map(formatSequence).join(" | ");
}

/**
 * An empty sequence is written `""`, which parses back to an empty sequence: a bare trailing `|` at the end of a
 * line would make llama.cpp read on into the next rule.
 */
function formatSequence(sequence: GbnfSequence): string {
  return sequence.length === 0 ? '""' : sequence.map(formatElement).join(" ");
}

function formatElement(element: GbnfElement): string {
  switch (element.kind) {
    case "literal": {
      let text = '"';
      for (const char of element.value) text += escapeCodePoint(char.codePointAt(0)!, LITERAL_ESCAPES);
      return `${text}"`;
    }
    case "char-class":
      return `[${element.isNegated ? "^" : ""}${element.ranges.map(formatRange).join("")}]`;
    case "any-char":
      return ".";
    case "rule-ref":
      return element.name;
    case "group":
      return `(${formatAlternatives(element.alternatives)})`;
    case "repetition":
      return formatElement(element.element) + formatBounds(element.min, element.max);
  }
}

function formatBounds(min: number, max: number | null): string {
  if (max === null) {
    if (min === 0) return "*";
    return min === 1 ? "+" : `{${min},}`;
  }
  if (min === 0 && max === 1) return "?";
  return min === max ? `{${min}}` : `{${min},${max}}`;
}

function formatRange(range: GbnfCharRange): string {
  const first = escapeCodePoint(range.start, CLASS_ESCAPES);
  return range.start === range.end ? first : `${first}-${escapeCodePoint(range.end, CLASS_ESCAPES)}`;
}

/** `-` and `]` would change a class's meaning, `^` too when first, so all three are always escaped in classes. */
const CLASS_ESCAPES: ReadonlyMap<number, string> = new Map([
  [0x5c, "\\\\"],
  [0x5d, "\\]"],
  [0x2d, "\\-"],
  [0x5e, "\\x5E"],
]);
const LITERAL_ESCAPES: ReadonlyMap<number, string> = new Map([
  [0x5c, "\\\\"],
  [0x22, '\\"'],
]);

function escapeCodePoint(codePoint: number, escapes: ReadonlyMap<number, string>): string {
  const escaped = escapes.get(codePoint);
  if (escaped !== undefined) return escaped;
  if (codePoint === 0x09) return "\\t";
  if (codePoint === 0x0a) return "\\n";
  if (codePoint === 0x0d) return "\\r";
  if (codePoint >= 0x20 && codePoint < 0x7f) return String.fromCodePoint(codePoint);
  if (codePoint <= 0xff) return `\\x${hex(codePoint, 2)}`;
  if (codePoint <= 0xffff) return `\\u${hex(codePoint, 4)}`;
  return `\\U${hex(codePoint, 8)}`;
}
