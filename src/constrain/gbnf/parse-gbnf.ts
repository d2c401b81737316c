/**
 * GBNF text → `GbnfGrammar`, accepting what llama.cpp's parser (src/llama-grammar.cpp) accepts, minus what is
 * unsafe or unsupported (see `validateGbnf`). While parsing it replays llama.cpp's bookkeeping (symbol ids,
 * generated rules, expanded element counts) so it refuses whatever llama.cpp would refuse or blow up on.
 * Recursion is bounded by `maxNestingDepth`; every other loop is linear in the text.
 */
import {
  DEFAULT_ROOT_RULE_NAME,
  type GbnfAlternatives,
  type GbnfElement,
  type GbnfGrammar,
  type GbnfSequence,
} from "./gbnf-ast.ts";
import { readCharClass, readLiteral, readRepetitionOperator } from "./gbnf-lexemes.ts";
import {
  type GbnfLimits,
  NATIVE_REPETITION_THRESHOLD,
  type ResolvedGbnfLimits,
  resolveGbnfLimits,
} from "./gbnf-limits.ts";
import { GbnfScanner, isWordChar } from "./gbnf-scanner.ts";
import { GrammarError, locateOffset } from "./grammar-error.ts";
import { type GbnfSourceMap, validateGbnf } from "./validate-gbnf.ts";

export interface ParseGbnfOptions extends GbnfLimits {
  /** The start rule. Defaults to "root". */
  readonly rootName?: string;
}

/** What llama.cpp knows about the last symbol of a sequence when it applies a repetition operator to it. */
interface PreviousSymbol {
  /** Index of the element in the sequence being built. */
  readonly index: number;
  /** Elements llama.cpp emitted inline for it; 0 means it has nothing to repeat. */
  readonly numInline: number;
  /** llama.cpp's n_prev_rules: symbols generated for it, times the counts of repetitions already applied. */
  readonly numRules: number;
  /** Nesting of groups and repetitions inside it. */
  readonly depth: number;
}

interface ParsedSequence {
  readonly elements: GbnfSequence;
  readonly numInline: number;
  readonly depth: number;
}

/** Parses and validates; throws `GrammarError` naming the line and column, or the limit, at fault. */
export function parseGbnf(text: string, options: ParseGbnfOptions = {}): GbnfGrammar {
  const limits = resolveGbnfLimits(options);
  const rootName = options.rootName ?? DEFAULT_ROOT_RULE_NAME;
  if (text.length > limits.maxTextLength) {
    throw new GrammarError(
      "PAGODA_ERR_GRAMMAR_LIMIT",
      `grammar is ${text.length} characters long, more than maxTextLength (${limits.maxTextLength})`,
      { limit: "maxTextLength" },
    );
  }
  const parser = new GbnfParser(text, limits);
  const rules = parser.parseRules();
  const grammar: GbnfGrammar = { rootName, rules };
  validateGbnf(grammar, parser.sourceMap, limits);
  return grammar;
}

class GbnfParser {
  readonly sourceMap: GbnfSourceMap;
  private readonly scanner: GbnfScanner;
  private readonly limits: ResolvedGbnfLimits;
  private readonly rules = new Map<string, GbnfAlternatives>();
  /** llama.cpp's symbol_ids: names in first-seen order, and the count including generated rules. */
  private readonly symbolNames = new Set<string>();
  private numSymbols = 0;
  private numExpanded = 0;

  constructor(text: string, limits: ResolvedGbnfLimits) {
    this.scanner = new GbnfScanner(text);
    this.limits = limits;
    this.sourceMap = {
      text,
      symbolOrder: [],
      ruleOffsets: new Map(),
      elementOffsets: new WeakMap(),
      references: [],
    };
  }

  parseRules(): Map<string, GbnfAlternatives> {
    const scanner = this.scanner;
    scanner.skipSpace(true);
    while (!scanner.isAtEnd) this.parseRule();
    return this.rules;
  }

