/**
 * The checks that need the whole grammar: every referenced rule defined, the root present, no repetition of an
 * expression that can match the empty string (llama.cpp can loop on those), no left recursion, and a bound on
 * the work llama.cpp's own left-recursion check would do.
 */
import type { GbnfElement, GbnfGrammar, GbnfSequence } from "./gbnf-ast.ts";
import { checkLeftRecursion } from "./gbnf-left-recursion.ts";
import type { ResolvedGbnfLimits } from "./gbnf-limits.ts";
import { computeNullability, type GbnfNullability } from "./gbnf-nullable.ts";
import { GrammarError, locateOffset } from "./grammar-error.ts";

/** Where things are in the text, kept beside the AST so that the AST compares equal across formatting. */
export interface GbnfSourceMap {
  readonly text: string;
  /** Rule names in the order llama.cpp assigns them symbol ids (first definition or reference). */
  readonly symbolOrder: string[];
  readonly ruleOffsets: Map<string, number>;
  /** UTF-16 offsets of rule references, groups and repetition operators. */
  readonly elementOffsets: WeakMap<GbnfElement, number>;
  /** Every rule reference in text order. */
  readonly references: { readonly name: string; readonly offset: number }[];
}

export function validateGbnf(grammar: GbnfGrammar, sourceMap: GbnfSourceMap, limits: ResolvedGbnfLimits): void {
  const locate = (offset: number | undefined) => (offset === undefined ? null : locateOffset(sourceMap.text, offset));
  for (const reference of sourceMap.references) {
    if (!grammar.rules.has(reference.name)) {
      throw new GrammarError("PAGODA_ERR_GRAMMAR_UNDEFINED_RULE", `undefined rule "${reference.name}"`, {
        location: locate(reference.offset),
      });
    }
  }
  if (!grammar.rules.has(grammar.rootName)) {
    throw new GrammarError("PAGODA_ERR_GRAMMAR_MISSING_ROOT", `grammar has no "${grammar.rootName}" rule`);
  }
  const nullability = computeNullability(grammar);
  for (const alternatives of grammar.rules.values()) {
    for (const sequence of alternatives) checkRepetitions(sequence, nullability, sourceMap, locate);
  }
  checkLeftRecursion(grammar, nullability, sourceMap, limits);
}

function checkRepetitions(
  sequence: GbnfSequence,
  nullability: GbnfNullability,
  sourceMap: GbnfSourceMap,
  locate: (offset: number | undefined) => ReturnType<typeof locateOffset> | null,
): void {
  for (const element of sequence) {
    if (element.kind === "group") {
      for (const alternative of element.alternatives) checkRepetitions(alternative, nullability, sourceMap, locate);
    } else if (element.kind === "repetition") {
      if ((element.max === null || element.max > 1) && nullability.isNullable(element.element)) {
        throw new GrammarError(
          "PAGODA_ERR_GRAMMAR_NULLABLE_REPETITION",
          "repetition of an expression that can match the empty string",
          { location: locate(sourceMap.elementOffsets.get(element)) },
        );
      }
      checkRepetitions([element.element], nullability, sourceMap, locate);
    }
  }
}
