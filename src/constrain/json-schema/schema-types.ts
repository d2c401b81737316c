/** The JSON types a schema's grammar writes, and the types a schema accepts. */
import { typesOf } from "./json-value.ts";
import {
  ARRAY_KEYWORDS,
  JSON_TYPES,
  type JsonType,
  NUMBER_KEYWORDS,
  OBJECT_KEYWORDS,
  STRING_KEYWORDS,
} from "./keywords.ts";
import type { NormalSchema } from "./normalize-schema.ts";
import { STRING_FORMATS } from "./string-formats.ts";

/**
 * Types the grammar for `schema` writes. Without `type`, a schema whose keywords all concern one kind of value
 * (`properties` → object) gets that kind only: stricter than JSON Schema, where `{"properties": ...}` also accepts
 * a string, and what every schema author means.
 */
export function grammarTypes(schema: NormalSchema): readonly JsonType[] {
  if (schema.enum !== undefined) return [...new Set(schema.enum.flatMap((value) => typesOf(value)))];
  if (schema.type !== undefined) return schema.type;
  const has = (keywords: readonly string[]) => keywords.some((keyword) => schema[keyword] !== undefined);
  const inferred: JsonType[] = [];
  if (has(OBJECT_KEYWORDS)) inferred.push("object");
  if (has(ARRAY_KEYWORDS)) inferred.push("array");
  const format = schema.format;
  if (has(STRING_KEYWORDS) || (typeof format === "string" && STRING_FORMATS.has(format))) inferred.push("string");
  if (has(NUMBER_KEYWORDS)) inferred.push("number");
  return inferred.length > 0 ? inferred : JSON_TYPES;
}

/** Types `schema` accepts, as a validator reads it. */
export function acceptedTypes(schema: NormalSchema): readonly JsonType[] {
  let types = schema.type ?? JSON_TYPES;
  if (schema.enum !== undefined) {
    const enumTypes = new Set(schema.enum.flatMap((value) => typesOf(value)));
    types = types.filter((type) => enumTypes.has(type));
  }
  return types;
}

/** Whether no value has one of `a`'s types and one of `b`'s. */
export function areTypesDisjoint(a: readonly JsonType[], b: readonly JsonType[]): boolean {
  const widen = (types: readonly JsonType[]): readonly JsonType[] =>
    types.includes("number") || types.includes("integer") ? [...types, "number", "integer"] : types;
  const wideB = widen(b);
  // An integer is a number; a grammar's "number" writes integers too.
  return !widen(a).some((type) => wideB.includes(type));
}
