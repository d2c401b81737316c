/**
 * Bounds on a user-supplied grammar, so that neither our parser nor llama.cpp's (which expands repetitions into
 * copies of rules and re-walks shared rule prefixes when it checks for left recursion) can be made to use
 * unbounded time or memory.
 */

/**
 * llama.cpp's MAX_REPETITION_THRESHOLD: it refuses `{m,…}` with m above it, silently drops an upper bound above
 * it (so `x{0,5000}` would become `x*`), and refuses a repetition whose count times the rules generated inside the
 * repeated expression reaches it.
 */
export const NATIVE_REPETITION_THRESHOLD = 2000;

export const DEFAULT_MAX_TEXT_LENGTH = 256 * 1024;
export const DEFAULT_MAX_RULES = 4096;
export const DEFAULT_MAX_NESTING_DEPTH = 64;
export const DEFAULT_MAX_REPETITION_COUNT = 1000;
export const DEFAULT_MAX_EXPANDED_ELEMENTS = 1024 * 1024;
export const DEFAULT_MAX_LEFT_RECURSION_CHECK_STEPS = 1_000_000;

export interface GbnfLimits {
  /** Longest grammar text, in UTF-16 code units. Defaults to 262144 (256 KiB of ASCII). */
  readonly maxTextLength?: number;
  /** Most named rules (definitions). Defaults to 4096. */
  readonly maxRules?: number;
  /**
   * Deepest nesting of parentheses and repetition operators (`((x)*)?` is 4 deep). Bounds the recursion of every
   * walk over the grammar, ours and llama.cpp's. Defaults to 64.
   */
  readonly maxNestingDepth?: number;
  /** Largest `m` or `n` in `{m}`, `{m,}`, `{m,n}`. Defaults to 1000; clamped to 2000, llama.cpp's own threshold. */
  readonly maxRepetitionCount?: number;
  /**
   * Most elements (characters, ranges, rule references, alternative separators) in the rules llama.cpp builds,
   * after it copies repeated expressions (`"ab"{3,5}` costs 2×3 inline and 2 rules of 2+3). Each is 8 bytes
   * natively. Defaults to 1048576.
   */
  readonly maxExpandedElements?: number;
  /**
   * Most rule visits llama.cpp's left-recursion check may make (an upper bound we compute). That check does not
   * remember finished rules, so `a ::= b | b`, `b ::= c | c`, … doubles its work per rule. Defaults to 1000000.
   */
  readonly maxLeftRecursionCheckSteps?: number;
}

export type GbnfLimitName = keyof GbnfLimits | "nativeRepetitionThreshold";

export type ResolvedGbnfLimits = { readonly [K in keyof GbnfLimits]-?: number };

export const DEFAULT_GBNF_LIMITS: ResolvedGbnfLimits = {
  maxTextLength: DEFAULT_MAX_TEXT_LENGTH,
  maxRules: DEFAULT_MAX_RULES,
  maxNestingDepth: DEFAULT_MAX_NESTING_DEPTH,
  maxRepetitionCount: DEFAULT_MAX_REPETITION_COUNT,
  maxExpandedElements: DEFAULT_MAX_EXPANDED_ELEMENTS,
  maxLeftRecursionCheckSteps: DEFAULT_MAX_LEFT_RECURSION_CHECK_STEPS,
};

/** Fills in defaults; throws `RangeError` for a limit that is not a positive integer (a caller bug, not input). */
export function resolveGbnfLimits(limits: GbnfLimits = {}): ResolvedGbnfLimits {
  const resolved: Record<keyof GbnfLimits, number> = { ...DEFAULT_GBNF_LIMITS };
  for (const key of Object.keys(DEFAULT_GBNF_LIMITS) as (keyof GbnfLimits)[]) {
    const value = limits[key];
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`GBNF limit ${key} must be a positive integer, got ${String(value)}`);
    }
    resolved[key] = value;
  }
  resolved.maxRepetitionCount = Math.min(resolved.maxRepetitionCount, NATIVE_REPETITION_THRESHOLD);
  return resolved;
}
