/**
 * GBNF for JSON numbers within bounds. A bounded number is written as `I` or `I.F` (no exponent: stricter than JSON
 * Schema, which allows `1e2`). Its value is in range when its integer part is strictly inside the bounds, or on a
 * bound with a fraction that keeps it inside. Fractional bounds are rounded inward to integers, a stricter range.
 *
 * Floating point: JSON.parse rounds to the nearest double, and rounding is monotonic, so an inclusive bound holds
 * for any fraction. An exclusive bound could be reached by rounding (`0.99999999999999999` parses to 1), so next
 * to an exclusive bound the fraction has at most 15 significant digits minus the bound's, far from the bound.
 */
import { integerRangeGbnf, MAX_GRAMMAR_INTEGER, MAX_INTEGER_DIGITS, nonNegativeRange } from "./integer-range.ts";

const FRACTION_DIGITS = 15;
const ANY_FRACTION = `("." [0-9]{1,${FRACTION_DIGITS}})?`;
const SIGNIFICANT_DIGITS = 15;

/** Any number the grammar writes: a bounded exponent keeps every value finite. */
export const NUMBER_GBNF = `"-"? ("0" | [1-9] [0-9]{0,${MAX_INTEGER_DIGITS - 1}}) ("." [0-9]{1,${FRACTION_DIGITS}})? ([eE] [-+]? [1-9] [0-9]?)?`;

export interface NumberBounds {
  readonly min: number | null;
  readonly isMinExclusive: boolean;
  readonly max: number | null;
  readonly isMaxExclusive: boolean;
}

/** Numbers within `bounds`; `null` when no number the grammar can write is within them. */
export function numberRangeGbnf(bounds: NumberBounds): string | null {
  const { min, max } = inwardIntegers(bounds);
  const isMinExclusive = min !== null && bounds.isMinExclusive && Number.isInteger(bounds.min);
  const isMaxExclusive = max !== null && bounds.isMaxExclusive && Number.isInteger(bounds.max);
  if ((min !== null && min > MAX_GRAMMAR_INTEGER) || (max !== null && max < -MAX_GRAMMAR_INTEGER)) return null;
  if (min !== null && max !== null && (min > max || (min === max && (isMinExclusive || isMaxExclusive)))) return null;
  const parts: string[] = [];
  if (max === null || max > 0 || (max === 0 && !isMaxExclusive)) {
    const isAboveZero = min !== null && min >= 0;
    const positive = nonNegativeDecimal(isAboveZero ? min : 0, isAboveZero && isMinExclusive, max, isMaxExclusive);
    if (positive !== "") parts.push(positive);
  }
  if (min === null || min < 0) {
    // x = -y: the bounds mirror; "-0" is 0, which is only wrong when 0 itself is excluded.
    const isBelowZero = max !== null && max <= 0;
    const negative = nonNegativeDecimal(
      isBelowZero ? -max : 0,
      isBelowZero && isMaxExclusive,
      min === null ? null : -min,
      isMinExclusive,
    );
    if (negative !== "") parts.push(`"-" (${negative})`);
  }
  return parts.length === 0 ? null : parts.join(" | ");
}

/** Integer bounds no wider than the given ones: a fractional minimum rounds up, a fractional maximum down. */
function inwardIntegers(bounds: NumberBounds): { min: number | null; max: number | null } {
  let min = bounds.min === null ? null : Math.ceil(bounds.min);
  let max = bounds.max === null ? null : Math.floor(bounds.max);
  // Beyond the digits the grammar writes a bound does not constrain; one that excludes them all is caught later.
  if (min !== null && min < -MAX_GRAMMAR_INTEGER) min = null;
  if (max !== null && max > MAX_GRAMMAR_INTEGER) max = null;
  if (min !== null && min > MAX_GRAMMAR_INTEGER) min = MAX_GRAMMAR_INTEGER + 1;
  if (max !== null && max < -MAX_GRAMMAR_INTEGER) max = -MAX_GRAMMAR_INTEGER - 1;
  return { min, max };
}

/** Decimals `I` or `I.F` with value in the interval from `a` to `b` (`a >= 0`), as alternatives. */
function nonNegativeDecimal(a: number, isAExclusive: boolean, b: number | null, isBExclusive: boolean): string {
  const alts: string[] = [];
  const lowAny = isAExclusive ? a + 1 : a;
  if (b === null) {
    alts.push(`(${nonNegativeRange(lowAny, null)}) ${ANY_FRACTION}`);
  } else {
    const highAny = isBExclusive ? b - 2 : b - 1;
    if (lowAny <= highAny) alts.push(`(${integerRangeGbnf(lowAny, highAny)}) ${ANY_FRACTION}`);
    if (isBExclusive && b - 1 >= lowAny) alts.push(`"${b - 1}"${shortFraction(b)}`);
    if (!isBExclusive && b >= lowAny) alts.push(`"${b}"`);
  }
  if (isAExclusive && (b === null || a < b)) {
    // I = a needs a non-zero fraction; ending it in [1-9] is a simple way to be sure it is not zero.
    const digits = shortFractionDigits(Math.max(a, b ?? a));
    if (digits > 0) alts.push(`"${a}" "." ${digits > 1 ? `[0-9]{0,${digits - 1}} ` : ""}[1-9]`);
  }
  return alts.join(" | ");
}

/** Digits a fraction next to an exclusive bound may have without rounding onto the bound. */
function shortFractionDigits(bound: number): number {
  return Math.max(0, SIGNIFICANT_DIGITS - String(Math.abs(bound)).length);
}

function shortFraction(bound: number): string {
  const digits = shortFractionDigits(bound);
  return digits === 0 ? "" : ` ("." [0-9]{1,${digits}})?`;
}
