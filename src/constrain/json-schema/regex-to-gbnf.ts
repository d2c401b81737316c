/**
 * Regular expressions to GBNF. JSON Schema patterns are unanchored: a string matches when the pattern matches
 * anywhere in it, so a side without `^` or `$` gets any characters around the match. Inside a JSON string each
 * character is emitted in its JSON spelling (see `jsonCharGbnf`). llama.cpp cannot repeat an expression that
 * matches the empty string (its rewrite of `x*` becomes left-recursive), so repeated nullable expressions are
 * rewritten to their non-empty part first: `x{m,n}` with nullable `x` equals `x'{0,n}` where `x'` is `x` minus "".
 */
import { type CharSet, jsonCharGbnf, MAX_CODE_POINT, rawCharGbnf } from "./char-set.ts";
import { alternatives, type GbnfBuilder, sequence } from "./gbnf-builder.ts";
import type { SchemaLimits } from "./limits.ts";
import { automatonGbnf, automatonOf, intersectAutomata, lengthAutomaton } from "./regex-automaton.ts";
import { parseRegex, type RegexNode, RegexUnsupportedError } from "./regex-parser.ts";
import { SchemaError } from "./schema-error.ts";

const ANY: CharSet = [[0, MAX_CODE_POINT]];
const EMPTY: RegexNode = { kind: "seq", items: [] };

export interface PatternContext {
  readonly builder: GbnfBuilder;
  readonly limits: SchemaLimits;
  readonly pointer: string;
  /** True inside a JSON string: characters get their JSON spelling. */
  readonly isJsonString: boolean;
}

/** Length bounds in code points; `null` max is unbounded. */
export interface LengthBounds {
  readonly min: number;
  readonly max: number | null;
}

/**
 * GBNF for the content of a JSON string (between the quotes) that matches every one of `patterns` and has a
 * length within `length`. One pattern with length bounds it already meets, or whose only variable part can be
 * narrowed to meet them, is translated directly; anything else goes through automaton intersection.
 */
export function patternsGbnf(patterns: readonly string[], length: LengthBounds, context: PatternContext): string {
  const nodes = patterns.map((pattern) => patternNode(pattern, context));
  const only = nodes[0];
  if (nodes.length === 1 && only !== undefined) {
    const direct = fitAll(only, length);
    if (direct !== null) return emit(direct, context);
  }
  const limits = { maxStates: context.limits.maxAutomatonStates, pointer: context.pointer, keyword: "pattern" };
  let automaton = lengthAutomaton(
    length.min,
    length.max === null ? null : Math.min(length.max, context.limits.maxRepetition),
    ANY,
  );
  for (const node of nodes) automaton = intersectAutomata(automaton, automatonOf(node, limits), limits);
  const gbnf = automatonGbnf(automaton, context.builder, context.isJsonString, context.pointer);
  if (gbnf === null) {
    throw new SchemaError("invalid_schema", "pattern", context.pointer, "no string of the allowed length matches");
  }
  return gbnf;
}

/** The pattern as one node, its unanchored sides filled with any characters. */
function patternNode(pattern: string, context: PatternContext): RegexNode {
  const alts = anchoredAlternatives(parsePattern(pattern, context), context.pointer);
  return alts.length === 1 ? (alts[0] as RegexNode) : { kind: "alt", alts };
}

/** `node` with lengths in `length`, exactly, by `fitLength` on each alternative; null when that is not exact. */
function fitAll(node: RegexNode, length: LengthBounds): RegexNode | null {
  if (length.min === 0 && length.max === null) return node;
  const alts = node.kind === "alt" ? node.alts : [node];
  const fitted: RegexNode[] = [];
  for (const alt of alts) {
    const result = fitLength(alt, length);
    if (result === null) return null;
    if (result !== "empty") fitted.push(result);
  }
  return fitted.length === 0 ? null : fitted.length === 1 ? (fitted[0] as RegexNode) : { kind: "alt", alts: fitted };
}

/**
 * GBNF (with a `root` rule) for output that matches `pattern` as a whole, as vLLM's `structured_outputs.regex`
 * means it: the pattern is anchored at both ends, `^` and `$` at the ends are accepted and redundant.
 */
