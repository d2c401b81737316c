/**
 * Bounds on what one schema may cost to compile and to enforce. Every limit is checked before the work it bounds,
 * so a hostile schema is refused in bounded time and memory; exceeding one throws `SchemaError` with code
 * `schema_too_large` naming the limit.
 */

export interface SchemaLimits {
  /** Values (objects, arrays and scalars) in the schema document. Defaults to 50,000. */
  readonly maxSchemaNodes: number;
  /** Nesting of the schema document as JSON. Defaults to 128. */
  readonly maxDocumentDepth: number;
  /** Subschemas entered at once while compiling, counting each `$ref` followed inline. Defaults to 96. */
  readonly maxCompileDepth: number;
  /** Steps of compiling work: subschemas visited, merges and exclusivity checks. Defaults to 200,000. */
  readonly maxWork: number;
  /** Rules in the emitted grammar. Defaults to 4,000, within pagoda's GBNF parser's limit of 4,096. */
  readonly maxRules: number;
  /** Characters of emitted GBNF. Defaults to 250,000, within pagoda's GBNF parser's limit of 256 KiB. */
  readonly maxGrammarChars: number;
  /**
   * Largest `{m,n}` bound emitted. llama.cpp expands `x{m,n}` into `n` rules and silently turns any bound above
   * 2,000 into "unbounded", so larger schema bounds are lowered to this one (a stricter grammar) and a larger
   * lower bound is refused. Defaults to 1,000.
   */
  readonly maxRepetition: number;
  /** Sum of all `{m,n}` bounds, the rules llama.cpp creates when it expands them. Defaults to 100,000. */
  readonly maxExpandedRepetitions: number;
  /** Properties one object may declare (each optional one multiplies llama.cpp's work per token). Defaults to 1,000. */
  readonly maxObjectProperties: number;
  /** States of the automaton that intersects a format, patterns and length bounds. Defaults to 2,000. */
  readonly maxAutomatonStates: number;
  /** Characters in one `pattern`. Defaults to 2,000. */
  readonly maxPatternChars: number;
}

export const DEFAULT_SCHEMA_LIMITS: SchemaLimits = {
  maxSchemaNodes: 50_000,
  maxDocumentDepth: 128,
  maxCompileDepth: 96,
  maxWork: 200_000,
  maxRules: 4_000,
  maxGrammarChars: 250_000,
  maxRepetition: 1_000,
  maxExpandedRepetitions: 100_000,
  maxObjectProperties: 1_000,
  maxAutomatonStates: 2_000,
  maxPatternChars: 2_000,
};

/** llama.cpp treats a larger `{m,n}` upper bound as unbounded; never emit one. */
export const LLAMA_MAX_REPETITION = 1_999;

export function resolveLimits(overrides: Partial<SchemaLimits> | undefined): SchemaLimits {
  const limits = { ...DEFAULT_SCHEMA_LIMITS, ...overrides };
  return { ...limits, maxRepetition: Math.max(1, Math.min(limits.maxRepetition, LLAMA_MAX_REPETITION)) };
}
