/**
 * `allOf` by merging: the parts of a conjunction (with `$ref`s followed and nested `allOf`s flattened) become one
 * schema whose every keyword is the exact conjunction of the parts' keywords: the larger minimum, the smaller
 * maximum, the union of `required`, the intersection of `type` and `enum`, per-property conjunctions. A pair of
 * keywords whose conjunction has no exact form (two different `pattern`s) is refused. `anyOf` and `oneOf` are set
 * aside as choice groups for the caller to distribute over.
 */

import { childPointer } from "./json-pointer.ts";
import { jsonEquals } from "./json-value.ts";
import type { JsonType } from "./keywords.ts";
import { isSchemaObject, type NormalSchema, normalizeSchema } from "./normalize-schema.ts";
import { SchemaError } from "./schema-error.ts";

export interface SchemaPart {
  readonly schema: unknown;
  readonly pointer: string;
}

/** Alternatives from one `anyOf` or `oneOf`. */
export interface ChoiceGroup {
  readonly branches: readonly SchemaPart[];
  readonly isExclusive: boolean;
  readonly pointer: string;
}

export interface MergedSchema {
  readonly schema: NormalSchema;
  readonly groups: readonly ChoiceGroup[];
  /** Ref targets followed inline, which must not be followed inline again below this merge. */
  readonly inlined: ReadonlySet<string>;
}

export interface MergeEnvironment {
  readonly isDraft2020: boolean;
  resolve(ref: string, pointer: string): SchemaPart;
  work(pointer: string): void;
}

/** The conjunction of `parts`; `null` when no value satisfies it. */
export function mergeSchemas(
  parts: readonly SchemaPart[],
  pointer: string,
  forbidden: ReadonlySet<string>,
  env: MergeEnvironment,
): MergedSchema | null {
  const leaves: { schema: NormalSchema; pointer: string }[] = [];
  const groups: ChoiceGroup[] = [];
  const inlined = new Set<string>();
  type Pending = { part: SchemaPart; chain: readonly string[] } | { leaf: NormalSchema; pointer: string };
  // Depth first, so properties keep their order: a $ref's target, then the part's own keywords, then its allOf.
  const stack: Pending[] = parts.map((part) => ({ part, chain: [] as readonly string[] })).reverse();
  while (stack.length > 0) {
    const pending = stack.pop() as Pending;
    if ("leaf" in pending) {
      leaves.push({ schema: pending.leaf, pointer: pending.pointer });
      continue;
    }
    const { part, chain } = pending;
    env.work(part.pointer);
    if (part.schema === true) continue;
    if (part.schema === false) return null;
    if (!isSchemaObject(part.schema)) throw new SchemaError("invalid_schema", "type", part.pointer, "not a schema");
    const { $ref, allOf, anyOf, oneOf, ...rest } = normalizeSchema(part.schema, part.pointer, env);
    for (const [keyword, value] of [
      ["anyOf", anyOf],
      ["oneOf", oneOf],
    ] as const) {
      if (!Array.isArray(value)) continue;
      const at = childPointer(part.pointer, keyword);
      groups.push({
        branches: value.map((schema, i) => ({ schema, pointer: childPointer(at, i) })),
        isExclusive: keyword === "oneOf",
        pointer: at,
      });
    }
    const next: Pending[] = [];
    if (typeof $ref === "string") {
      const target = env.resolve($ref, part.pointer);
      if (forbidden.has(target.pointer) || chain.includes(target.pointer)) {
        throw new SchemaError(
          "unresolvable_ref",
          "$ref",
          part.pointer,
          `"${$ref}" refers to itself without consuming input`,
        );
      }
      inlined.add(target.pointer);
      next.push({ part: target, chain: [...chain, target.pointer] });
    }
    next.push({ leaf: rest, pointer: part.pointer });
    if (Array.isArray(allOf)) {
      allOf.forEach((schema, i) => {
        next.push({ part: { schema, pointer: childPointer(part.pointer, "allOf", i) }, chain });
      });
    }
    stack.push(...next.reverse());
  }
  const schema = combineLeaves(leaves, pointer);
  return schema === null ? null : { schema, groups, inlined };
}