  private parseRule(): void {
    const scanner = this.scanner;
    const start = scanner.pos;
    if (this.rules.size > 0 && !isWordChar(scanner.text.charCodeAt(start))) {
      throw scanner.error(
        "PAGODA_ERR_GRAMMAR_SYNTAX",
        `expected a rule name, found ${scanner.describeHere()} ` +
          '(a rule continues on the next line only after "|" or inside parentheses)',
      );
    }
    const name = scanner.readName();
    scanner.skipSpace(false);
    if (!scanner.startsWith("::=")) {
      throw scanner.error(
        "PAGODA_ERR_GRAMMAR_SYNTAX",
        `expected "::=" after rule name "${name}", found ${scanner.describeHere()}`,
      );
    }
    if (this.rules.has(name))
      throw scanner.error("PAGODA_ERR_GRAMMAR_DUPLICATE_RULE", `rule "${name}" is defined twice`, start);
    if (this.rules.size >= this.limits.maxRules) {
      throw new GrammarError("PAGODA_ERR_GRAMMAR_LIMIT", `more than maxRules (${this.limits.maxRules}) rules`, {
        location: locateOffset(scanner.text, start),
        limit: "maxRules",
      });
    }
    scanner.pos += 3;
    scanner.skipSpace(true);
    this.noteSymbol(name);
    this.sourceMap.ruleOffsets.set(name, start);
    this.rules.set(name, this.parseAlternates(false, 0).alternatives);
    if (scanner.startsWith("\r\n")) scanner.pos += 2;
    else if (scanner.peek() === "\n" || scanner.peek() === "\r") scanner.pos += 1;
    else if (!scanner.isAtEnd) {
      throw scanner.error(
        "PAGODA_ERR_GRAMMAR_SYNTAX",
        `unexpected ${scanner.describeHere()} in rule "${name}" (expected an element, "|" or end of line)`,
      );
    }
    scanner.skipSpace(true);
  }

  private parseAlternates(isNested: boolean, depth: number): { alternatives: GbnfAlternatives; depth: number } {
    const scanner = this.scanner;
    const sequences = [this.parseSequence(isNested, depth)];
    while (scanner.peek() === "|") {
      scanner.pos++;
      scanner.skipSpace(true);
      sequences.push(this.parseSequence(isNested, depth));
    }
    // Each sequence's elements, plus one ALT between sequences and one END.
    let numElements = sequences.length;
    let maxDepth = 0;
    for (const sequence of sequences) {
      numElements += sequence.numInline;
      maxDepth = Math.max(maxDepth, sequence.depth);
    }
    this.addExpanded(numElements);
    return { alternatives: sequences.map((sequence) => sequence.elements), depth: maxDepth };
  }

  private parseSequence(isNested: boolean, outerDepth: number): ParsedSequence {
    const scanner = this.scanner;
    const elements: GbnfElement[] = [];
    let numInline = 0;
    let depth = 0;
    let previous: PreviousSymbol | null = null;
    const push = (element: GbnfElement, numElementInline: number, numRules: number, elementDepth: number) => {
      previous = { index: elements.length, numInline: numElementInline, numRules, depth: elementDepth };
      elements.push(element);
      numInline += numElementInline;
      depth = Math.max(depth, elementDepth);
    };
    for (;;) {
      const char = scanner.peek();
      const start = scanner.pos;
      if (char === '"') {
        const value = readLiteral(scanner);
        scanner.skipSpace(isNested);
        const numChars = countCodePoints(value);
        if (numChars === 0) {
          // llama.cpp emits nothing for "", and a repetition right after it finds nothing to repeat.
          previous = { index: -1, numInline: 0, numRules: 1, depth: 0 };
        } else push({ kind: "literal", value }, numChars, 1, 0);
      } else if (char === "[") {
        const element = readCharClass(scanner);
        scanner.skipSpace(isNested);
        let numClassInline = 0;
        for (const range of element.ranges) numClassInline += range.start === range.end ? 1 : 2;
        push(element, numClassInline, 1, 0);
      } else if (char === "<" || char === "!") {
        throw scanner.error("PAGODA_ERR_GRAMMAR_UNSUPPORTED", "token references (<…>, !<…>) are not supported");
      } else if (char !== "" && isWordChar(char.charCodeAt(0))) {
        const name = scanner.readName();
        scanner.skipSpace(isNested);
        this.noteSymbol(name);
        const element: GbnfElement = { kind: "rule-ref", name };
        this.sourceMap.references.push({ name, offset: start });
        this.sourceMap.elementOffsets.set(element, start);
        push(element, 1, 1, 0);
      } else if (char === "(") {
        if (outerDepth + 1 > this.limits.maxNestingDepth) this.failNesting(start);
        scanner.pos++;
        scanner.skipSpace(true);
        const numSymbolsBefore = this.numSymbols;
        this.numSymbols++;
        const inner = this.parseAlternates(true, outerDepth + 1);
        if (scanner.peek() !== ")") {
          throw scanner.error("PAGODA_ERR_GRAMMAR_SYNTAX", `expected ")" or "|", found ${scanner.describeHere()}`);
        }
        scanner.pos++;
        scanner.skipSpace(isNested);
        const element: GbnfElement = { kind: "group", alternatives: inner.alternatives };
        this.sourceMap.elementOffsets.set(element, start);
        push(element, 1, Math.max(1, this.numSymbols - numSymbolsBefore), inner.depth + 1);
      } else if (char === ".") {
        scanner.pos++;
        scanner.skipSpace(isNested);
        push({ kind: "any-char" }, 1, 1, 0);
      } else if (char === "*" || char === "+" || char === "?" || char === "{") {
        const bounds = readRepetitionOperator(scanner, isNested, this.limits.maxRepetitionCount);
        const current: PreviousSymbol | null = previous;
        if (current === null || current.numInline === 0) {
          throw scanner.error("PAGODA_ERR_GRAMMAR_SYNTAX", `nothing to repeat before "${char}"`, start);
        }
        const repeated = this.applyRepetition(current, elements, bounds, start, outerDepth);
        numInline += repeated.numInline - current.numInline;
        depth = Math.max(depth, repeated.depth);
        previous = repeated;
        if (numInline > this.limits.maxExpandedElements) this.failExpanded(start);
      } else {
        return { elements, numInline, depth };
      }
    }
  }

