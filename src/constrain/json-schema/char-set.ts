/**
 * Sets of Unicode code points as sorted, disjoint, non-adjacent ranges, and their GBNF: either as raw characters
 * (a regex over the whole output) or as they must be written inside a JSON string, where `"`, `\` and control
 * characters only appear escaped.
 */
import { alternatives, classChar, gbnfLiteral } from "./gbnf-builder.ts";

export type CharRange = readonly [number, number];
export type CharSet = readonly CharRange[];

export const MAX_CODE_POINT = 0x10ffff;
const SURROGATES: CharRange = [0xd800, 0xdfff];

export function charSetOf(ranges: readonly CharRange[]): CharSet {
  const sorted = ranges.filter(([lo, hi]) => lo <= hi).sort((a, b) => a[0] - b[0]);
  const merged: [number, number][] = [];
  for (const [lo, hi] of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else merged.push([lo, hi]);
  }
  return merged;
}

export function union(a: CharSet, b: CharSet): CharSet {
  return charSetOf([...a, ...b]);
}

export function complement(set: CharSet): CharSet {
  const out: CharRange[] = [];
  let next = 0;
  for (const [lo, hi] of set) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= MAX_CODE_POINT) out.push([next, MAX_CODE_POINT]);
  return out;
}

export function subtract(a: CharSet, b: CharSet): CharSet {
  return complement(union(complement(a), b));
}

export function intersect(a: CharSet, b: CharSet): CharSet {
  return complement(union(complement(a), complement(b)));
}

export function hasChar(set: CharSet, code: number): boolean {
  return set.some(([lo, hi]) => lo <= code && code <= hi);
}

export function isEmptySet(set: CharSet): boolean {
  return set.length === 0;
}

/** Code points a model can emit: the surrogate halves never appear in UTF-8 text. */
const EMITTABLE = complement([SURROGATES]);
/** What JSON forbids unescaped inside a string. */
const NEEDS_ESCAPE = charSetOf([
  [0x00, 0x1f],
  [0x22, 0x22],
  [0x5c, 0x5c],
]);
const SHORT_ESCAPES = new Map<number, string>([
  [0x08, "\\b"],
  [0x09, "\\t"],
  [0x0a, "\\n"],
  [0x0c, "\\f"],
  [0x0d, "\\r"],
  [0x22, '\\"'],
  [0x5c, "\\\\"],
]);

/** GBNF for one character of `set` written raw, as a regex over the output means it. */
export function rawCharGbnf(set: CharSet): string {
  return classGbnf(intersect(set, EMITTABLE), []);
}

/**
 * GBNF for one character of `set` as JSON writes it inside a string. Each character has one spelling: raw where
 * JSON allows it, else the short escape or `\u00XX`; a model that spells `/` as `\/` is refused, which is stricter
 * than JSON and never looser.
 */
export function jsonCharGbnf(set: CharSet): string {
  const raw = subtract(intersect(set, EMITTABLE), NEEDS_ESCAPE);
  const parts: string[] = [];
  if (raw.length > 0) parts.push(classGbnf(raw, NEEDS_ESCAPE));
  for (const [lo, hi] of intersect(set, NEEDS_ESCAPE)) {
    for (let code = lo; code <= hi; code++) {
      parts.push(gbnfLiteral(SHORT_ESCAPES.get(code) ?? `\\u00${code.toString(16).toUpperCase().padStart(2, "0")}`));
    }
  }
  return alternatives(parts);
}

/**
 * A positive or negated class, whichever is shorter; `excluded` is left out of the negated form too. Surrogates
 * never occur in UTF-8 text, so a negated class need not exclude them.
 */
function classGbnf(set: CharSet, excluded: CharSet): string {
  const positive = `[${rangesText(set)}]`;
  const negatedRanges = intersect(union(complement(set), excluded), EMITTABLE);
  const negated = `[^${rangesText(negatedRanges)}]`;
  return negated.length < positive.length ? negated : positive;
}

function rangesText(set: CharSet): string {
  return set
    .map(([lo, hi]) =>
      lo === hi ? classChar(lo) : hi === lo + 1 ? classChar(lo) + classChar(hi) : `${classChar(lo)}-${classChar(hi)}`,
    )
    .join("");
}
