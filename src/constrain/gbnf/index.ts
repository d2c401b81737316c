/** GBNF grammars in pure TypeScript: parse and vet user grammars before llama.cpp sees them, format, sample, match. */

export { formatGbnf } from "./format-gbnf.ts";
export type {
  GbnfAlternatives,
  GbnfCharRange,
  GbnfElement,
  GbnfGrammar,
  GbnfSequence,
} from "./gbnf-ast.ts";
export { DEFAULT_ROOT_RULE_NAME } from "./gbnf-ast.ts";
export {
  DEFAULT_GBNF_LIMITS,
  type GbnfLimitName,
  type GbnfLimits,
  NATIVE_REPETITION_THRESHOLD,
  type ResolvedGbnfLimits,
  resolveGbnfLimits,
} from "./gbnf-limits.ts";
export { GrammarError, type GrammarErrorCode, type GrammarLocation } from "./grammar-error.ts";
export { type MatchGbnfOptions, matchesGbnf } from "./match-gbnf.ts";
export { type ParseGbnfOptions, parseGbnf } from "./parse-gbnf.ts";
export { type SampleGbnfOptions, sampleGbnf } from "./sample-gbnf.ts";
