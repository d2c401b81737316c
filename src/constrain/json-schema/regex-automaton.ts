/**
 * Intersections of regular languages, for constraints that each are regular but whose conjunction no single
 * regex states: a `format` and a `pattern`, a pattern and a length range. Each becomes a position automaton
 * (Glushkov's construction: one state per character set of the expression, counted repetitions unrolled), the
 * automata are multiplied, states that cannot reach acceptance are dropped, and what remains is written as
 * right-linear GBNF, one rule per state: `s ::= [class] t | ...`, which is never left-recursive.
 */
import { type CharSet, intersect, isEmptySet, jsonCharGbnf, rawCharGbnf, union } from "./char-set.ts";
import { alternatives, type GbnfBuilder, sequence } from "./gbnf-builder.ts";
import type { RegexNode } from "./regex-parser.ts";
import { SchemaError } from "./schema-error.ts";

export interface Automaton {
  readonly start: number;
  readonly accepting: ReadonlySet<number>;
  /** Outgoing transitions per state: a character set and the target state. */
  readonly transitions: ReadonlyMap<number, readonly (readonly [CharSet, number])[]>;
}

export interface AutomatonLimits {
  /** Most states any automaton may have; more throws `schema_too_large`. */
  readonly maxStates: number;
  readonly pointer: string;
  readonly keyword: string;
}

interface Glushkov {
  readonly isNullable: boolean;
  readonly first: readonly number[];
  readonly last: readonly number[];
}

/** The position automaton of `node`, which must hold no anchors. State 0 is the start. */
export function automatonOf(node: RegexNode, limits: AutomatonLimits): Automaton {
  const sets: CharSet[] = [[] as (readonly [number, number])[]];
  const follow = new Map<number, Set<number>>();
  const tooLarge = () =>
    new SchemaError(
      "schema_too_large",
      limits.keyword,
      limits.pointer,
      `more than ${limits.maxStates} automaton states`,
    );
  const link = (from: readonly number[], to: readonly number[]) => {
    for (const p of from) {
      let targets = follow.get(p);
      if (targets === undefined) {
        targets = new Set();
        follow.set(p, targets);
      }
      for (const q of to) targets.add(q);
    }
  };
  const build = (n: RegexNode): Glushkov => {
    switch (n.kind) {
      case "chars": {
        if (sets.length >= limits.maxStates) throw tooLarge();
        sets.push(n.set);
        const p = sets.length - 1;
        return { isNullable: false, first: [p], last: [p] };
      }
      case "start":
      case "end":
        throw new SchemaError("unsupported_keyword", limits.keyword, limits.pointer, "an anchor inside the pattern");
      case "seq":
        return n.items.reduce<Glushkov>((a, item) => concat(a, build(item)), { isNullable: true, first: [], last: [] });
      case "alt": {
        const parts = n.alts.map(build);
        return {
          isNullable: parts.some((part) => part.isNullable),
          first: parts.flatMap((part) => part.first),
          last: parts.flatMap((part) => part.last),
        };
      }
      case "repeat": {
        let out: Glushkov = { isNullable: true, first: [], last: [] };
        for (let i = 0; i < n.min; i++) out = concat(out, build(n.node));
        if (n.max === null) {
          const loop = build(n.node);
          link(loop.last, loop.first);
          return concat(out, { ...loop, isNullable: true });
        }
        // x{0,k} unrolled as (x(x(x)?)?)?, right to left.
        let optional: Glushkov = { isNullable: true, first: [], last: [] };
        for (let i = n.min; i < n.max; i++) optional = concat(build(n.node), optional, true);
        return concat(out, optional);
      }
    }
  };
  const concat = (a: Glushkov, b: Glushkov, isOptional = false): Glushkov => {
    link(a.last, b.first);
    return {
      isNullable: isOptional || (a.isNullable && b.isNullable),
      first: a.isNullable ? [...a.first, ...b.first] : a.first,
      last: b.isNullable ? [...a.last, ...b.last] : b.last,
    };
  };
  const root = build(node);
  const transitions = new Map<number, [CharSet, number][]>();
  const edges = (targets: Iterable<number>) =>
    [...new Set(targets)].map((q) => [sets[q] as CharSet, q] as [CharSet, number]);
  transitions.set(0, edges(root.first));
  for (const [p, targets] of follow) transitions.set(p, edges(targets));
  const accepting = new Set(root.last);
  if (root.isNullable) accepting.add(0);
  return { start: 0, accepting, transitions };
}

