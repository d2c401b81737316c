/**
 * One GBNF text assembled from several grammars (one per tool's parameters). Each grammar's rules go under a prefix
 * of its own, so its `root`, `ws`, `object`, … never collide with another's; and a rule identical to one already
 * added (same body once its references are renamed) is not added again but shared, so a hundred tools carry one
 * copy of `ws`, `char`, `string`, `integer`. Works on the parsed grammar, never on text, so a name inside a string
 * literal or a character class is never touched.
 */
import { formatGbnf, type GbnfAlternatives, type GbnfElement, parseGbnf } from "../constrain/gbnf/index.ts";

const RULE_NAME_PREFIX = /^[a-zA-Z0-9-]+$/;

interface Visit {
  readonly name: string;
  readonly refs: readonly string[];
  next: number;
}

export class GbnfRuleSet {
  private text = "";
  private numRulesAdded = 0;
  /** Shared (non-recursive) rules by their formatted body. */
  private readonly nameOfBody = new Map<string, string>();

  /** The rules added so far, one per line. */
  get rules(): string {
    return this.text;
  }

  get numRules(): number {
    return this.numRulesAdded;
  }

  /**
   * Adds the rules of `grammar` (GBNF with a `root` rule) under `prefix` and returns the name its root has here.
   * Throws `GrammarError` if it does not parse; the prefix must be unique to this grammar.
   */
  add(grammar: string, prefix: string): string {
    if (!RULE_NAME_PREFIX.test(prefix)) throw new RangeError(`${JSON.stringify(prefix)} is not a GBNF name prefix`);
    const parsed = parseGbnf(grammar);
    const names = new Map<string, string>();
    const unshared = new Set<string>();
    const defineLater: string[] = [];
    const state = new Map<string, "open" | "done">();
    const stack: Visit[] = [];
    const open = (name: string) => {
      state.set(name, "open");
      stack.push({ name, refs: [...referencedRules(parsed.rules.get(name) ?? [])], next: 0 });
    };
    // Depth-first, children before parents, so a shared rule's references already have their final names. A rule
    // on a cycle, or using one, is never shared: its name is fixed (prefix + name) before its body is known.
    for (const start of parsed.rules.keys()) {
      if (state.has(start)) continue;
      open(start);
      while (stack.length > 0) {
        const visit = stack[stack.length - 1]!;
        if (visit.next < visit.refs.length) {
          const ref = visit.refs[visit.next++]!;
          const refState = state.get(ref);
          if (refState === undefined) open(ref);
          else if (refState === "open") {
            for (let index = stack.length - 1; index >= 0; index--) {
              unshared.add(stack[index]!.name);
              if (stack[index]!.name === ref) break;
            }
          }
          continue;
        }
        stack.pop();
        state.set(visit.name, "done");
        if (visit.refs.some((ref) => unshared.has(ref))) unshared.add(visit.name);
        if (unshared.has(visit.name)) {
          names.set(visit.name, prefix + visit.name);
          defineLater.push(visit.name);
          continue;
        }
        const body = formatBody(parsed.rules.get(visit.name)!, names);
        const shared = this.nameOfBody.get(body);
        if (shared !== undefined) names.set(visit.name, shared);
        else {
          names.set(visit.name, prefix + visit.name);
          this.nameOfBody.set(body, prefix + visit.name);
          this.define(prefix + visit.name, body);
        }
      }
    }
    for (const name of defineLater) this.define(prefix + name, formatBody(parsed.rules.get(name)!, names));
    return names.get(parsed.rootName)!;
  }

  private define(name: string, body: string): void {
    this.text += `${name} ::= ${body}\n`;
    this.numRulesAdded++;
  }
}

function formatBody(alternatives: GbnfAlternatives, names: ReadonlyMap<string, string>): string {
  const renamed = alternatives.map((sequence) => sequence.map((element) => rename(element, names)));
  const line = formatGbnf({ rootName: "x", rules: new Map([["x", renamed]]) });
  return line.slice("x ::= ".length, -1);
}

/** Recursion is bounded: `parseGbnf` refuses nesting deeper than its `maxNestingDepth`. */
function rename(element: GbnfElement, names: ReadonlyMap<string, string>): GbnfElement {
  switch (element.kind) {
    case "rule-ref":
      return { kind: "rule-ref", name: names.get(element.name) ?? element.name };
    case "group":
      return {
        kind: "group",
        alternatives: element.alternatives.map((sequence) => sequence.map((inner) => rename(inner, names))),
      };
    case "repetition":
      return { ...element, element: rename(element.element, names) };
    default:
      return element;
  }
}

function referencedRules(alternatives: GbnfAlternatives): Set<string> {
  const refs = new Set<string>();
  const pending: GbnfElement[] = alternatives.flat();
  while (pending.length > 0) {
    const element = pending.pop()!;
    if (element.kind === "rule-ref") refs.add(element.name);
    else if (element.kind === "group") pending.push(...element.alternatives.flat());
    else if (element.kind === "repetition") pending.push(element.element);
  }
  return refs;
}
