/**
 * The walk from schema to grammar. Each subschema becomes an expression; each `$ref` target becomes one rule,
 * compiled once and shared, so recursive schemas become recursive rules. A `$ref` cycle must pass through an
 * object or array (which consumes `{` or `[`) before it comes back: otherwise the grammar would be left-recursive
 * and the schema is refused. `allOf` is merged, `anyOf`/`oneOf` distribute the enclosing keywords into their
 * branches and become alternatives.
 */

import { arrayGrammar } from "./array-grammar.ts";
import { alternatives, type GbnfBuilder } from "./gbnf-builder.ts";
import type { GrammarContext } from "./grammar-context.ts";
import { resolveRef } from "./json-pointer.ts";
import { JsonRules } from "./json-rules.ts";
import { CONSTRAINING_KEYWORDS, JSON_TYPES } from "./keywords.ts";
import type { SchemaLimits } from "./limits.ts";
import { type MergedSchema, mergeSchemas, type SchemaPart } from "./merge-schemas.ts";
import { isSchemaObject, type NormalSchema } from "./normalize-schema.ts";
import { objectGrammar } from "./object-grammar.ts";
import { makeExclusive } from "./one-of.ts";
import { enumGrammar, numberGrammar, stringGrammar } from "./scalar-grammar.ts";
import { SchemaError } from "./schema-error.ts";
import { grammarTypes } from "./schema-types.ts";

export class SchemaCompiler implements GrammarContext {
  readonly builder: GbnfBuilder;
  readonly limits: SchemaLimits;
  readonly rules: JsonRules;
  readonly isDraft2020: boolean;
  private readonly root: unknown;
  /** Rule names of `$ref` targets, by the target's pointer. */
  private readonly refRules = new Map<string, string>();
  /** Targets being compiled, with the container depth at which they started. */
  private readonly refsInProgress = new Map<string, number>();
  /** Rules of merged schemas that followed a `$ref` inline, by `mergedKey`, so a recursive merge becomes a rule. */
  private readonly mergedRules = new Map<string, string>();
  private readonly mergedInProgress = new Map<string, number>();
  private containerDepth = 0;
  private numWork = 0;

  constructor(root: unknown, builder: GbnfBuilder, limits: SchemaLimits) {
    this.root = root;
    this.builder = builder;
    this.limits = limits;
    this.rules = new JsonRules(builder);
    const declared = isSchemaObject(root) ? root.$schema : undefined;
    this.isDraft2020 = typeof declared === "string" && declared.includes("2020-12");
  }

  /** The grammar text for the whole document. */
  compileRoot(): string {
    const body = this.compile(this.root, "", 0);
    this.builder.defineRoot(body);
    return this.builder.format();
  }

  child(schema: unknown, pointer: string, depth: number): string {
    this.containerDepth++;
    try {
      return this.compile(schema, pointer, depth);
    } finally {
      this.containerDepth--;
    }
  }

  resolve(ref: string, pointer: string): SchemaPart {
    return resolveRef(this.root, ref, pointer);
  }

  work(pointer: string): void {
    if (++this.numWork > this.limits.maxWork) {
      throw new SchemaError("schema_too_large", "maxWork", pointer, `more than ${this.limits.maxWork} compile steps`);
    }
  }

  private checkDepth(depth: number, pointer: string): void {
    if (depth > this.limits.maxCompileDepth) {
      throw new SchemaError(
        "schema_too_large",
        "maxCompileDepth",
        pointer,
        `nested deeper than ${this.limits.maxCompileDepth}`,
      );
    }
  }

  /** A GBNF expression for values satisfying `schema`. */
  private compile(schema: unknown, pointer: string, depth: number): string {
    this.checkDepth(depth, pointer);
    this.work(pointer);
    if (schema === true) return this.rules.value;
    if (schema === false) throw new SchemaError("invalid_schema", "false", pointer, "the schema false matches nothing");
    if (!isSchemaObject(schema))
      throw new SchemaError("invalid_schema", "type", pointer, "a schema must be an object or a boolean");
    if (isPureRef(schema)) return this.refRule(schema.$ref as string, pointer, depth);
    const merged = mergeSchemas([{ schema, pointer }], pointer, new Set(), this);
    if (merged === null) throw unsatisfiable(schema, pointer);
    return this.compileMerged(merged, pointer, depth);
  }

  private refRule(ref: string, pointer: string, depth: number): string {
    const target = this.resolve(ref, pointer);
    const existing = this.refRules.get(target.pointer);
    if (existing !== undefined) {
      if (this.refsInProgress.get(target.pointer) === this.containerDepth) {
        throw new SchemaError("unresolvable_ref", "$ref", pointer, `"${ref}" refers to itself without consuming input`);
      }
      return existing;
    }
    const name = this.builder.reserve(ruleHint(target.pointer), pointer);
    this.refRules.set(target.pointer, name);
    this.refsInProgress.set(target.pointer, this.containerDepth);
    try {
      this.builder.define(name, this.compile(target.schema, target.pointer, depth + 1), target.pointer);
    } finally {
      this.refsInProgress.delete(target.pointer);
    }
    return name;
  }

  private compileMerged(merged: MergedSchema, pointer: string, depth: number): string {
    this.checkDepth(depth, pointer);
    if (merged.inlined.size === 0) return this.compileMergedBody(merged, pointer, depth);
    // A merge that followed a $ref inline can meet itself again below a container (a recursive type with extra
    // keywords): the same merge gets the same rule, as a $ref does.
    const key = mergedKey(merged);
    const existing = this.mergedRules.get(key);
    if (existing !== undefined) {
      if (this.mergedInProgress.get(key) === this.containerDepth) {
        throw new SchemaError("unresolvable_ref", "$ref", pointer, "a $ref refers to itself without consuming input");
      }
      return existing;
    }
    const name = this.builder.reserve(ruleHint(pointer), pointer);
    this.mergedRules.set(key, name);
    this.mergedInProgress.set(key, this.containerDepth);
    try {
      this.builder.define(name, this.compileMergedBody(merged, pointer, depth), pointer);
    } finally {
      this.mergedInProgress.delete(key);
    }
    return name;
  }

