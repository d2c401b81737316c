/**
 * GBNF for decimal integers within bounds, digit by digit, the way llama.cpp's `_generate_min_max_int` does it:
 * numbers of each length get their own alternative, and within one length the first digit that differs between
 * the bounds splits the range into "low edge", "anything in between" and "high edge". Integers are written
 * canonically (no leading zeros, no "+"), at most `MAX_INTEGER_DIGITS` digits: below 2^53, so JSON.parse reads
 * them exactly.
 */

export const MAX_INTEGER_DIGITS = 15;
export const MAX_GRAMMAR_INTEGER = 10 ** MAX_INTEGER_DIGITS - 1;

/** Any integer the grammar writes, with an optional minus sign. */
export const INTEGER_GBNF = `"-"? ("0" | [1-9] [0-9]{0,${MAX_INTEGER_DIGITS - 1}})`;

/**
 * Integers in `[lo, hi]` (either may be null: unbounded up to `MAX_INTEGER_DIGITS` digits); `null` when there are
 * none. Bounds must be integers; callers round fractional ones inward.
 */
export function integerRangeGbnf(lo: number | null, hi: number | null): string | null {
  const low = lo === null || lo < -MAX_GRAMMAR_INTEGER ? null : lo;
  const high = hi === null || hi > MAX_GRAMMAR_INTEGER ? null : hi;
  if (low !== null && high !== null && low > high) return null;
  if (low !== null && low > MAX_GRAMMAR_INTEGER) return null;
  if (high !== null && high < -MAX_GRAMMAR_INTEGER) return null;
  const parts: string[] = [];
  if (low === null || low < 0) {
    // Negative values -y with y from the smallest magnitude allowed up to -low.
    const smallest = high !== null && high < 0 ? -high : 1;
    parts.push(`"-" (${nonNegativeRange(smallest, low === null ? null : -low)})`);
  }
  if (high === null || high >= 0) parts.push(nonNegativeRange(Math.max(0, low ?? 0), high));
  return parts.join(" | ");
}

/** Canonical decimals of the integers in `[a, b]`, `a >= 0`, `b` null for "up to the digit limit". */
export function nonNegativeRange(a: number, b: number | null): string {
  const alts: string[] = [];
  const aDigits = String(a).length;
  const bDigits = b === null ? MAX_INTEGER_DIGITS : String(b).length;
  for (let digits = aDigits; digits <= bDigits; digits++) {
    const low = digits === aDigits ? a : 10 ** (digits - 1);
    const high = b !== null && digits === bDigits ? b : 10 ** digits - 1;
    if (b === null && digits > aDigits) {
      // Every longer number is in range: one alternative for all remaining lengths.
      alts.push(`[1-9] [0-9]{${digits - 1},${MAX_INTEGER_DIGITS - 1}}`);
      break;
    }
    alts.push(sameLengthRange(String(low), String(high)));
  }
  return alts.join(" | ");
}

/** Digit strings of one length between `low` and `high` inclusive. */
function sameLengthRange(low: string, high: string): string {
  if (low === high) return `"${low}"`;
  let i = 0;
  while (low[i] === high[i]) i++;
  const prefix = i > 0 ? `"${low.slice(0, i)}" ` : "";
  const first = Number(low[i]);
  const last = Number(high[i]);
  const restLow = low.slice(i + 1);
  const restHigh = high.slice(i + 1);
  const n = restLow.length;
  if (n === 0) return `${prefix}${digitClass(first, last)}`;
  const isLowEdgeFull = /^0*$/.test(restLow);
  const isHighEdgeFull = /^9*$/.test(restHigh);
  const alts: string[] = [];
  if (!isLowEdgeFull) alts.push(`"${first}" (${sameLengthRange(restLow, "9".repeat(n))})`);
  const middleFrom = isLowEdgeFull ? first : first + 1;
  const middleTo = isHighEdgeFull ? last : last - 1;
  if (middleFrom <= middleTo) alts.push(`${digitClass(middleFrom, middleTo)} [0-9]${n === 1 ? "" : `{${n}}`}`);
  if (!isHighEdgeFull) alts.push(`"${last}" (${sameLengthRange("0".repeat(n), restHigh)})`);
  const body = alts.length === 1 ? (alts[0] ?? "") : `(${alts.join(" | ")})`;
  return `${prefix}${body}`;
}

function digitClass(from: number, to: number): string {
  return from === to ? `"${from}"` : `[${from}-${to}]`;
}