export function regexToGbnfWith(pattern: string, builder: GbnfBuilder, limits: SchemaLimits): string {
  const context: PatternContext = { builder, limits, pointer: "", isJsonString: false };
  let node = parsePattern(pattern, context);
  if (node.kind === "seq" && node.items[0]?.kind === "start") node = { kind: "seq", items: node.items.slice(1) };
  if (node.kind === "seq" && node.items[node.items.length - 1]?.kind === "end") {
    node = { kind: "seq", items: node.items.slice(0, -1) };
  }
  if (node.kind === "start" || node.kind === "end") node = EMPTY;
  builder.defineRoot(emit(node, context) || '""');
  return builder.format();
}

function parsePattern(pattern: string, context: PatternContext): RegexNode {
  if (pattern.length > context.limits.maxPatternChars) {
    throw new SchemaError(
      "schema_too_large",
      "pattern",
      context.pointer,
      `pattern longer than ${context.limits.maxPatternChars} characters`,
    );
  }
  try {
    return parseRegex(pattern);
  } catch (error) {
    if (error instanceof RegexUnsupportedError) {
      throw new SchemaError("unsupported_keyword", "pattern", context.pointer, `${error.message} cannot be enforced`, {
        cause: error,
      });
    }
    const reason = error instanceof Error ? error.message : String(error);
    throw new SchemaError("invalid_schema", "pattern", context.pointer, `not a valid regular expression: ${reason}`, {
      cause: error,
    });
  }
}

/** Top-level alternatives with their anchors resolved: an unanchored side gets `[^]*`. */
function anchoredAlternatives(node: RegexNode, pointer: string): RegexNode[] {
  const alts = node.kind === "alt" ? node.alts : [node];
  return alts.map((alt) => {
    let items = alt.kind === "seq" ? [...alt.items] : [alt];
    let isStartAnchored = false;
    let isEndAnchored = false;
    while (items[0]?.kind === "start") {
      items = items.slice(1);
      isStartAnchored = true;
    }
    while (items[items.length - 1]?.kind === "end") {
      items = items.slice(0, -1);
      isEndAnchored = true;
    }
    if (items.some(hasAnchor)) {
      throw new SchemaError(
        "unsupported_keyword",
        "pattern",
        pointer,
        "an anchor inside the pattern cannot be enforced",
      );
    }
    const anything: RegexNode = { kind: "repeat", node: { kind: "chars", set: ANY }, min: 0, max: null };
    return {
      kind: "seq",
      items: [...(isStartAnchored ? [] : [anything]), ...items, ...(isEndAnchored ? [] : [anything])],
    };
  });
}

function hasAnchor(node: RegexNode): boolean {
  switch (node.kind) {
    case "start":
    case "end":
      return true;
    case "chars":
      return false;
    case "seq":
      return node.items.some(hasAnchor);
    case "alt":
      return node.alts.some(hasAnchor);
    case "repeat":
      return hasAnchor(node.node);
  }
}

/**
 * `alt` restricted to lengths in `length`: unchanged when all its strings fit, or with the bounds of its only
 * variable-length part (a repeated character set) narrowed; `null` when neither is exact, "empty" when no string
 * fits.
 */
function fitLength(alt: RegexNode, length: LengthBounds): RegexNode | "empty" | null {
  const [min, max] = lengthOf(alt);
  if (min >= length.min && max !== null && (length.max === null || max <= length.max)) return alt;
  if (min >= length.min && max === null && length.max === null) return alt;
  const items = alt.kind === "seq" ? alt.items : [alt];
  const variable = items.filter((item) => {
    const [lo, hi] = lengthOf(item);
    return lo !== hi;
  });
  const only = variable[0];
  if (variable.length !== 1 || only === undefined || only.kind !== "repeat" || only.node.kind !== "chars") return null;
  const fixed = min - only.min;
  const lo = Math.max(only.min, length.min - fixed);
  const hi = minOf(only.max, length.max === null ? null : length.max - fixed);
  if (hi !== null && lo > hi) return "empty";
  return { kind: "seq", items: items.map((item) => (item === only ? { ...only, min: lo, max: hi } : item)) };
}

