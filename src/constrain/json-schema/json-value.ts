/** JSON values: equality as JSON Schema's `enum` and `const` mean it, and types as `type` means them. */
import type { JsonType } from "./keywords.ts";

/** Deep equality of JSON values; object key order does not matter, and 1 equals 1.0. */
export function jsonEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => jsonEquals(item, b[i]));
  }
  const aEntries = Object.entries(a);
  const bRecord = b as Record<string, unknown>;
  return (
    aEntries.length === Object.keys(bRecord).length &&
    aEntries.every(([key, value]) => Object.hasOwn(bRecord, key) && jsonEquals(value, bRecord[key]))
  );
}

/** The JSON Schema types a value has: an integer-valued number is both "integer" and "number". */
export function typesOf(value: unknown): readonly JsonType[] {
  if (value === null) return ["null"];
  if (typeof value === "boolean") return ["boolean"];
  if (typeof value === "string") return ["string"];
  if (typeof value === "number") return Number.isInteger(value) ? ["integer", "number"] : ["number"];
  if (Array.isArray(value)) return ["array"];
  return ["object"];
}

/** `value` as compact JSON; undefined for what JSON cannot hold (functions, non-finite numbers). */
export function toJsonText(value: unknown): string | undefined {
  if (typeof value === "number" && !Number.isFinite(value)) return undefined;
  return JSON.stringify(value);
}
