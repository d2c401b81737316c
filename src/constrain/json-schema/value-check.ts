/**
 * Whether a known JSON value satisfies a schema, for the keywords that can be decided without a grammar: it filters
 * `enum` values by their sibling keywords, and checks declared property names against `propertyNames`. When a
 * keyword cannot be decided here the answer is the keyword's name, and the caller refuses the schema.
 */
import { jsonEquals, typesOf } from "./json-value.ts";
import { isSchemaObject, normalizeSchema } from "./normalize-schema.ts";
import { NUMBER_FORMATS, STRING_FORMATS } from "./string-formats.ts";

export type CheckResult = boolean | { readonly undecided: string };

const MAX_CHECK_DEPTH = 32;

export function checkValue(schema: unknown, value: unknown, depth = 0): CheckResult {
  if (schema === true) return true;
  if (schema === false) return false;
  if (!isSchemaObject(schema) || depth > MAX_CHECK_DEPTH) return { undecided: "$ref" };
  const s = normalizeSchema(schema, "");
  for (const [keyword, constraint] of Object.entries(s)) {
    const result = checkKeyword(keyword, constraint, value, depth);
    if (result !== true) return result;
  }
  return true;
}

function checkKeyword(keyword: string, constraint: unknown, value: unknown, depth: number): CheckResult {
  switch (keyword) {
    case "type":
      return (constraint as string[]).some((type) => typesOf(value).includes(type as never));
    case "enum":
      return (constraint as unknown[]).some((option) => jsonEquals(option, value));
    case "minLength":
      return typeof value !== "string" || Array.from(value).length >= (constraint as number);
    case "maxLength":
      return typeof value !== "string" || Array.from(value).length <= (constraint as number);
    case "pattern":
      return typeof value !== "string" || testPattern(constraint as string, value);
    case "minimum":
      return typeof value !== "number" || value >= (constraint as number);
    case "maximum":
      return typeof value !== "number" || value <= (constraint as number);
    case "exclusiveMinimum":
      return typeof value !== "number" || value > (constraint as number);
    case "exclusiveMaximum":
      return typeof value !== "number" || value < (constraint as number);
    case "multipleOf":
      return typeof value !== "number" || Number.isInteger(value / (constraint as number));
    case "allOf":
      return every(constraint as unknown[], (sub) => checkValue(sub, value, depth + 1));
    case "anyOf":
      return some(constraint as unknown[], (sub) => checkValue(sub, value, depth + 1));
    case "format":
      return typeof value !== "string" || checkFormat(constraint as string, value);
    default:
      return checkStructure(keyword, constraint, value, depth);
  }
}

function checkStructure(keyword: string, constraint: unknown, value: unknown, depth: number): CheckResult {
  const isObject = isSchemaObject(value);
  switch (keyword) {
    case "required":
      return !isObject || (constraint as string[]).every((name) => Object.hasOwn(value, name));
    case "properties":
      if (!isObject) return true;
      return every(Object.entries(constraint as object), ([name, sub]) =>
        Object.hasOwn(value, name) ? checkValue(sub, value[name], depth + 1) : true,
      );
    case "additionalProperties": {
      if (!isObject) return true;
      return { undecided: "additionalProperties" };
    }
    case "minProperties":
      return !isObject || Object.keys(value).length >= (constraint as number);
    case "maxProperties":
      return !isObject || Object.keys(value).length <= (constraint as number);
    case "items":
      return !Array.isArray(value) || every(value, (item) => checkValue(constraint, item, depth + 1));
    case "minItems":
      return !Array.isArray(value) || value.length >= (constraint as number);
    case "maxItems":
      return !Array.isArray(value) || value.length <= (constraint as number);
    default:
      return isObject || Array.isArray(value) ? { undecided: keyword } : appliesOnlyToContainers(keyword);
  }
}

/** Keywords about objects and arrays hold for any scalar. */
function appliesOnlyToContainers(keyword: string): CheckResult {
  const containerOnly = [
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "prefixItems",
    "uniqueItems",
    "unevaluatedItems",
  ];
  return containerOnly.includes(keyword) ? true : { undecided: keyword };
}

function every<T>(items: readonly T[], check: (item: T) => CheckResult): CheckResult {
  for (const item of items) {
    const result = check(item);
    if (result !== true) return result;
  }
  return true;
}

function some<T>(items: readonly T[], check: (item: T) => CheckResult): CheckResult {
  let undecided: CheckResult = false;
  for (const item of items) {
    const result = check(item);
    if (result === true) return true;
    if (result !== false) undecided = result;
  }
  return undecided;
}

/**
 * Whether `value` is in pagoda's subset of the format; a value outside it is treated as failing, which can only
 * leave out an enum value a validator would accept (stricter), never keep one it rejects.
 */
function checkFormat(format: string, value: string): CheckResult {
  if (NUMBER_FORMATS.has(format)) return true;
  const pattern = STRING_FORMATS.get(format);
  if (pattern === undefined) return { undecided: "format" };
  return pattern === null || new RegExp(`^(?:${pattern})$`, "u").test(value);
}

function testPattern(pattern: string, value: string): CheckResult {
  try {
    return new RegExp(pattern, "u").test(value);
  } catch {
    return { undecided: "pattern" };
  }
}
