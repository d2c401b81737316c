/**
 * Turns a request's constraint into the GBNF the engine enforces, and keeps what it compiled by the constraint's
 * hash: agents send the same schema with every call. Refusals are kept too, so a hostile schema sent again costs a
 * lookup, not another compile. Every grammar, pagoda's own output included, goes through pagoda's GBNF parser
 * before native code sees it: llama.cpp's parser is not hardened against what a request can write.
 */
import { createHash } from "node:crypto";
import type { ConstraintKind, ConstraintSpec } from "./constraint-spec.ts";
import { formatGbnf, GrammarError, parseGbnf } from "./gbnf/index.ts";
import { gbnfLiteral } from "./json-schema/gbnf-builder.ts";
import {
  checkSchemaDocument,
  JSON_OBJECT_GBNF,
  jsonSchemaToGbnf,
  regexToGbnf,
  SchemaError,
} from "./json-schema/index.ts";

/** Distinct constraints kept compiled. */
export const DEFAULT_CONSTRAINT_CACHE_SIZE = 256;

/** A constraint pagoda cannot enforce exactly, or one past its limits; `param` is the request field. */
export class ConstraintError extends Error {
  override readonly name = "ConstraintError";
  readonly code: string;
  readonly param: string;

  constructor(message: string, options: { code: string; param: string; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.code = options.code;
    this.param = options.param;
  }
}

export interface CompiledConstraint {
  readonly kind: ConstraintKind;
  readonly gbnf: string;
  /** How long compiling took when it was not cached; 0 for a cache hit. */
  readonly compileMs: number;
  readonly isCached: boolean;
}

type Outcome = { readonly gbnf: string } | { readonly failure: ConstraintError };

export class ConstraintCompiler {
  private readonly capacity: number;
  /** By hash, least recently used first. */
  private readonly outcomes = new Map<string, Outcome>();

  constructor(capacity = DEFAULT_CONSTRAINT_CACHE_SIZE) {
    this.capacity = capacity;
  }

  /** The constraint's grammar; throws `ConstraintError` naming what cannot be enforced. */
  compile(spec: ConstraintSpec): CompiledConstraint {
    // Hashing serializes the schema recursively: a document too deep or too large is refused, without recursion, first.
    if (spec.kind === "json_schema") {
      try {
        checkSchemaDocument(spec.schema);
      } catch (error) {
        throw toConstraintError(error, spec);
      }
    }
    const key = hashOf(spec);
    const cached = this.outcomes.get(key);
    if (cached !== undefined) {
      this.outcomes.delete(key);
      this.outcomes.set(key, cached);
      return resultOf(spec, cached, 0, true);
    }
    const startedAtMs = performance.now();
    const outcome = compileOutcome(spec);
    const compileMs = performance.now() - startedAtMs;
    this.outcomes.set(key, outcome);
    if (this.outcomes.size > this.capacity) {
      const oldest = this.outcomes.keys().next().value;
      if (oldest !== undefined) this.outcomes.delete(oldest);
    }
    return resultOf(spec, outcome, compileMs, false);
  }
}

function resultOf(spec: ConstraintSpec, outcome: Outcome, compileMs: number, isCached: boolean): CompiledConstraint {
  if ("failure" in outcome) throw outcome.failure;
  return { kind: spec.kind, gbnf: outcome.gbnf, compileMs, isCached };
}

function hashOf(spec: ConstraintSpec): string {
  const { param: _param, ...content } = spec;
  // The param is part of the refusal's message, so it is part of the key as well.
  return createHash("sha256")
    .update(JSON.stringify([spec.param, content]))
    .digest("hex");
}

function compileOutcome(spec: ConstraintSpec): Outcome {
  try {
    const gbnf = grammarOf(spec);
    // The safety net: whatever produced the text, native code gets it only as pagoda's parser printed it.
    return { gbnf: formatGbnf(parseGbnf(gbnf)) };
  } catch (error) {
    return { failure: toConstraintError(error, spec) };
  }
}

function grammarOf(spec: ConstraintSpec): string {
  switch (spec.kind) {
    case "json_object":
      return JSON_OBJECT_GBNF;
    case "json_schema":
      return jsonSchemaToGbnf(spec.schema);
    case "grammar":
      return spec.gbnf;
    case "regex":
      return regexToGbnf(spec.pattern);
    case "choice":
      return choiceGbnf(spec.choices);
  }
}

/** One of the strings exactly. */
function choiceGbnf(choices: readonly string[]): string {
  const unique = [...new Set(choices)];
  return `root ::= ${unique.map(gbnfLiteral).join(" | ")}\n`;
}

function toConstraintError(error: unknown, spec: ConstraintSpec): ConstraintError {
  if (error instanceof SchemaError || error instanceof GrammarError) {
    return new ConstraintError(`${spec.param}: ${error.message}`, {
      code: error.code,
      param: spec.param,
      cause: error,
    });
  }
  throw error;
}
