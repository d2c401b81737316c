/** What the per-type grammar builders need from the compiler. */
import type { GbnfBuilder } from "./gbnf-builder.ts";
import type { JsonRules } from "./json-rules.ts";
import type { SchemaLimits } from "./limits.ts";
import type { SchemaPart } from "./merge-schemas.ts";

export interface GrammarContext {
  readonly builder: GbnfBuilder;
  readonly limits: SchemaLimits;
  readonly rules: JsonRules;
  /**
   * Grammar for a value nested in an object or array, after its `{` or `[`: recursion through it consumes input,
   * so a `$ref` back to an enclosing schema is allowed there.
   */
  child(schema: unknown, pointer: string, depth: number): string;
  /** Follows a `$ref` one step, for checks that need the target's keywords. */
  resolve(ref: string, pointer: string): SchemaPart;
  work(pointer: string): void;
}