/** The product automaton: strings both accept. */
export function intersectAutomata(a: Automaton, b: Automaton, limits: AutomatonLimits): Automaton {
  const ids = new Map<string, number>();
  const pairs: [number, number][] = [];
  const idOf = (sa: number, sb: number) => {
    const key = `${sa},${sb}`;
    let id = ids.get(key);
    if (id === undefined) {
      if (pairs.length >= limits.maxStates) {
        throw new SchemaError(
          "schema_too_large",
          limits.keyword,
          limits.pointer,
          `more than ${limits.maxStates} automaton states`,
        );
      }
      id = pairs.length;
      ids.set(key, id);
      pairs.push([sa, sb]);
    }
    return id;
  };
  idOf(a.start, b.start);
  const transitions = new Map<number, [CharSet, number][]>();
  const accepting = new Set<number>();
  for (let id = 0; id < pairs.length; id++) {
    const [sa, sb] = pairs[id] as [number, number];
    if (a.accepting.has(sa) && b.accepting.has(sb)) accepting.add(id);
    const out: [CharSet, number][] = [];
    for (const [setA, ta] of a.transitions.get(sa) ?? []) {
      for (const [setB, tb] of b.transitions.get(sb) ?? []) {
        const set = intersect(setA, setB);
        if (!isEmptySet(set)) out.push([set, idOf(ta, tb)]);
      }
    }
    transitions.set(id, out);
  }
  return { start: 0, accepting, transitions };
}

/** Strings of length `min` to `max` (null: any length). */
export function lengthAutomaton(min: number, max: number | null, any: CharSet): Automaton {
  const last = max ?? min;
  const transitions = new Map<number, [CharSet, number][]>();
  for (let i = 0; i < last; i++) transitions.set(i, [[any, i + 1]]);
  if (max === null) transitions.set(last, [[any, last]]);
  const accepting = new Set<number>();
  for (let i = min; i <= last; i++) accepting.add(i);
  return { start: 0, accepting, transitions };
}

/**
 * Right-linear GBNF for the automaton's language, characters in their JSON spelling when `isJsonString`;
 * `null` when it accepts nothing.
 */
export function automatonGbnf(
  automaton: Automaton,
  builder: GbnfBuilder,
  isJsonString: boolean,
  pointer: string,
): string | null {
  const live = liveStates(automaton);
  if (!live.has(automaton.start)) return null;
  const names = new Map<number, string>();
  const nameOf = (state: number) => {
    let name = names.get(state);
    if (name === undefined) {
      name = builder.reserve("match", pointer);
      names.set(state, name);
    }
    return name;
  };
  const isEnd = (state: number) =>
    automaton.accepting.has(state) && (automaton.transitions.get(state) ?? []).every(([, t]) => !live.has(t));
  const bodies = new Map<number, string>();
  const pending = [automaton.start];
  const seen = new Set(pending);
  while (pending.length > 0) {
    const state = pending.pop() as number;
    // One alternative per target, its character sets merged.
    const byTarget = new Map<number, CharSet>();
    for (const [set, target] of automaton.transitions.get(state) ?? []) {
      if (live.has(target)) byTarget.set(target, union(byTarget.get(target) ?? [], set));
    }
    const alts: string[] = [];
    for (const [target, set] of byTarget) {
      const char = isJsonString ? jsonCharGbnf(set) : rawCharGbnf(set);
      if (isEnd(target)) alts.push(char);
      else {
        alts.push(sequence([char, nameOf(target)]));
        if (!seen.has(target)) {
          seen.add(target);
          pending.push(target);
        }
      }
    }
    const body = alternatives(alts);
    bodies.set(state, automaton.accepting.has(state) && alts.length > 0 ? `(${body})?` : body);
  }
  for (const [state, name] of names) builder.define(name, bodies.get(state) ?? "", pointer);
  return isEnd(automaton.start) ? "" : (bodies.get(automaton.start) ?? "");
}

/** States from which an accepting state is reachable. */
function liveStates(automaton: Automaton): Set<number> {
  const reverse = new Map<number, number[]>();
  for (const [from, edges] of automaton.transitions) {
    for (const [, to] of edges) {
      let sources = reverse.get(to);
      if (sources === undefined) {
        sources = [];
        reverse.set(to, sources);
      }
      sources.push(from);
    }
  }
  const live = new Set(automaton.accepting);
  const pending = [...live];
  while (pending.length > 0) {
    for (const from of reverse.get(pending.pop() as number) ?? []) {
      if (!live.has(from)) {
        live.add(from);
        pending.push(from);
      }
    }
  }
  return live;
}
