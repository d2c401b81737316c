/**
 * The parsed form of a GBNF grammar. It mirrors what llama.cpp builds, minus its synthesized rules: groups and
 * repetitions stay inline, and empty string literals are dropped because llama.cpp emits nothing for them.
 */

/** An inclusive range of code points; a single character has `start === end`. */
export interface GbnfCharRange {
  readonly start: number;
  readonly end: number;
}

export type GbnfElement =
  /** A non-empty string, matched code point by code point. */
  | { readonly kind: "literal"; readonly value: string }
  /** `[a-z_]` or, negated, `[^"\\]`: any one code point inside (or, negated, outside) the ranges. */
  | { readonly kind: "char-class"; readonly isNegated: boolean; readonly ranges: readonly GbnfCharRange[] }
  /** `.`: any one code point. */
  | { readonly kind: "any-char" }
  | { readonly kind: "rule-ref"; readonly name: string }
  /** `( … | … )` */
  | { readonly kind: "group"; readonly alternatives: GbnfAlternatives }
  /** `*` is {0, null}, `+` is {1, null}, `?` is {0, 1}, `{m}` is {m, m}; `max: null` means unbounded. */
  | {
      readonly kind: "repetition";
      readonly element: GbnfElement;
      readonly min: number;
      readonly max: number | null;
    };

/** Elements matched one after another; an empty sequence matches the empty string. */
export type GbnfSequence = readonly GbnfElement[];

/** Sequences any one of which may match; never empty. */
export type GbnfAlternatives = readonly GbnfSequence[];

export interface GbnfGrammar {
  /** The start rule's name; it is not part of the GBNF text, so pass it again when parsing formatted text. */
  readonly rootName: string;
  /** Rules by name, in definition order. */
  readonly rules: ReadonlyMap<string, GbnfAlternatives>;
}

export const DEFAULT_ROOT_RULE_NAME = "root";
