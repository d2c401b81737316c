/**
 * The grammar as plain BNF for the Earley recognizer: groups and repetitions become nonterminals of their own,
 * literals become one terminal per code point, and each production is laid out as "dotted" positions.
 */

import type { CharElement } from "./char-set.ts";
import type { GbnfAlternatives, GbnfElement, GbnfGrammar } from "./gbnf-ast.ts";

/** Symbols: a nonterminal is >= 0, COMPLETE (-1) marks the end of a production, terminal t is -(t + 2). */
export interface CompiledBnf {
  readonly start: number;
  readonly productionsOf: readonly (readonly number[])[];
  readonly firstDotted: readonly number[];
  /** Per dotted position: the symbol after the dot, or COMPLETE. */
  readonly symbolAt: Int32Array;
  /** Per dotted position: its production's nonterminal. */
  readonly lhsOf: Int32Array;
  readonly isNullable: readonly boolean[];
  readonly terminals: readonly CharElement[];
}

export function compileBnf(grammar: GbnfGrammar): CompiledBnf {
  const productions: { lhs: number; rhs: number[] }[] = [];
  const productionsOf: number[][] = [];
  const terminals: CharElement[] = [];
  const literalTerminals = new Map<number, number>();
  const ruleIds = new Map<string, number>();

  const addNonterminal = () => productionsOf.push([]) - 1;
  const addProduction = (lhs: number, rhs: number[]) => {
    productionsOf[lhs]!.push(productions.length);
    productions.push({ lhs, rhs });
  };
  const literalTerminal = (codePoint: number) => {
    let terminal = literalTerminals.get(codePoint);
    if (terminal === undefined) {
      terminal = terminals.push({
        kind: "char-class",
        isNegated: false,
        ranges: [{ start: codePoint, end: codePoint }],
      });
      terminal -= 1;
      literalTerminals.set(codePoint, terminal);
    }
    return -(terminal + 2);
  };
  const addAlternatives = (lhs: number, alternatives: GbnfAlternatives) => {
    for (const sequence of alternatives) {
      const rhs: number[] = [];
      for (const element of sequence) emit(element, rhs);
      addProduction(lhs, rhs);
    }
  };
  const asOneSymbol = (element: GbnfElement): number => {
    const symbols: number[] = [];
    emit(element, symbols);
    if (symbols.length === 1) return symbols[0]!;
    const wrapper = addNonterminal();
    addProduction(wrapper, symbols);
    return wrapper;
  };
  const emit = (element: GbnfElement, out: number[]): void => {
    switch (element.kind) {
      case "literal":
        for (const char of element.value) out.push(literalTerminal(char.codePointAt(0)!));
        return;
      case "char-class":
      case "any-char":
        out.push(-(terminals.push(element) - 1 + 2));
        return;
      case "rule-ref":
        out.push(ruleIds.get(element.name)!);
        return;
      case "group": {
        const group = addNonterminal();
        addAlternatives(group, element.alternatives);
        out.push(group);
        return;
      }
      case "repetition": {
        if (element.max === 0) return;
        const repeated = asOneSymbol(element.element);
        for (let copy = 0; copy < element.min; copy++) out.push(repeated);
        if (element.max === null) {
          // Left recursion is what Earley handles best: R ::= ε | R X.
          const rest = addNonterminal();
          addProduction(rest, []);
          addProduction(rest, [rest, repeated]);
          out.push(rest);
        } else if (element.max > element.min) {
          let rest = addNonterminal();
          addProduction(rest, []);
          addProduction(rest, [repeated]);
          for (let count = element.min + 1; count < element.max; count++) {
            const longer = addNonterminal();
            addProduction(longer, []);
            addProduction(longer, [repeated, rest]);
            rest = longer;
          }
          out.push(rest);
        }
        return;
      }
    }
  };

  for (const name of grammar.rules.keys()) ruleIds.set(name, addNonterminal());
  for (const [name, alternatives] of grammar.rules) addAlternatives(ruleIds.get(name)!, alternatives);
  const start = addNonterminal();
  addProduction(start, [ruleIds.get(grammar.rootName)!]);

  const numDotted = productions.reduce((sum, production) => sum + production.rhs.length + 1, 0);
  const symbolAt = new Int32Array(numDotted);
  const lhsOf = new Int32Array(numDotted);
  const firstDotted: number[] = [];
  let offset = 0;
  for (const production of productions) {
    firstDotted.push(offset);
    for (let index = 0; index <= production.rhs.length; index++) {
      symbolAt[offset + index] = production.rhs[index] ?? -1;
      lhsOf[offset + index] = production.lhs;
    }
    offset += production.rhs.length + 1;
  }
  return {
    start,
    productionsOf,
    firstDotted,
    symbolAt,
    lhsOf,
    isNullable: nullableNonterminals(productions, productionsOf.length),
    terminals,
  };
}

/** Counter-based, linear: a production is nullable once all its symbols are; a terminal never is. */
function nullableNonterminals(productions: readonly { lhs: number; rhs: number[] }[], count: number): boolean[] {
  const isNullable = new Array<boolean>(count).fill(false);
  const numPending = productions.map((production) =>
    production.rhs.some((symbol) => symbol < 0) ? Number.POSITIVE_INFINITY : production.rhs.length,
  );
  const occurrences: number[][] = Array.from({ length: count }, () => []);
  productions.forEach((production, index) => {
    for (const symbol of production.rhs) if (symbol >= 0) occurrences[symbol]!.push(index);
  });
  const proven: number[] = [];
  const prove = (nonterminal: number) => {
    if (isNullable[nonterminal]) return;
    isNullable[nonterminal] = true;
    proven.push(nonterminal);
  };
  productions.forEach((production, index) => {
    if (numPending[index] === 0) prove(production.lhs);
  });
  while (proven.length > 0) {
    for (const index of occurrences[proven.pop()!]!) {
      if (--numPending[index]! === 0) prove(productions[index]!.lhs);
    }
  }
  return isNullable;
}