function minOf(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

/** Shortest and longest match in code points; `null` is unbounded. */
export function lengthOf(node: RegexNode): [number, number | null] {
  switch (node.kind) {
    case "chars":
      return [1, 1];
    case "start":
    case "end":
      return [0, 0];
    case "seq": {
      let min = 0;
      let max: number | null = 0;
      for (const item of node.items) {
        const [lo, hi] = lengthOf(item);
        min += lo;
        max = max === null || hi === null ? null : max + hi;
      }
      return [min, max];
    }
    case "alt": {
      const lengths = node.alts.map(lengthOf);
      const min = Math.min(...lengths.map(([lo]) => lo));
      const max = lengths.some(([, hi]) => hi === null) ? null : Math.max(...lengths.map(([, hi]) => hi ?? 0));
      return [min, max];
    }
    case "repeat": {
      const [lo, hi] = lengthOf(node.node);
      const max = node.max === null ? (hi === 0 ? 0 : null) : hi === null ? null : hi * node.max;
      return [lo * node.min, max];
    }
  }
}

function isNullable(node: RegexNode): boolean {
  return lengthOf(node)[0] === 0;
}

/** The non-empty strings of `node`; null when it has none. */
function nonEmpty(node: RegexNode): RegexNode | null {
  if (!isNullable(node)) return node;
  switch (node.kind) {
    case "chars":
      return node;
    case "start":
    case "end":
      return null;
    case "alt": {
      const alts = node.alts.map(nonEmpty).filter((alt): alt is RegexNode => alt !== null);
      return alts.length === 0 ? null : { kind: "alt", alts };
    }
    case "repeat": {
      const inner = nonEmpty(node.node);
      if (inner === null || node.max === 0) return null;
      return { kind: "repeat", node: inner, min: 1, max: node.max };
    }
    case "seq": {
      // Every item is nullable: a non-empty string has a first non-empty item.
      const alts: RegexNode[] = [];
      node.items.forEach((item, i) => {
        const head = nonEmpty(item);
        if (head !== null) alts.push({ kind: "seq", items: [head, ...node.items.slice(i + 1)] });
      });
      return alts.length === 0 ? null : { kind: "alt", alts };
    }
  }
}

function emit(node: RegexNode, context: PatternContext): string {
  switch (node.kind) {
    case "chars":
      if (node.set.length === 0) {
        throw new SchemaError("unsupported_keyword", "pattern", context.pointer, "an empty character class");
      }
      return context.isJsonString ? jsonCharGbnf(node.set) : rawCharGbnf(node.set);
    case "start":
    case "end":
      throw new SchemaError("unsupported_keyword", "pattern", context.pointer, "an anchor inside the pattern");
    case "seq":
      return sequence(node.items.map((item) => emit(item, context)));
    case "alt": {
      const parts = node.alts.map((alt) => emit(alt, context));
      const nonEmptyParts = parts.filter((part) => part !== "");
      if (nonEmptyParts.length === 0) return "";
      return nonEmptyParts.length < parts.length ? `(${alternatives(nonEmptyParts)})?` : alternatives(parts);
    }
    case "repeat":
      return emitRepeat(node, context);
  }
}

function emitRepeat(node: RegexNode & { kind: "repeat" }, context: PatternContext): string {
  let inner: RegexNode | null = node.node;
  let min = node.min;
  if (isNullable(inner)) {
    inner = nonEmpty(inner);
    min = 0;
  }
  if (inner === null || node.max === 0) return "";
  // A larger bound than llama.cpp can expand is lowered: a stricter grammar, never a looser one.
  const max = node.max === null ? null : Math.min(node.max, context.limits.maxRepetition);
  if (max !== null && min > max) {
    throw new SchemaError(
      "schema_too_large",
      "pattern",
      context.pointer,
      `repetition {${node.min},} exceeds the limit of ${context.limits.maxRepetition}`,
    );
  }
  const item = emit(inner, context);
  return context.builder.repeat(item, min, max, "pattern-item", context.pointer, "pattern");
}
