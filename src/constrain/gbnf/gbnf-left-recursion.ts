/**
 * Left recursion: a rule that can reach itself at the start of its own body, through references that can be
 * preceded only by nullable elements. llama.cpp refuses these (and would loop on the ones its weaker nullability
 * test misses). Also bounds the work of llama.cpp's own check, which re-walks shared leftmost rules every time
 * it meets them, so a chain like `a ::= b | b`, `b ::= c | c`, … costs it 2^n steps.
 */
import type { GbnfElement, GbnfGrammar, GbnfSequence } from "./gbnf-ast.ts";
import type { ResolvedGbnfLimits } from "./gbnf-limits.ts";
import type { GbnfNullability } from "./gbnf-nullable.ts";
import { GrammarError, locateOffset } from "./grammar-error.ts";
import type { GbnfSourceMap } from "./validate-gbnf.ts";

interface LeftEdge {
  readonly target: string;
  readonly offset: number | undefined;
}

export function checkLeftRecursion(
  grammar: GbnfGrammar,
  nullability: GbnfNullability,
  sourceMap: GbnfSourceMap,
  limits: ResolvedGbnfLimits,
): void {
  const edges = new Map<string, LeftEdge[]>();
  for (const [name, alternatives] of grammar.rules) {
    const out: LeftEdge[] = [];
    for (const sequence of alternatives) collectLeftSequence(sequence, nullability, sourceMap, out);
    edges.set(name, out);
  }

  // Iterative depth-first search: a reference back to a rule still on the stack closes a cycle.
  const cap = limits.maxLeftRecursionCheckSteps + 1;
  const state = new Map<string, "open" | "done">();
  /** llama.cpp's detect_left_recursion calls for a rule, capped at `cap`. */
  const visits = new Map<string, number>();
  const leftCost = (sequence: GbnfSequence) => leftmostCost(sequence, nullability, visits, cap);
  for (const rootName of grammar.rules.keys()) {
    if (state.has(rootName)) continue;
    const stack: { name: string; next: number }[] = [{ name: rootName, next: 0 }];
    state.set(rootName, "open");
    while (stack.length > 0) {
      const frame = stack[stack.length - 1]!;
      const edge = edges.get(frame.name)![frame.next++];
      if (edge === undefined) {
        let cost = 1;
        for (const sequence of grammar.rules.get(frame.name)!) cost = Math.min(cap, cost + leftCost(sequence));
        visits.set(frame.name, cost);
        state.set(frame.name, "done");
        stack.pop();
      } else if (state.get(edge.target) === "open") {
        const names = stack.slice(stack.findIndex((open) => open.name === edge.target)).map((open) => open.name);
        const cycle = [...names, edge.target].join(" -> ");
        throw new GrammarError(
          "PAGODA_ERR_GRAMMAR_LEFT_RECURSION",
          `left recursion: rule "${edge.target}" can start with itself (${cycle})`,
          { location: edge.offset === undefined ? null : locateOffset(sourceMap.text, edge.offset) },
        );
      } else if (!state.has(edge.target)) {
        state.set(edge.target, "open");
        stack.push({ name: edge.target, next: 0 });
      }
    }
  }

  const steps = nativeCheckSteps(grammar, edges, visits, sourceMap, leftCost, cap);
  if (steps > limits.maxLeftRecursionCheckSteps) {
    throw new GrammarError(
      "PAGODA_ERR_GRAMMAR_LIMIT",
      `llama.cpp's left-recursion check would take more than maxLeftRecursionCheckSteps ` +
        `(${limits.maxLeftRecursionCheckSteps}) steps on this grammar`,
      { limit: "maxLeftRecursionCheckSteps" },
    );
  }
}

function collectLeftSequence(
  sequence: GbnfSequence,
  nullability: GbnfNullability,
  sourceMap: GbnfSourceMap,
  out: LeftEdge[],
): void {
  for (const element of sequence) {
    collectLeftElement(element, nullability, sourceMap, out);
    if (!nullability.isNullable(element)) return;
  }
}

