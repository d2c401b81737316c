/**
 * Which rules and elements can match the empty string. Solved as Horn clauses with counters (a sequence is
 * nullable once all its elements are, a rule or group once any alternative is), so it is linear in the grammar
 * even for long chains of rules, where iterating to a fixpoint would be quadratic.
 */
import type { GbnfElement, GbnfGrammar, GbnfSequence } from "./gbnf-ast.ts";

const ALWAYS = -1;
const NEVER = -2;

export interface GbnfNullability {
  isNullable(element: GbnfElement): boolean;
  isRuleNullable(name: string): boolean;
}

export function computeNullability(grammar: GbnfGrammar): GbnfNullability {
  /** Per node: true once known nullable. */
  const isTrue: boolean[] = [];
  /** Per node: children still unproven for a sequence (AND) node; -1 for a rule or group (OR) node. */
  const numPending: number[] = [];
  const parents: number[][] = [];
  const proven: number[] = [];
  const ruleNodes = new Map<string, number>();
  /** Per element: ALWAYS, NEVER or the node deciding it. */
  const verdicts = new Map<GbnfElement, number>();

  const addNode = (isAnd: boolean): number => {
    isTrue.push(false);
    numPending.push(isAnd ? 0 : -1);
    parents.push([]);
    return isTrue.length - 1;
  };
  const prove = (node: number) => {
    if (isTrue[node]) return;
    isTrue[node] = true;
    proven.push(node);
  };
  for (const name of grammar.rules.keys()) ruleNodes.set(name, addNode(false));

  const visitSequence = (sequence: GbnfSequence, parent: number) => {
    const node = addNode(true);
    let isDead = false;
    for (const element of sequence) {
      const verdict = visitElement(element);
      if (verdict === NEVER) isDead = true;
      else if (verdict !== ALWAYS) {
        parents[verdict]!.push(node);
        numPending[node]!++;
      }
    }
    if (isDead) numPending[node] = Number.POSITIVE_INFINITY;
    else parents[node]!.push(parent);
    if (numPending[node] === 0) prove(parent);
  };
  const visitElement = (element: GbnfElement): number => {
    let verdict: number;
    switch (element.kind) {
      case "literal":
        verdict = element.value === "" ? ALWAYS : NEVER;
        break;
      case "char-class":
      case "any-char":
        verdict = NEVER;
        break;
      case "rule-ref":
        verdict = ruleNodes.get(element.name) ?? NEVER;
        break;
      case "group": {
        verdict = addNode(false);
        for (const alternative of element.alternatives) visitSequence(alternative, verdict);
        break;
      }
      case "repetition": {
        const inner = visitElement(element.element);
        verdict = element.min === 0 ? ALWAYS : inner;
        break;
      }
    }
    verdicts.set(element, verdict);
    return verdict;
  };
  for (const [name, alternatives] of grammar.rules) {
    for (const alternative of alternatives) visitSequence(alternative, ruleNodes.get(name)!);
  }

  while (proven.length > 0) {
    const node = proven.pop()!;
    for (const parent of parents[node]!) {
      if (numPending[parent] === -1) prove(parent);
      else if (--numPending[parent]! === 0) prove(parent);
    }
  }

  return {
    isNullable(element) {
      const verdict = verdicts.get(element);
      if (verdict === undefined) throw new Error("element is not part of this grammar");
      return verdict === ALWAYS || (verdict >= 0 && isTrue[verdict] === true);
    },
    isRuleNullable(name) {
      const node = ruleNodes.get(name);
      return node !== undefined && isTrue[node] === true;
    },
  };
}
