/**
 * A parser for the ECMAScript regular expressions JSON Schema's `pattern` uses (ajv compiles them with the `u`
 * flag), into a small tree of character sets, sequences, alternatives and repetitions. Constructs a grammar cannot
 * express exactly (lookarounds, backreferences, word boundaries, Unicode property escapes) are refused by name.
 */
import { type CharRange, type CharSet, charSetOf, complement } from "./char-set.ts";

export type RegexNode =
  | { readonly kind: "chars"; readonly set: CharSet }
  | { readonly kind: "seq"; readonly items: readonly RegexNode[] }
  | { readonly kind: "alt"; readonly alts: readonly RegexNode[] }
  | { readonly kind: "repeat"; readonly node: RegexNode; readonly min: number; readonly max: number | null }
  | { readonly kind: "start" }
  | { readonly kind: "end" };

/** A pattern construct that cannot be enforced exactly; the message names it. */
export class RegexUnsupportedError extends Error {
  override readonly name = "RegexUnsupportedError";
}

const MAX_GROUP_DEPTH = 64;

const DIGIT: CharSet = [[0x30, 0x39]];
const WORD: CharSet = charSetOf([
  [0x30, 0x39],
  [0x41, 0x5a],
  [0x5f, 0x5f],
  [0x61, 0x7a],
]);
const SPACE: CharSet = charSetOf([
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
]);
/** `.` without the `s` flag: anything but a line terminator. */
export const DOT: CharSet = complement(
  charSetOf([
    [0x0a, 0x0a],
    [0x0d, 0x0d],
    [0x2028, 0x2029],
  ]),
);
const SYNTAX_CHARS = "^$\\.*+?()[]{}|/";

/** Parses `pattern`; throws `RegexUnsupportedError` for what it refuses and `SyntaxError` for invalid patterns. */
export function parseRegex(pattern: string): RegexNode {
  // The engine's own parser is the authority on validity; ours then only needs to handle valid patterns.
  new RegExp(pattern, "u");
  const parser = new Parser(pattern);
  const node = parser.disjunction(0);
  if (parser.pos !== pattern.length) throw new SyntaxError(`unexpected "${pattern[parser.pos]}" in pattern`);
  return node;
}

class Parser {
  pos = 0;
  private readonly src: readonly string[];

  constructor(pattern: string) {
    this.src = Array.from(pattern);
  }

  disjunction(depth: number): RegexNode {
    if (depth > MAX_GROUP_DEPTH) throw new RegexUnsupportedError(`groups nested deeper than ${MAX_GROUP_DEPTH}`);
    const alts: RegexNode[] = [this.alternative(depth)];
    while (this.peek() === "|") {
      this.pos++;
      alts.push(this.alternative(depth));
    }
    return alts.length === 1 ? (alts[0] as RegexNode) : { kind: "alt", alts };
  }

  private alternative(depth: number): RegexNode {
    const items: RegexNode[] = [];
    for (let c = this.peek(); c !== undefined && c !== "|" && c !== ")"; c = this.peek()) {
      const atom = this.term(depth);
      items.push(this.quantified(atom));
    }
    return items.length === 1 ? (items[0] as RegexNode) : { kind: "seq", items };
  }

  private term(depth: number): RegexNode {
    const c = this.next();
    switch (c) {
      case "^":
        return { kind: "start" };
      case "$":
        return { kind: "end" };
      case ".":
        return { kind: "chars", set: DOT };
      case "[":
        return { kind: "chars", set: this.charClass() };
      case "(":
        return this.group(depth);
      case "\\":
        return this.atomEscape();
      default:
        return { kind: "chars", set: single(codeOf(c)) };
    }
  }

  private group(depth: number): RegexNode {
    if (this.peek() === "?") {
      const kind = this.src.slice(this.pos, this.pos + 3).join("");
      if (kind.startsWith("?:")) this.pos += 2;
      else if (kind.startsWith("?=") || kind.startsWith("?!")) throw new RegexUnsupportedError("lookahead");
      else if (kind === "?<=" || kind === "?<!") throw new RegexUnsupportedError("lookbehind");
      else if (kind.startsWith("?<")) {
        while (this.pos < this.src.length && this.next() !== ">") {}
      } else throw new RegexUnsupportedError(`group modifier "(${kind}"`);
    }
    const node = this.disjunction(depth + 1);
    if (this.next() !== ")") throw new SyntaxError("unterminated group");
    return node;
  }

