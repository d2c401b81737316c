/** Membership and enumeration of the code points a character class or `.` admits. */
import type { GbnfCharRange } from "./gbnf-ast.ts";

export const MAX_CODE_POINT = 0x10ffff;
const SURROGATES: GbnfCharRange = { start: 0xd800, end: 0xdfff };

export type CharElement =
  | { readonly kind: "char-class"; readonly isNegated: boolean; readonly ranges: readonly GbnfCharRange[] }
  | { readonly kind: "any-char" };

export function charSetContains(element: CharElement, codePoint: number): boolean {
  if (element.kind === "any-char") return true;
  let isInside = false;
  for (const range of element.ranges) {
    if (range.start <= codePoint && codePoint <= range.end) {
      isInside = true;
      break;
    }
  }
  return isInside !== element.isNegated;
}

/**
 * The admitted code points as sorted, disjoint, inclusive ranges, without surrogates (no valid UTF-8 text holds
 * them, so a model can never produce one).
 */
export function charSetRanges(element: CharElement): GbnfCharRange[] {
  const listed = element.kind === "any-char" ? [] : mergeRanges(element.ranges);
  const admitted = element.kind === "any-char" || element.isNegated ? complement(listed) : listed;
  return subtract(admitted, SURROGATES);
}

function mergeRanges(ranges: readonly GbnfCharRange[]): GbnfCharRange[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const merged: { start: number; end: number }[] = [];
  for (const range of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && range.start <= last.end + 1) last.end = Math.max(last.end, range.end);
    else merged.push({ start: range.start, end: range.end });
  }
  return merged;
}

function complement(sorted: readonly GbnfCharRange[]): GbnfCharRange[] {
  const result: GbnfCharRange[] = [];
  let next = 0;
  for (const range of sorted) {
    if (range.start > next) result.push({ start: next, end: range.start - 1 });
    next = Math.max(next, range.end + 1);
  }
  if (next <= MAX_CODE_POINT) result.push({ start: next, end: MAX_CODE_POINT });
  return result;
}

function subtract(sorted: readonly GbnfCharRange[], hole: GbnfCharRange): GbnfCharRange[] {
  const result: GbnfCharRange[] = [];
  for (const range of sorted) {
    if (range.end < hole.start || range.start > hole.end) {
      result.push(range);
      continue;
    }
    if (range.start < hole.start) result.push({ start: range.start, end: hole.start - 1 });
    if (range.end > hole.end) result.push({ start: hole.end + 1, end: range.end });
  }
  return result;
}

/** The part of `sorted` inside [start, end]. */
export function clipRanges(sorted: readonly GbnfCharRange[], start: number, end: number): GbnfCharRange[] {
  const result: GbnfCharRange[] = [];
  for (const range of sorted) {
    const clippedStart = Math.max(range.start, start);
    const clippedEnd = Math.min(range.end, end);
    if (clippedStart <= clippedEnd) result.push({ start: clippedStart, end: clippedEnd });
  }
  return result;
}
