/**
 * One subschema's keywords in a single canonical form, so the rest of the converter meets each meaning once:
 * `const` becomes `enum`, OpenAPI's `nullable` joins `null` to `type`, draft-04's boolean `exclusiveMinimum` becomes
 * the numeric form, the tuple form of `items` becomes `prefixItems`, `dependencies` splits into `dependentRequired`
 * and `dependentSchemas`. Annotations are dropped. Only the top level is normalized; subschemas are normalized
 * when they are compiled.
 */

import { jsonEquals } from "./json-value.ts";
import { CONSTRAINING_KEYWORDS, isJsonType, type JsonType } from "./keywords.ts";
import { SchemaError } from "./schema-error.ts";

export type SchemaObject = { readonly [keyword: string]: unknown };

/** A normalized schema: constraining keywords only, in canonical form. */
export interface NormalSchema {
  readonly [keyword: string]: unknown;
  readonly type?: readonly JsonType[];
  readonly enum?: readonly unknown[];
}

export function isSchemaObject(value: unknown): value is SchemaObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export interface NormalizeOptions {
  /**
   * Whether the document declares draft 2020-12, where `items` beside `prefixItems` applies to the items after the
   * tuple; in earlier drafts `prefixItems` is not a keyword and `items` applies to every item. Defaults to true.
   */
  readonly isDraft2020?: boolean;
}

export function normalizeSchema(schema: SchemaObject, pointer: string, options: NormalizeOptions = {}): NormalSchema {
  const out: Record<string, unknown> = {};
  for (const [keyword, value] of Object.entries(schema)) {
    if (CONSTRAINING_KEYWORDS.has(keyword)) out[keyword] = value;
  }
  refuseAlways(out, pointer);
  normalizeType(out, pointer);
  normalizeEnum(out, pointer);
  normalizeBounds(out, "minimum", "exclusiveMinimum", pointer);
  normalizeBounds(out, "maximum", "exclusiveMaximum", pointer);
  normalizeItems(out, pointer, options.isDraft2020 ?? true);
  normalizeDependencies(out, pointer);
  for (const keyword of ["minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"]) {
    const value = out[keyword];
    if (value !== undefined && !(typeof value === "number" && Number.isInteger(value) && value >= 0)) {
      throw new SchemaError("invalid_schema", keyword, pointer, "must be a non-negative integer");
    }
  }
  if (out.required !== undefined) {
    if (!Array.isArray(out.required) || !out.required.every((name) => typeof name === "string")) {
      throw new SchemaError("invalid_schema", "required", pointer, "must be an array of strings");
    }
    out.required = [...new Set(out.required as string[])];
  }
  for (const keyword of ["properties", "patternProperties", "dependentSchemas"]) {
    if (out[keyword] !== undefined && !isSchemaObject(out[keyword])) {
      throw new SchemaError("invalid_schema", keyword, pointer, "must be an object");
    }
  }
  for (const keyword of ["allOf", "anyOf", "oneOf"]) {
    const value = out[keyword];
    if (value !== undefined && (!Array.isArray(value) || value.length === 0)) {
      throw new SchemaError("invalid_schema", keyword, pointer, "must be a non-empty array");
    }
  }
  if (out.pattern !== undefined && typeof out.pattern !== "string") {
    throw new SchemaError("invalid_schema", "pattern", pointer, "must be a string");
  }
  if (out.format !== undefined && typeof out.format !== "string") {
    throw new SchemaError("invalid_schema", "format", pointer, "must be a string");
  }
  if (out.$ref !== undefined && typeof out.$ref !== "string") {
    throw new SchemaError("invalid_schema", "$ref", pointer, "must be a string");
  }
  return out;
}

/** Keywords no grammar enforces exactly in any combination. */
function refuseAlways(out: Record<string, unknown>, pointer: string): void {
  for (const keyword of ["not", "$dynamicRef", "$recursiveRef"]) {
    if (out[keyword] !== undefined) throw new SchemaError("unsupported_keyword", keyword, pointer, "");
  }
  // `then` and `else` without `if`, and `if` alone, have no effect.
  if (out.if !== undefined && (out.then !== undefined || out.else !== undefined)) {
    throw new SchemaError("unsupported_keyword", "if", pointer, "conditional schemas cannot be enforced");
  }
  delete out.if;
  delete out.then;
  delete out.else;
  if (out.contains !== undefined) {
    if (out.minContains !== 0) throw new SchemaError("unsupported_keyword", "contains", pointer, "");
    delete out.contains;
  }
  delete out.minContains;
  delete out.maxContains;
}