  private compileMergedBody(merged: MergedSchema, pointer: string, depth: number): string {
    const [group, ...otherGroups] = merged.groups;
    if (group === undefined) return this.compileLeaf(merged.schema, pointer, depth);
    // The enclosing keywords and the other groups go into every branch: base ∧ (A ∨ B) = (base ∧ A) ∨ (base ∧ B).
    const base: SchemaPart[] = [
      { schema: merged.schema, pointer },
      ...otherGroups.map((other) => ({
        schema: { [other.isExclusive ? "oneOf" : "anyOf"]: other.branches.map((branch) => branch.schema) },
        pointer: other.pointer,
      })),
    ];
    const isBaseEmpty = Object.keys(merged.schema).length === 0 && otherGroups.length === 0;
    const branches: { part: SchemaPart; merged: MergedSchema }[] = [];
    for (const part of group.branches) {
      const branch = mergeSchemas([...base, part], part.pointer, merged.inlined, this);
      if (branch !== null) branches.push({ part, merged: branch });
    }
    if (branches.length === 0) {
      throw new SchemaError(
        "invalid_schema",
        group.isExclusive ? "oneOf" : "anyOf",
        group.pointer,
        "no branch can match",
      );
    }
    const schemas = group.isExclusive
      ? makeExclusive(
          branches.map((branch) => branch.merged.schema),
          group.pointer,
          this,
        )
      : branches.map((branch) => branch.merged.schema);
    const alts = branches.map((branch, i) => {
      const schema = schemas[i] as NormalSchema;
      // A bare `$ref` branch stays a reference, so a recursive type stays one rule.
      if (
        isBaseEmpty &&
        schema === branch.merged.schema &&
        isSchemaObject(branch.part.schema) &&
        isPureRef(branch.part.schema)
      ) {
        return this.compile(branch.part.schema, branch.part.pointer, depth + 1);
      }
      return this.compileMerged({ ...branch.merged, schema }, branch.part.pointer, depth + 1);
    });
    return this.builder.rule(group.isExclusive ? "one-of" : "any-of", alternatives(alts), group.pointer);
  }

  private compileLeaf(schema: NormalSchema, pointer: string, depth: number): string {
    if (schema.enum !== undefined) return this.builder.rule("enum", enumGrammar(schema, pointer, this), pointer);
    const types = grammarTypes(schema);
    if (types === JSON_TYPES && Object.keys(schema).length === 0) return this.rules.value;
    const alts: string[] = [];
    for (const type of types) {
      switch (type) {
        case "null":
          alts.push('"null"');
          break;
        case "boolean":
          alts.push(this.rules.boolean);
          break;
        case "integer":
          if (!types.includes("number")) alts.push(numberGrammar(schema, true, pointer, this));
          break;
        case "number":
          alts.push(numberGrammar(schema, false, pointer, this));
          break;
        case "string":
          alts.push(stringGrammar(schema, pointer, this));
          break;
        case "object":
          alts.push(objectGrammar(schema, pointer, depth, this));
          break;
        case "array":
          alts.push(arrayGrammar(schema, pointer, depth, this));
          break;
      }
    }
    return alts.length === 1 ? (alts[0] as string) : this.builder.rule("value-of", alternatives(alts), pointer);
  }
}

const objectIds = new WeakMap<object, number>();
let nextObjectId = 1;

function idOf(value: object): number {
  let id = objectIds.get(value);
  if (id === undefined) {
    id = nextObjectId++;
    objectIds.set(value, id);
  }
  return id;
}

/** Identifies a merge by its keywords, with subschemas by identity: equal merges of the same subschemas match. */
function mergedKey(merged: MergedSchema): string {
  const shallow = (value: unknown): unknown =>
    typeof value === "object" && value !== null ? `#${idOf(value)}` : value;
  const schema = Object.entries(merged.schema).map(([keyword, value]) => [
    keyword,
    Array.isArray(value)
      ? value.map(shallow)
      : isSchemaObject(value)
        ? Object.entries(value).map(([k, v]) => [k, shallow(v)])
        : value,
  ]);
  const groups = merged.groups.map((group) => [
    group.isExclusive,
    group.branches.map((branch) => shallow(branch.schema)),
  ]);
  return JSON.stringify([schema, groups]);
}

function isPureRef(schema: { readonly [keyword: string]: unknown }): boolean {
  if (typeof schema.$ref !== "string") return false;
  return Object.keys(schema).every((keyword) => keyword === "$ref" || !CONSTRAINING_KEYWORDS.has(keyword));
}

function unsatisfiable(schema: { readonly [keyword: string]: unknown }, pointer: string): SchemaError {
  const keyword = ["allOf", "$ref", "type", "enum", "const"].find((k) => schema[k] !== undefined) ?? "allOf";
  return new SchemaError("invalid_schema", keyword, pointer, "no value satisfies the schema");
}

/** A readable rule name from a pointer: its last token, or the last two when the last is generic. */
function ruleHint(pointer: string): string {
  const tokens = pointer.split("/").slice(1);
  const last = tokens[tokens.length - 1] ?? "root";
  if (/^\d+$/.test(last) || ["items", "additionalProperties", "not", "then", "else"].includes(last)) {
    return tokens.slice(-2).join("-") || "root";
  }
  return last;
}
