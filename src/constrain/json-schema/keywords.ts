/**
 * Which keywords constrain. JSON Schema's validation and applicator vocabularies (drafts 4 to 2020-12, plus
 * OpenAPI's `nullable`) constrain; every other keyword is an annotation (title, description, examples, default,
 * vendor extensions, ...) and is ignored. A constraining keyword the converter does not handle is refused.
 */

export const CONSTRAINING_KEYWORDS: ReadonlySet<string> = new Set([
  "$ref",
  "$dynamicRef",
  "$recursiveRef",
  "type",
  "enum",
  "const",
  "nullable",
  "allOf",
  "anyOf",
  "oneOf",
  "not",
  "if",
  "then",
  "else",
  "properties",
  "required",
  "additionalProperties",
  "patternProperties",
  "propertyNames",
  "minProperties",
  "maxProperties",
  "dependencies",
  "dependentRequired",
  "dependentSchemas",
  "unevaluatedProperties",
  "items",
  "prefixItems",
  "additionalItems",
  "unevaluatedItems",
  "minItems",
  "maxItems",
  "uniqueItems",
  "contains",
  "minContains",
  "maxContains",
  "minLength",
  "maxLength",
  "pattern",
  "format",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
]);

export const OBJECT_KEYWORDS: readonly string[] = [
  "properties",
  "required",
  "additionalProperties",
  "patternProperties",
  "propertyNames",
  "minProperties",
  "maxProperties",
  "dependentRequired",
  "dependentSchemas",
  "unevaluatedProperties",
];
export const ARRAY_KEYWORDS: readonly string[] = [
  "items",
  "prefixItems",
  "minItems",
  "maxItems",
  "uniqueItems",
  "contains",
  "unevaluatedItems",
];
export const STRING_KEYWORDS: readonly string[] = ["minLength", "maxLength", "pattern"];
export const NUMBER_KEYWORDS: readonly string[] = [
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
];

export type JsonType = "null" | "boolean" | "object" | "array" | "string" | "number" | "integer";

export const JSON_TYPES: readonly JsonType[] = ["null", "boolean", "object", "array", "string", "number", "integer"];

export function isJsonType(value: unknown): value is JsonType {
  return typeof value === "string" && (JSON_TYPES as readonly string[]).includes(value);
}