  /** Replays llama.cpp's handle_repetitions: S{m,n} → m inline copies of S, then a chain of n-m optional rules. */
  private applyRepetition(
    previous: PreviousSymbol,
    elements: GbnfElement[],
    bounds: { min: number; max: number | null },
    start: number,
    outerDepth: number,
  ): PreviousSymbol {
    const { min, max } = bounds;
    const count = max !== null && max > 0 ? max : Math.max(min, 1);
    if (previous.numRules * count >= NATIVE_REPETITION_THRESHOLD) {
      throw new GrammarError(
        "PAGODA_ERR_GRAMMAR_LIMIT",
        `repetition too large for llama.cpp: ${previous.numRules} rule(s) repeated ${count} times reaches its ` +
          `threshold of ${NATIVE_REPETITION_THRESHOLD}`,
        { location: locateOffset(this.scanner.text, start), limit: "nativeRepetitionThreshold" },
      );
    }
    const depth = previous.depth + 1;
    if (outerDepth + depth > this.limits.maxNestingDepth) this.failNesting(start);
    const numOptional = max === null ? 1 : max - min;
    this.numSymbols += numOptional;
    this.addExpanded(numOptional * (previous.numInline + 3), start);
    const inner = elements[previous.index]!;
    const element: GbnfElement = { kind: "repetition", element: inner, min, max };
    this.sourceMap.elementOffsets.set(element, start);
    elements[previous.index] = element;
    const numInline = min * previous.numInline + (numOptional > 0 ? 1 : 0);
    return { index: previous.index, numInline, numRules: previous.numRules * count, depth };
  }

  private noteSymbol(name: string): void {
    if (this.symbolNames.has(name)) return;
    this.symbolNames.add(name);
    this.sourceMap.symbolOrder.push(name);
    this.numSymbols++;
  }

  private addExpanded(numElements: number, offset = this.scanner.pos): void {
    this.numExpanded += numElements;
    if (this.numExpanded > this.limits.maxExpandedElements) this.failExpanded(offset);
  }

  private failExpanded(offset: number): never {
    throw new GrammarError(
      "PAGODA_ERR_GRAMMAR_LIMIT",
      `grammar expands to more than maxExpandedElements (${this.limits.maxExpandedElements}) elements in llama.cpp`,
      { location: locateOffset(this.scanner.text, offset), limit: "maxExpandedElements" },
    );
  }

  private failNesting(offset: number): never {
    throw new GrammarError(
      "PAGODA_ERR_GRAMMAR_LIMIT",
      `nesting of groups and repetitions deeper than maxNestingDepth (${this.limits.maxNestingDepth})`,
      { location: locateOffset(this.scanner.text, offset), limit: "maxNestingDepth" },
    );
  }
}

function countCodePoints(value: string): number {
  let count = 0;
  for (const _ of value) count++;
  return count;
}
