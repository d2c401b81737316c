/**
 * `format` values pagoda can enforce, each as a regular expression (anchored, ECMAScript syntax) for the string.
 * Each is a subset of what ajv-formats accepts in its "full" mode, chosen so a model can still write every
 * ordinary value: dates check the days of each month and leap years as ajv does, e-mail addresses and URLs are
 * the common shapes of bounded length, IPv6 is the eight-group form. Being regular, a format combines exactly with
 * a `pattern` or length bounds (see regex-automaton.ts).
 */

const DAY31 = "(?:0[1-9]|[12]\\d|3[01])";
const DAY30 = "(?:0[1-9]|[12]\\d|30)";
const DAY28 = "(?:0[1-9]|1\\d|2[0-8])";
// Divisible by 4 and not by 100, or by 400 (RFC 3339 appendix C, as ajv-formats checks it).
const LEAP_YEAR = "(?:\\d\\d(?:[02468][48]|[13579][26]|[2468]0)|(?:[02468][048]|[13579][26])00)";
const DATE = `(?:\\d{4}-(?:(?:0[13578]|1[02])-${DAY31}|(?:0[469]|11)-${DAY30}|02-${DAY28})|${LEAP_YEAR}-02-29)`;
const HOUR = "(?:[01]\\d|2[0-3])";
// ajv-formats' "time" requires a time zone; fractions of a second are bounded here to microseconds.
const TIME = `${HOUR}:[0-5]\\d:[0-5]\\d(?:\\.\\d{1,6})?(?:Z|[+\\-]${HOUR}:[0-5]\\d)`;
const HEX = "[0-9a-fA-F]";
const LABEL = "[a-zA-Z0-9](?:[a-zA-Z0-9\\-]{0,20}[a-zA-Z0-9])?";
const LOCAL_PART = "[a-zA-Z0-9_+\\-]{1,32}";
const OCTET = "(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
// A web URL: what ajv-formats' uri, uri-reference and url all accept (url wants a letters-only top-level domain).
const URL =
  "https?:\\/\\/[a-zA-Z0-9]{1,20}(?:\\.[a-zA-Z0-9]{1,20}){0,2}\\.[a-zA-Z]{2,10}(?:\\/[a-zA-Z0-9\\-._~!$&'()*+,;=:@\\/?]{0,100})?";
const N = "\\d{1,4}";
const DURATION = `P(?:(?:${N}Y)?(?:${N}M)?${N}D(?:T${N}H(?:${N}M)?)?|T${N}H(?:${N}M)?(?:${N}S)?|${N}W)`;
const B64 = "[A-Za-z0-9+\\/]";

const EMAIL = `${LOCAL_PART}(?:\\.${LOCAL_PART}){0,2}@${LABEL}(?:\\.${LABEL}){0,2}\\.[a-zA-Z]{2,10}`;
const HOSTNAME = `${LABEL}(?:\\.${LABEL}){0,3}`;

/** Regular expressions by format name; `null` for formats that accept any string (ajv-formats: password, binary). */
export const STRING_FORMATS: ReadonlyMap<string, string | null> = new Map<string, string | null>([
  ["date", DATE],
  ["time", TIME],
  ["iso-time", TIME],
  ["date-time", `${DATE}T${TIME}`],
  ["iso-date-time", `${DATE}T${TIME}`],
  ["duration", DURATION],
  ["uuid", `${HEX}{8}-${HEX}{4}-${HEX}{4}-${HEX}{4}-${HEX}{12}`],
  ["email", EMAIL],
  ["idn-email", EMAIL],
  ["hostname", HOSTNAME],
  ["idn-hostname", HOSTNAME],
  ["ipv4", `${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}`],
  ["ipv6", `${HEX}{1,4}(?::${HEX}{1,4}){7}`],
  ["uri", URL],
  ["uri-reference", URL],
  ["iri", URL],
  ["iri-reference", URL],
  ["url", URL],
  ["byte", `(?:${B64}{4})*(?:${B64}{2}==|${B64}{3}=)?`],
  ["password", null],
  ["binary", null],
]);

/** Formats of numbers; ajv-formats checks int32 as a range and accepts any int64, float or double. */
export const NUMBER_FORMATS: ReadonlyMap<string, { readonly min: number | null; readonly max: number | null }> =
  new Map([
    ["int32", { min: -(2 ** 31), max: 2 ** 31 - 1 }],
    ["int64", { min: null, max: null }],
    ["float", { min: null, max: null }],
    ["double", { min: null, max: null }],
  ]);
