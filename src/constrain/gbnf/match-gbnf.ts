/**
 * An exact recognizer: does the grammar derive exactly this text? An Earley parser (with Aycock and Horspool's
 * handling of nullable symbols) over the grammar compiled to plain BNF, iterative and bounded by a step budget,
 * so ambiguous grammars and long inputs cost time, never stack.
 */

import { charSetContains } from "./char-set.ts";
import { type CompiledBnf, compileBnf } from "./compile-bnf.ts";
import type { GbnfGrammar } from "./gbnf-ast.ts";
import { GrammarError } from "./grammar-error.ts";

export const DEFAULT_MATCH_MAX_STEPS = 10_000_000;

export interface MatchGbnfOptions {
  /** Most Earley items to create before giving up with `PAGODA_ERR_GRAMMAR_MATCH_BUDGET`. Defaults to 10000000. */
  readonly maxSteps?: number;
}

const compiledGrammars = new WeakMap<GbnfGrammar, CompiledBnf>();

export function matchesGbnf(grammar: GbnfGrammar, text: string, options: MatchGbnfOptions = {}): boolean {
  let bnf = compiledGrammars.get(grammar);
  if (bnf === undefined) {
    bnf = compileBnf(grammar);
    compiledGrammars.set(grammar, bnf);
  }
  const codePoints = Array.from(text, (char) => char.codePointAt(0)!);
  return recognize(bnf, codePoints, options.maxSteps ?? DEFAULT_MATCH_MAX_STEPS);
}

/** Items are (dotted position, origin) pairs; a dotted position is a production plus how much of it is matched. */
function recognize(bnf: CompiledBnf, input: readonly number[], maxSteps: number): boolean {
  const numPositions = input.length + 1;
  const items: number[][] = Array.from({ length: numPositions }, () => []);
  const seen: Set<number>[] = Array.from({ length: numPositions }, () => new Set());
  /** Per position: items waiting on a nonterminal, by nonterminal. */
  const waiting: Map<number, number[]>[] = Array.from({ length: numPositions }, () => new Map());
  let numSteps = 0;

  const add = (position: number, dotted: number, origin: number) => {
    const key = dotted * numPositions + origin;
    const positionSeen = seen[position]!;
    if (positionSeen.has(key)) return;
    if (++numSteps > maxSteps) {
      throw new GrammarError("PAGODA_ERR_GRAMMAR_MATCH_BUDGET", `matching took more than ${maxSteps} steps`);
    }
    positionSeen.add(key);
    items[position]!.push(dotted, origin);
    const symbol = bnf.symbolAt[dotted]!;
    if (symbol >= 0) {
      const list = waiting[position]!.get(symbol);
      if (list === undefined) waiting[position]!.set(symbol, [dotted, origin]);
      else list.push(dotted, origin);
    }
  };

  for (const production of bnf.productionsOf[bnf.start]!) add(0, bnf.firstDotted[production]!, 0);
  for (let position = 0; position < numPositions; position++) {
    const list = items[position]!;
    for (let index = 0; index < list.length; index += 2) {
      const dotted = list[index]!;
      const origin = list[index + 1]!;
      const symbol = bnf.symbolAt[dotted]!;
      if (symbol >= 0) {
        for (const production of bnf.productionsOf[symbol]!) add(position, bnf.firstDotted[production]!, position);
        if (bnf.isNullable[symbol]) add(position, dotted + 1, origin);
      } else if (symbol === COMPLETE) {
        const lhs = bnf.lhsOf[dotted]!;
        const parents = waiting[origin]!.get(lhs);
        if (parents === undefined) continue;
        // `parents` may grow while we walk it when origin === position; Aycock–Horspool covers those items.
        for (let parent = 0; parent < parents.length; parent += 2)
          add(position, parents[parent]! + 1, parents[parent + 1]!);
      } else if (position < input.length && charSetContains(bnf.terminals[-symbol - 2]!, input[position]!)) {
        add(position + 1, dotted + 1, origin);
      }
    }
  }
  for (let index = 0; index < items[input.length]!.length; index += 2) {
    const dotted = items[input.length]![index]!;
    if (items[input.length]![index + 1] === 0 && bnf.symbolAt[dotted] === COMPLETE && bnf.lhsOf[dotted] === bnf.start) {
      return true;
    }
  }
  return false;
}

const COMPLETE = -1;
