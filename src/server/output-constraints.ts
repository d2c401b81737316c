/**
 * What a request adds to sampling beyond the plain settings: the grammar its output must follow and its logit
 * biases, checked and compiled before the request is queued, so every refusal is a 400 that names the field.
 */

import { type CompiledConstraint, type ConstraintCompiler, ConstraintError } from "../constrain/constraint-compiler.ts";
import type { ConstraintKind } from "../constrain/constraint-spec.ts";
import type { GrammarConstraint, GrammarTrigger, ServerEngine, TokenId } from "../engine/engine.ts";
import { type ConstraintFields, constraintOf } from "./constraint-fields.ts";
import { PagodaError } from "./errors.ts";

/** OpenAI's bounds for a logit bias; ±100 bans or forces a token in practice. */
const MAX_LOGIT_BIAS = 100;

export interface OutputConstraints {
  readonly kind: ConstraintKind | null;
  readonly grammar: GrammarConstraint | null;
  /** A grammar that starts at a trigger in the output (tool calls under `tool_choice: "auto"`). */
  readonly grammarTriggers: readonly GrammarTrigger[] | null;
  /** How long compiling the grammar took; null without a grammar or when it came from the cache. */
  readonly compileMs: number | null;
  readonly logitBias: ReadonlyMap<TokenId, number> | null;
}

export const NO_OUTPUT_CONSTRAINTS: OutputConstraints = {
  kind: null,
  grammar: null,
  grammarTriggers: null,
  compileMs: null,
  logitBias: null,
};

export interface ConstraintBody extends ConstraintFields {
  logit_bias?: Record<string, number> | null;
  stop?: string | string[] | null;
  ignore_eos?: boolean | null;
}

export function resolveOutputConstraints(
  body: ConstraintBody,
  engine: ServerEngine,
  compiler: ConstraintCompiler,
): OutputConstraints {
  const logitBias = logitBiasOf(body.logit_bias ?? null, engine.info.vocabSize);
  const spec = constraintOf(body);
  if (spec === null) return { ...NO_OUTPUT_CONSTRAINTS, logitBias };
  rejectConflicts(body, spec.param);
  let compiled: CompiledConstraint;
  try {
    compiled = compiler.compile(spec);
  } catch (error) {
    if (error instanceof ConstraintError)
      throw new PagodaError("PAGODA_ERR_INVALID_CONSTRAINT", error.message, { param: error.param, cause: error });
    throw error;
  }
  const grammar = { gbnf: compiled.gbnf };
  try {
    engine.prepareGrammar(grammar);
  } catch (error) {
    throw new PagodaError("PAGODA_ERR_INVALID_CONSTRAINT", `${spec.param}: the engine could not load the grammar`, {
      param: spec.param,
      cause: error,
    });
  }
  return {
    kind: spec.kind,
    grammar,
    grammarTriggers: null,
    compileMs: compiled.isCached ? null : compiled.compileMs,
    logitBias,
  };
}

/**
 * A stop string could end the output inside the grammar, and ignore_eos would run past its end: the output ends
 * exactly where the grammar is complete.
 */
export function rejectConflicts(body: ConstraintBody, param: string): void {
  const stop = body.stop;
  if (stop != null && (typeof stop === "string" ? stop.length > 0 : stop.some((item) => item.length > 0))) {
    throw new PagodaError(
      "PAGODA_ERR_INVALID_REQUEST",
      `stop cannot be combined with ${param}: a constrained output ends where its grammar is complete`,
      { param: "stop" },
    );
  }
  if (body.ignore_eos === true) {
    throw new PagodaError(
      "PAGODA_ERR_INVALID_REQUEST",
      `ignore_eos cannot be combined with ${param}: a constrained output ends where its grammar is complete`,
      { param: "ignore_eos" },
    );
  }
}

/** OpenAI's map of token id (as a string) to a bias in [−100, 100]. */
function logitBiasOf(field: Record<string, number> | null, vocabSize: number): ReadonlyMap<TokenId, number> | null {
  if (field === null) return null;
  const bias = new Map<TokenId, number>();
  for (const [key, value] of Object.entries(field)) {
    const token = /^\d{1,10}$/.test(key) ? Number(key) : Number.NaN;
    if (!(Number.isInteger(token) && token < vocabSize)) {
      throw new PagodaError(
        "PAGODA_ERR_INVALID_REQUEST",
        `logit_bias keys must be token ids below the vocabulary size ${vocabSize}; got "${key}"`,
        { param: "logit_bias" },
      );
    }
    if (!(Number.isFinite(value) && Math.abs(value) <= MAX_LOGIT_BIAS)) {
      throw new PagodaError(
        "PAGODA_ERR_INVALID_REQUEST",
        `logit_bias values must be between -${MAX_LOGIT_BIAS} and ${MAX_LOGIT_BIAS}; token ${key} has ${value}`,
        { param: "logit_bias" },
      );
    }
    if (value !== 0) bias.set(token as TokenId, value);
  }
  return bias.size === 0 ? null : bias;
}