function collectLeftElement(
  element: GbnfElement,
  nullability: GbnfNullability,
  sourceMap: GbnfSourceMap,
  out: LeftEdge[],
): void {
  if (element.kind === "rule-ref") out.push({ target: element.name, offset: sourceMap.elementOffsets.get(element) });
  else if (element.kind === "group") {
    for (const sequence of element.alternatives) collectLeftSequence(sequence, nullability, sourceMap, out);
  } else if (element.kind === "repetition" && element.max !== 0) {
    collectLeftElement(element.element, nullability, sourceMap, out);
  }
}

/**
 * An upper bound on the calls llama.cpp makes below a sequence's leftmost elements. Groups and repetitions are
 * rules of their own there, so each costs a call; `x{0}` vanishes. We use true nullability where llama.cpp uses
 * "has an empty alternative", which only ever walks further, so the bound holds.
 */
function leftmostCost(
  sequence: GbnfSequence,
  nullability: GbnfNullability,
  visits: ReadonlyMap<string, number>,
  cap: number,
): number {
  let cost = 0;
  for (const element of sequence) {
    cost = Math.min(cap, cost + elementCost(element, nullability, visits, cap));
    if (!nullability.isNullable(element)) break;
  }
  return cost;
}

function elementCost(
  element: GbnfElement,
  nullability: GbnfNullability,
  visits: ReadonlyMap<string, number>,
  cap: number,
): number {
  switch (element.kind) {
    case "rule-ref":
      return visits.get(element.name) ?? cap;
    case "group": {
      let cost = 1;
      for (const sequence of element.alternatives) {
        cost = Math.min(cap, cost + leftmostCost(sequence, nullability, visits, cap));
      }
      return cost;
    }
    case "repetition": {
      if (element.max === 0) return 0;
      const hasOptionalRule = element.max === null || element.max > element.min;
      const ownRule = element.min === 0 && hasOptionalRule ? 1 : 0;
      return Math.min(cap, ownRule + elementCost(element.element, nullability, visits, cap));
    }
    default:
      return 0;
  }
}

/**
 * llama.cpp runs its check from every rule in symbol-id order, skipping rules an earlier run finished. We skip
 * named rules reached leftmost from an earlier one, and charge every group and repetition a run of its own.
 */
function nativeCheckSteps(
  grammar: GbnfGrammar,
  edges: ReadonlyMap<string, readonly LeftEdge[]>,
  visits: ReadonlyMap<string, number>,
  sourceMap: GbnfSourceMap,
  leftCost: (sequence: GbnfSequence) => number,
  cap: number,
): number {
  let steps = 0;
  const isFinished = new Set<string>();
  for (const name of sourceMap.symbolOrder) {
    if (isFinished.has(name) || !grammar.rules.has(name)) continue;
    steps = Math.min(cap, steps + (visits.get(name) ?? cap));
    const pending = [name];
    isFinished.add(name);
    while (pending.length > 0) {
      for (const edge of edges.get(pending.pop()!) ?? []) {
        if (isFinished.has(edge.target)) continue;
        isFinished.add(edge.target);
        pending.push(edge.target);
      }
    }
  }
  const chargeNested = (sequence: GbnfSequence): void => {
    for (const element of sequence) {
      let inner: GbnfElement = element;
      while (inner.kind === "repetition") {
        if (inner.max !== 0) steps = Math.min(cap, steps + leftCost([inner]));
        inner = inner.element;
      }
      if (inner.kind === "group") {
        steps = Math.min(cap, steps + leftCost([inner]));
        for (const alternative of inner.alternatives) chargeNested(alternative);
      }
    }
  };
  for (const alternatives of grammar.rules.values()) for (const sequence of alternatives) chargeNested(sequence);
  return steps;
}