function combineLeaves(
  leaves: readonly { schema: NormalSchema; pointer: string }[],
  pointer: string,
): NormalSchema | null {
  const nonEmpty = leaves.filter((leaf) => Object.keys(leaf.schema).length > 0);
  if (nonEmpty.length === 0) return {};
  if (nonEmpty.length === 1) return nonEmpty[0]?.schema ?? {};
  const out: Record<string, unknown> = {};
  for (const leaf of nonEmpty) {
    for (const [keyword, value] of Object.entries(leaf.schema)) {
      if (keyword === "properties" || keyword === "additionalProperties") continue;
      if (!(keyword in out)) {
        out[keyword] = value;
        continue;
      }
      const combined = combineKeyword(keyword, out[keyword], value, leaf.pointer);
      if (combined === EMPTY) return null;
      out[keyword] = combined;
    }
  }
  mergeObjectShape(out, nonEmpty, pointer);
  return out;
}

const EMPTY = Symbol("empty");

function combineKeyword(keyword: string, a: unknown, b: unknown, pointer: string): unknown {
  switch (keyword) {
    case "type": {
      const types = intersectTypes(a as JsonType[], b as JsonType[]);
      return types.length === 0 ? EMPTY : types;
    }
    case "enum": {
      const values = (a as unknown[]).filter((value) => (b as unknown[]).some((other) => jsonEquals(value, other)));
      return values.length === 0 ? EMPTY : values;
    }
    case "minimum":
    case "exclusiveMinimum":
    case "minLength":
    case "minItems":
    case "minProperties":
      return Math.max(a as number, b as number);
    case "maximum":
    case "exclusiveMaximum":
    case "maxLength":
    case "maxItems":
    case "maxProperties":
      return Math.min(a as number, b as number);
    case "required":
      return [...new Set([...(a as string[]), ...(b as string[])])];
    case "uniqueItems":
      return a === true || b === true;
    case "items":
      return { allOf: [a, b] };
    case "dependentRequired": {
      const out: Record<string, string[]> = { ...(a as Record<string, string[]>) };
      for (const [name, names] of Object.entries(b as Record<string, string[]>)) {
        out[name] = [...new Set([...(out[name] ?? []), ...names])];
      }
      return out;
    }
    default:
      if (jsonEquals(a, b)) return a;
      throw new SchemaError(
        "unsupported_keyword",
        keyword,
        pointer,
        "allOf parts with different values cannot be merged",
      );
  }
}

function intersectTypes(a: readonly JsonType[], b: readonly JsonType[]): JsonType[] {
  const out = new Set<JsonType>();
  for (const type of a) {
    if (b.includes(type)) out.add(type);
    else if (type === "integer" && b.includes("number")) out.add("integer");
    else if (type === "number" && b.includes("integer")) out.add("integer");
  }
  return [...out];
}

/**
 * Properties and additionalProperties across parts: a property one part declares and another does not must also
 * satisfy the other part's additionalProperties.
 */
function mergeObjectShape(
  out: Record<string, unknown>,
  leaves: readonly { schema: NormalSchema; pointer: string }[],
  pointer: string,
): void {
  const names: string[] = [];
  for (const leaf of leaves) {
    const properties = leaf.schema.properties;
    if (isSchemaObject(properties))
      for (const name of Object.keys(properties)) if (!names.includes(name)) names.push(name);
  }
  const extras = leaves.filter((leaf) => leaf.schema.additionalProperties !== undefined);
  if (extras.length > 0 && leaves.some((leaf) => leaf.schema.patternProperties !== undefined)) {
    throw new SchemaError("unsupported_keyword", "patternProperties", pointer, "allOf parts with additionalProperties");
  }
  const properties: Record<string, unknown> = {};
  for (const name of names) {
    const schemas: unknown[] = [];
    for (const leaf of leaves) {
      const own = isSchemaObject(leaf.schema.properties) ? leaf.schema.properties : {};
      if (Object.hasOwn(own, name)) schemas.push(own[name]);
      else if (leaf.schema.additionalProperties !== undefined) schemas.push(leaf.schema.additionalProperties);
    }
    properties[name] = schemas.length === 1 ? schemas[0] : { allOf: schemas };
  }
  if (names.length > 0) out.properties = properties;
  if (extras.length === 1) out.additionalProperties = extras[0]?.schema.additionalProperties;
  else if (extras.length > 1) {
    const values = extras.map((leaf) => leaf.schema.additionalProperties);
    out.additionalProperties = values.includes(false) ? false : { allOf: values };
  }
}