function normalizeType(out: Record<string, unknown>, pointer: string): void {
  const type = out.type;
  if (type !== undefined) {
    const types = Array.isArray(type) ? type : [type];
    if (!types.every(isJsonType)) throw new SchemaError("invalid_schema", "type", pointer, "unknown type");
    out.type = [...new Set(types)];
  }
  const nullable = out.nullable;
  delete out.nullable;
  if (nullable === true) {
    if (out.type !== undefined) out.type = [...new Set([...(out.type as JsonType[]), "null"])];
    if (out.enum !== undefined && Array.isArray(out.enum)) out.enum = [...out.enum, null];
  }
}

function normalizeEnum(out: Record<string, unknown>, pointer: string): void {
  if (out.enum !== undefined && !Array.isArray(out.enum)) {
    throw new SchemaError("invalid_schema", "enum", pointer, "must be an array");
  }
  if ("const" in out) {
    const value = out.const;
    delete out.const;
    const values = out.enum as unknown[] | undefined;
    out.enum = values === undefined ? [value] : values.filter((v) => jsonEquals(v, value));
  }
}

function normalizeBounds(out: Record<string, unknown>, inclusive: string, exclusive: string, pointer: string): void {
  const flag = out[exclusive];
  if (typeof flag === "boolean") {
    // Draft 4: the boolean makes `minimum`/`maximum` exclusive.
    delete out[exclusive];
    if (flag && out[inclusive] !== undefined) {
      out[exclusive] = out[inclusive];
      delete out[inclusive];
    }
  }
  for (const keyword of [inclusive, exclusive]) {
    const value = out[keyword];
    if (value !== undefined && (typeof value !== "number" || !Number.isFinite(value))) {
      throw new SchemaError("invalid_schema", keyword, pointer, "must be a number");
    }
  }
  if (out.multipleOf !== undefined && !(typeof out.multipleOf === "number" && out.multipleOf > 0)) {
    throw new SchemaError("invalid_schema", "multipleOf", pointer, "must be a positive number");
  }
}

/**
 * Canonical arrays: `prefixItems` with `additionalItems` for the items after the tuple, or `items` for every item.
 * Normalizing twice gives the same result.
 */
function normalizeItems(out: Record<string, unknown>, pointer: string, isDraft2020: boolean): void {
  if (out.prefixItems !== undefined && out.items !== undefined && !Array.isArray(out.items)) {
    if (!isDraft2020) {
      throw new SchemaError(
        "unsupported_keyword",
        "prefixItems",
        pointer,
        'beside "items" its meaning depends on the draft; declare "$schema" 2020-12',
      );
    }
    out.additionalItems = out.items;
    delete out.items;
  }
  if (Array.isArray(out.items)) {
    if (out.prefixItems !== undefined) {
      throw new SchemaError("invalid_schema", "items", pointer, "an array alongside prefixItems");
    }
    out.prefixItems = out.items;
    delete out.items;
  } else if (out.prefixItems === undefined) {
    // Without a tuple, additionalItems has no effect.
    delete out.additionalItems;
  }
  if (out.prefixItems !== undefined && !Array.isArray(out.prefixItems)) {
    throw new SchemaError("invalid_schema", "prefixItems", pointer, "must be an array");
  }
}

function normalizeDependencies(out: Record<string, unknown>, pointer: string): void {
  const dependencies = out.dependencies;
  delete out.dependencies;
  if (dependencies === undefined) return;
  if (!isSchemaObject(dependencies)) throw new SchemaError("invalid_schema", "dependencies", pointer, "");
  const required: Record<string, unknown> = { ...(out.dependentRequired as SchemaObject | undefined) };
  const schemas: Record<string, unknown> = { ...(out.dependentSchemas as SchemaObject | undefined) };
  for (const [name, value] of Object.entries(dependencies)) {
    if (Array.isArray(value)) required[name] = value;
    else schemas[name] = value;
  }
  if (Object.keys(required).length > 0) out.dependentRequired = required;
  if (Object.keys(schemas).length > 0) out.dependentSchemas = schemas;
}