  private quantified(atom: RegexNode): RegexNode {
    const c = this.peek();
    let min: number;
    let max: number | null;
    if (c === "*") [min, max] = [0, null];
    else if (c === "+") [min, max] = [1, null];
    else if (c === "?") [min, max] = [0, 1];
    else if (c === "{") {
      const match = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.pos, this.pos + 40).join(""));
      if (match === null) return atom;
      min = Number(match[1]);
      max = match[2] === undefined ? min : match[3] === "" ? null : Number(match[3]);
      this.pos += match[0].length - 1;
    } else return atom;
    this.pos++;
    // A lazy quantifier matches the same strings when the question is only "is there a match".
    if (this.peek() === "?") this.pos++;
    if (atom.kind === "start" || atom.kind === "end") throw new RegexUnsupportedError("quantified anchor");
    return { kind: "repeat", node: atom, min, max };
  }

  private atomEscape(): RegexNode {
    const c = this.next();
    if (c === "b" || c === "B") throw new RegexUnsupportedError(`word boundary "\\${c}"`);
    if (c === "k" || (c !== undefined && c >= "1" && c <= "9")) throw new RegexUnsupportedError("backreference");
    return { kind: "chars", set: this.escapeSet(c, false) };
  }

  /** The set an escape after `\` stands for; in a class `\b` is a backspace. */
  private escapeSet(c: string | undefined, isInClass: boolean): CharSet {
    switch (c) {
      case "d":
        return DIGIT;
      case "D":
        return complement(DIGIT);
      case "w":
        return WORD;
      case "W":
        return complement(WORD);
      case "s":
        return SPACE;
      case "S":
        return complement(SPACE);
      case "p":
      case "P":
        throw new RegexUnsupportedError(`Unicode property escape "\\${c}"`);
      default:
        return single(this.escapeChar(c, isInClass));
    }
  }

  private escapeChar(c: string | undefined, isInClass: boolean): number {
    switch (c) {
      case "t":
        return 0x09;
      case "n":
        return 0x0a;
      case "v":
        return 0x0b;
      case "f":
        return 0x0c;
      case "r":
        return 0x0d;
      case "0":
        return 0;
      case "b":
        if (isInClass) return 0x08;
        break;
      case "c":
        return codeOf(this.next()) % 32;
      case "x":
        return this.hex(2);
      case "u":
        return this.unicodeEscape();
      default:
        if (c !== undefined && (SYNTAX_CHARS.includes(c) || (isInClass && c === "-"))) return codeOf(c);
    }
    throw new SyntaxError(`invalid escape "\\${c ?? ""}"`);
  }

  private unicodeEscape(): number {
    if (this.peek() === "{") {
      this.pos++;
      let digits = "";
      while (this.pos < this.src.length && this.peek() !== "}") digits += this.next();
      this.pos++;
      return Number.parseInt(digits, 16);
    }
    const code = this.hex(4);
    // With the u flag an escaped surrogate pair is one code point.
    if (code >= 0xd800 && code <= 0xdbff && this.src.slice(this.pos, this.pos + 2).join("") === "\\u") {
      const save = this.pos;
      this.pos += 2;
      const low = this.hex(4);
      if (low >= 0xdc00 && low <= 0xdfff) return 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
      this.pos = save;
    }
    return code;
  }

  private hex(width: number): number {
    const digits = this.src.slice(this.pos, this.pos + width).join("");
    this.pos += width;
    return Number.parseInt(digits, 16);
  }

  private charClass(): CharSet {
    const isNegated = this.peek() === "^";
    if (isNegated) this.pos++;
    const ranges: CharRange[] = [];
    while (this.peek() !== "]") {
      const low = this.classAtom();
      if (this.peek() === "-" && this.src[this.pos + 1] !== "]" && this.src[this.pos + 1] !== undefined) {
        this.pos++;
        const high = this.classAtom();
        const lo = low[0];
        const hi = high[0];
        if (low.length !== 1 || high.length !== 1 || lo === undefined || hi === undefined || lo[0] !== lo[1]) {
          throw new SyntaxError("class range with a class escape");
        }
        ranges.push([lo[0], hi?.[1]]);
      } else ranges.push(...low);
    }
    this.pos++;
    const set = charSetOf(ranges);
    return isNegated ? complement(set) : set;
  }

  private classAtom(): CharSet {
    const c = this.next();
    if (c === undefined) throw new SyntaxError("unterminated class");
    return c === "\\" ? this.escapeSet(this.next(), true) : single(codeOf(c));
  }

  private peek(): string | undefined {
    return this.src[this.pos];
  }

  private next(): string | undefined {
    return this.src[this.pos++];
  }
}

function single(code: number): CharSet {
  return [[code, code]];
}

function codeOf(c: string | undefined): number {
  if (c === undefined) throw new SyntaxError("unexpected end of pattern");
  return c.codePointAt(0) ?? 0;
}
