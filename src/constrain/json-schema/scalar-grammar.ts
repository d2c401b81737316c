/** Grammars for `enum`, strings, integers and numbers. */
import { alternatives, gbnfLiteral, sequence } from "./gbnf-builder.ts";
import type { GrammarContext } from "./grammar-context.ts";
import { integerRangeGbnf } from "./integer-range.ts";
import { toJsonText } from "./json-value.ts";
import type { NormalSchema } from "./normalize-schema.ts";
import { numberRangeGbnf } from "./number-range.ts";
import { patternsGbnf } from "./regex-to-gbnf.ts";
import { SchemaError } from "./schema-error.ts";
import { NUMBER_FORMATS, STRING_FORMATS } from "./string-formats.ts";
import { checkValue } from "./value-check.ts";

/**
 * The values of `enum` that satisfy the schema's other keywords, each as its compact JSON text (stricter than JSON:
 * no whitespace inside an object or array value).
 */
export function enumGrammar(schema: NormalSchema, pointer: string, context: GrammarContext): string {
  const { enum: values = [], ...rest } = schema;
  const texts: string[] = [];
  for (const value of values) {
    context.work(pointer);
    const verdict = checkValue(rest, value);
    if (typeof verdict === "object") {
      throw new SchemaError("unsupported_keyword", verdict.undecided, pointer, "cannot be checked against enum values");
    }
    const text = toJsonText(value);
    if (verdict && text !== undefined) texts.push(gbnfLiteral(text));
  }
  if (texts.length === 0)
    throw new SchemaError("invalid_schema", "enum", pointer, "no enum value satisfies the schema");
  return alternatives(texts);
}

/**
 * Strings: a format and a pattern are regular languages, so together and with length bounds they intersect
 * exactly (see regex-automaton.ts). A maxLength beyond the repetition limit is lowered to it (stricter).
 */
export function stringGrammar(schema: NormalSchema, pointer: string, context: GrammarContext): string {
  const { builder, rules } = context;
  const minLength = (schema.minLength as number | undefined) ?? 0;
  const maxLength = (schema.maxLength as number | undefined) ?? null;
  if (maxLength !== null && minLength > maxLength) {
    throw new SchemaError("invalid_schema", "minLength", pointer, "minLength exceeds maxLength");
  }
  const patterns: string[] = [];
  const format = formatPattern(schema, pointer);
  if (format !== null) patterns.push(`^(?:${format})$`);
  if (typeof schema.pattern === "string") patterns.push(schema.pattern);
  let content: string;
  if (patterns.length > 0) {
    const limits = context.limits;
    const context2 = { builder, limits, pointer, isJsonString: true };
    content = patternsGbnf(patterns, { min: minLength, max: maxLength }, context2);
  } else {
    if (minLength === 0 && maxLength === null) return rules.string;
    const max = maxLength === null ? null : Math.min(maxLength, context.limits.maxRepetition);
    content = builder.repeat(rules.char, minLength, max, "char", pointer, "minLength");
  }
  return builder.rule(`string-${String(schema.format ?? "")}`, sequence(['"\\""', content, '"\\""']), pointer);
}

/** The regular expression of the schema's string format; null without one or for one that does not constrain. */
function formatPattern(schema: NormalSchema, pointer: string): string | null {
  const name = schema.format as string | undefined;
  if (name === undefined || NUMBER_FORMATS.has(name)) return null;
  const pattern = STRING_FORMATS.get(name);
  if (pattern === undefined)
    throw new SchemaError("unsupported_keyword", "format", pointer, `unknown format "${name}"`);
  return pattern;
}

export function numberGrammar(
  schema: NormalSchema,
  isInteger: boolean,
  pointer: string,
  context: GrammarContext,
): string {
  const formatName = schema.format as string | undefined;
  if (formatName !== undefined && !NUMBER_FORMATS.has(formatName) && !STRING_FORMATS.has(formatName)) {
    throw new SchemaError("unsupported_keyword", "format", pointer, `unknown format "${formatName}"`);
  }
  const format = formatName === undefined ? undefined : NUMBER_FORMATS.get(formatName);
  const multipleOf = schema.multipleOf as number | undefined;
  let integer = isInteger;
  if (multipleOf !== undefined) {
    // Only "a whole number" has an exact grammar; 0.01 is not even exact in ajv, which divides floats.
    if (multipleOf !== 1) throw new SchemaError("unsupported_keyword", "multipleOf", pointer, "");
    integer = true;
  }
  const bounds = {
    min: maxOf(schema.minimum as number | undefined, format?.min ?? undefined),
    isMinExclusive: false,
    max: minOf(schema.maximum as number | undefined, format?.max ?? undefined),
    isMaxExclusive: false,
  };
  const exclusiveMin = schema.exclusiveMinimum as number | undefined;
  if (exclusiveMin !== undefined && (bounds.min === null || exclusiveMin >= bounds.min)) {
    bounds.min = exclusiveMin;
    bounds.isMinExclusive = true;
  }
  const exclusiveMax = schema.exclusiveMaximum as number | undefined;
  if (exclusiveMax !== undefined && (bounds.max === null || exclusiveMax <= bounds.max)) {
    bounds.max = exclusiveMax;
    bounds.isMaxExclusive = true;
  }
  if (bounds.min === null && bounds.max === null) return integer ? context.rules.integer : context.rules.number;
  const gbnf = integer ? integerGbnf(bounds) : numberRangeGbnf(bounds);
  if (gbnf === null) {
    const keyword = bounds.min !== null ? (bounds.isMinExclusive ? "exclusiveMinimum" : "minimum") : "maximum";
    throw new SchemaError("invalid_schema", keyword, pointer, "no number within the bounds");
  }
  return context.builder.rule(integer ? "integer-range" : "number-range", gbnf, pointer);
}

function integerGbnf(bounds: {
  min: number | null;
  isMinExclusive: boolean;
  max: number | null;
  isMaxExclusive: boolean;
}) {
  const min = bounds.min === null ? null : bounds.isMinExclusive ? Math.floor(bounds.min) + 1 : Math.ceil(bounds.min);
  const max = bounds.max === null ? null : bounds.isMaxExclusive ? Math.ceil(bounds.max) - 1 : Math.floor(bounds.max);
  return integerRangeGbnf(min, max);
}

function maxOf(a: number | undefined, b: number | undefined): number | null {
  if (a === undefined) return b ?? null;
  return b === undefined ? a : Math.max(a, b);
}

function minOf(a: number | undefined, b: number | undefined): number | null {
  if (a === undefined) return b ?? null;
  return b === undefined ? a : Math.min(a, b);
}
