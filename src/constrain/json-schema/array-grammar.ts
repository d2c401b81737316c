/**
 * Grammar for arrays: tuple positions (`prefixItems`, or the array form of `items`) first, then the schema for the
 * rest (canonically `additionalItems`, see normalize-schema.ts), with `minItems`/`maxItems` counted exactly. A `maxItems` beyond the repetition limit is lowered to it
 * (stricter); `uniqueItems` is refused unless at most one item can be written.
 */
import { sequence } from "./gbnf-builder.ts";
import type { GrammarContext } from "./grammar-context.ts";
import { childPointer } from "./json-pointer.ts";
import type { NormalSchema } from "./normalize-schema.ts";
import { SchemaError } from "./schema-error.ts";

export function arrayGrammar(schema: NormalSchema, pointer: string, depth: number, context: GrammarContext): string {
  const { builder, rules, limits } = context;
  const ws = rules.ws;
  const prefix = (schema.prefixItems as unknown[] | undefined) ?? [];
  const items = prefix.length > 0 ? schema.additionalItems : schema.items;
  const minItems = (schema.minItems as number | undefined) ?? 0;
  let maxItems = (schema.maxItems as number | undefined) ?? null;
  if (items === false) maxItems = Math.min(maxItems ?? prefix.length, prefix.length);
  const firstFalse = prefix.indexOf(false);
  if (firstFalse !== -1) maxItems = Math.min(maxItems ?? firstFalse, firstFalse);
  if (maxItems !== null && minItems > maxItems) {
    throw new SchemaError("invalid_schema", "minItems", pointer, "no array length satisfies the schema");
  }
  if (schema.uniqueItems === true && (maxItems === null || maxItems > 1)) {
    throw new SchemaError("unsupported_keyword", "uniqueItems", pointer, "items cannot be kept distinct by a grammar");
  }
  if (schema.unevaluatedItems !== undefined && schema.unevaluatedItems !== true && items === undefined) {
    if (maxItems === null || maxItems > prefix.length) {
      throw new SchemaError("unsupported_keyword", "unevaluatedItems", pointer, "");
    }
  }
  if (minItems > prefix.length + limits.maxRepetition) {
    const limit = prefix.length + limits.maxRepetition;
    throw new SchemaError(
      "schema_too_large",
      "minItems",
      pointer,
      `minItems ${minItems} exceeds the limit of ${limit}`,
    );
  }
  if (maxItems !== null && maxItems > prefix.length + limits.maxRepetition) {
    maxItems = Math.max(minItems, prefix.length + limits.maxRepetition);
  }
  const separator = `"," ${ws}`;
  const numTuple = Math.min(prefix.length, maxItems ?? prefix.length);

  let item = "";
  const needsItems = maxItems === null || maxItems > numTuple;
  if (needsItems) item = context.child(items ?? true, childPointer(pointer, "items"), depth + 1);
  const element = item === "" ? "" : sequence([item, ws]);
  const hintRepeat = (k: number) => (k === 0 ? "items" : "more-items");

  /** Items after the first `k`, all from `items`. */
  const restAfter = (k: number): string => {
    if (!needsItems) return "";
    const low = Math.max(0, minItems - k);
    const high = maxItems === null ? null : maxItems - k;
    if (k > 0) return builder.repeat(`${separator} ${element}`, low, high, hintRepeat(k), pointer, "minItems");
    if (high === 0) return "";
    const more = builder.repeat(
      `${separator} ${element}`,
      Math.max(0, low - 1),
      high === null ? null : high - 1,
      "more-items",
      pointer,
      "minItems",
    );
    const body = sequence([element, more]);
    return low === 0 ? `(${body})?` : body;
  };

  let body = restAfter(numTuple);
  for (let k = numTuple - 1; k >= 0; k--) {
    const value = context.child(prefix[k], childPointer(pointer, "prefixItems", k), depth + 1);
    const positioned = sequence([k === 0 ? "" : separator, value, ws, body]);
    const tuple = builder.rule(`tuple-${k}`, positioned, pointer);
    body = k < minItems ? tuple : `${tuple}?`;
  }
  return builder.rule("array", sequence([`"[" ${ws}`, body, '"]"']), pointer);
}
