/**
 * What values a key takes, read from the schema so that coercion and error messages cannot drift from
 * validation.
 */
import { z } from "zod";
import { type ConfigKey, ConfigSchema } from "./config-schema.ts";

/** How a string from the environment or the command line is converted for a key. */
export type ValueKind = "string" | "integer" | "boolean" | "list";

function unwrap(schema: z.ZodType): z.ZodType {
  if (schema instanceof z.ZodDefault || schema instanceof z.ZodOptional) {
    return unwrap(schema.unwrap() as z.ZodType);
  }
  return schema;
}

/** The value type of a key. */
export function valueKind(key: ConfigKey): ValueKind {
  const inner = unwrap(ConfigSchema.shape[key]);
  if (inner instanceof z.ZodNumber) return "integer";
  if (inner instanceof z.ZodBoolean) return "boolean";
  if (inner instanceof z.ZodArray) return "list";
  return "string";
}

/** Human description of the values a key accepts, e.g. "an integer between 0 and 65535", from the schema's checks. */
export function describeAllowed(key: ConfigKey): string {
  const inner = unwrap(ConfigSchema.shape[key]);
  if (inner instanceof z.ZodEnum) return `one of ${inner.options.join(", ")}`;
  if (inner instanceof z.ZodBoolean) return "true or false";
  if (inner instanceof z.ZodArray)
    return "non-empty strings: the flag repeated, a comma-separated list or a JSON array";
  if (inner instanceof z.ZodNumber) {
    // z.int() reports the safe-integer limits when no explicit bound was set.
    const min = inner.minValue !== null && inner.minValue > Number.MIN_SAFE_INTEGER ? inner.minValue : undefined;
    const max = inner.maxValue !== null && inner.maxValue < Number.MAX_SAFE_INTEGER ? inner.maxValue : undefined;
    if (min !== undefined && max !== undefined) return `an integer between ${min} and ${max}`;
    if (min !== undefined) return `an integer >= ${min}`;
    if (max !== undefined) return `an integer <= ${max}`;
    return "an integer";
  }
  return "a non-empty string";
}
