/**
 * The one error the JSON Schema converter throws. A schema is refused, never served by a looser grammar, so every
 * refusal names the keyword and the JSON pointer of the subschema that holds it: the client can find and fix it.
 */

export type SchemaErrorCode =
  /** A keyword pagoda cannot enforce exactly in a grammar (`not`, `uniqueItems`, a lookahead in `pattern`, ...). */
  | "unsupported_keyword"
  /** The schema is malformed, or no JSON value satisfies it. */
  | "invalid_schema"
  /** A limit on schema size, nesting, grammar size or repetition was exceeded. */
  | "schema_too_large"
  /** A `$ref` points outside the document, at nothing, or loops without consuming input. */
  | "unresolvable_ref";

export class SchemaError extends Error {
  override readonly name = "SchemaError";
  readonly code: SchemaErrorCode;
  /** The keyword at fault, e.g. `uniqueItems`; for limits, the limit's name, e.g. `maxRules`. */
  readonly keyword: string;
  /** JSON pointer (RFC 6901) of the subschema holding the keyword; `""` is the root. */
  readonly pointer: string;

  constructor(code: SchemaErrorCode, keyword: string, pointer: string, detail: string, options?: { cause?: unknown }) {
    super(
      `${describe(code, keyword)} at ${pointer === "" ? "/" : pointer}${detail === "" ? "" : `: ${detail}`}`,
      options,
    );
    this.code = code;
    this.keyword = keyword;
    this.pointer = pointer;
  }
}

function describe(code: SchemaErrorCode, keyword: string): string {
  switch (code) {
    case "unsupported_keyword":
      return `unsupported keyword "${keyword}"`;
    case "invalid_schema":
      return `invalid schema keyword "${keyword}"`;
    case "schema_too_large":
      return `schema too large (${keyword})`;
    case "unresolvable_ref":
      return `unresolvable "${keyword}"`;
  }
}
