/**
 * The one error tool definitions and tool choices raise. Every refusal names the request field at fault as
 * OpenAI's `param` (`tools[3].function.parameters`), and for schema refusals also the keyword and where it is, so
 * the client can find and fix it. The server maps these onto its error catalogue; all are the client's fault (400).
 */

export type ToolErrorCode =
  /** `tools` is not a list of function definitions, or is empty where a call is required. */
  | "PAGODA_ERR_TOOL_INVALID"
  /** A name outside `^[a-zA-Z0-9_-]{1,64}$`, as OpenAI checks it. */
  | "PAGODA_ERR_TOOL_INVALID_NAME"
  | "PAGODA_ERR_TOOL_DUPLICATE_NAME"
  /** `tool_choice` names a function that is not in `tools`. */
  | "PAGODA_ERR_TOOL_UNKNOWN_CHOICE"
  /** `parameters` is not a JSON schema for an object, or is malformed. */
  | "PAGODA_ERR_TOOL_INVALID_PARAMETERS"
  /** `parameters` uses a keyword the grammar cannot enforce exactly. */
  | "PAGODA_ERR_TOOL_UNSUPPORTED_SCHEMA"
  /** Too many tools, or the combined grammar would pass its size limits. */
  | "PAGODA_ERR_TOOL_LIMIT";

export interface ToolErrorOptions {
  /** The request field at fault, e.g. `tools[3].function.parameters`. */
  readonly param?: string | null;
  /** For schema refusals, the keyword at fault (`uniqueItems`), or the limit's name (`maxRules`). */
  readonly keyword?: string | null;
  /** For schema refusals, the JSON pointer inside `parameters` of the subschema holding the keyword. */
  readonly pointer?: string | null;
  readonly cause?: unknown;
}

export class ToolError extends Error {
  override readonly name = "ToolError";
  readonly code: ToolErrorCode;
  readonly statusCode = 400;
  readonly param: string | null;
  readonly keyword: string | null;
  readonly pointer: string | null;

  constructor(code: ToolErrorCode, message: string, options: ToolErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.param = options.param ?? null;
    this.keyword = options.keyword ?? null;
    this.pointer = options.pointer ?? null;
  }
}
