/**
 * One catalogue of coded errors. Every error a client can see is one of these, mapped by the error handler to
 * OpenAI's envelope `{ error: { message, type, param, code } }`.
 */

export type OpenAiErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "not_found_error"
  | "rate_limit_error"
  /** OpenAI's type on a 429 for too many requests per time window. */
  | "requests"
  | "server_error"
  | "service_unavailable";

interface ErrorDefinition {
  readonly statusCode: number;
  readonly type: OpenAiErrorType;
  /** The OpenAI `code` field; null where OpenAI sends none. */
  readonly openAiCode: string | null;
}

export const ERROR_CATALOGUE = {
  PAGODA_ERR_INVALID_REQUEST: { statusCode: 400, type: "invalid_request_error", openAiCode: null },
  PAGODA_ERR_INVALID_JSON: { statusCode: 400, type: "invalid_request_error", openAiCode: "invalid_json" },
  PAGODA_ERR_CONTEXT_LENGTH: { statusCode: 400, type: "invalid_request_error", openAiCode: "context_length_exceeded" },
  PAGODA_ERR_UNSUPPORTED: { statusCode: 400, type: "invalid_request_error", openAiCode: "unsupported_parameter" },
  // A schema or grammar pagoda cannot enforce exactly, or one past its compile limits: refused, never loosened.
  PAGODA_ERR_INVALID_CONSTRAINT: { statusCode: 400, type: "invalid_request_error", openAiCode: "invalid_constraint" },
  // The server's own limits (--max-n, --max-tokens-limit, --max-stop-length), worded and coded as OpenAI words its own.
  PAGODA_ERR_ABOVE_MAX_VALUE: { statusCode: 400, type: "invalid_request_error", openAiCode: "integer_above_max_value" },
  PAGODA_ERR_ABOVE_MAX_LENGTH: {
    statusCode: 400,
    type: "invalid_request_error",
    openAiCode: "string_above_max_length",
  },
  PAGODA_ERR_ARRAY_ABOVE_MAX_LENGTH: {
    statusCode: 400,
    type: "invalid_request_error",
    openAiCode: "array_above_max_length",
  },
  // OpenAI answers a missing key with code null and a wrong one with invalid_api_key, both 401 invalid_request_error.
  PAGODA_ERR_MISSING_API_KEY: { statusCode: 401, type: "invalid_request_error", openAiCode: null },
  PAGODA_ERR_INVALID_API_KEY: { statusCode: 401, type: "invalid_request_error", openAiCode: "invalid_api_key" },
  PAGODA_ERR_MODEL_NOT_FOUND: { statusCode: 404, type: "invalid_request_error", openAiCode: "model_not_found" },
  PAGODA_ERR_ROUTE_NOT_FOUND: { statusCode: 404, type: "invalid_request_error", openAiCode: "unknown_url" },
  PAGODA_ERR_METHOD_NOT_ALLOWED: { statusCode: 405, type: "invalid_request_error", openAiCode: "method_not_allowed" },
  PAGODA_ERR_BODY_TOO_LARGE: { statusCode: 413, type: "invalid_request_error", openAiCode: "request_too_large" },
  PAGODA_ERR_UNSUPPORTED_MEDIA_TYPE: {
    statusCode: 415,
    type: "invalid_request_error",
    openAiCode: "unsupported_media_type",
  },
  PAGODA_ERR_QUEUE_FULL: { statusCode: 429, type: "rate_limit_error", openAiCode: "queue_full" },
  PAGODA_ERR_RATE_LIMITED: { statusCode: 429, type: "requests", openAiCode: "rate_limit_exceeded" },
  PAGODA_ERR_ENGINE: { statusCode: 500, type: "server_error", openAiCode: "engine_error" },
  PAGODA_ERR_INTERNAL: { statusCode: 500, type: "server_error", openAiCode: "internal_error" },
  PAGODA_ERR_UNAVAILABLE: { statusCode: 503, type: "service_unavailable", openAiCode: "service_unavailable" },
  PAGODA_ERR_REQUEST_TIMEOUT: { statusCode: 504, type: "server_error", openAiCode: "request_timeout" },
} as const satisfies Record<string, ErrorDefinition>;

export type PagodaErrorCode = keyof typeof ERROR_CATALOGUE;

export interface PagodaErrorOptions {
  /** The request field at fault, as OpenAI's `param`. */
  readonly param?: string | null;
  readonly cause?: unknown;
  /** Seconds a client should wait before retrying (429 and 503). */
  readonly retryAfterSeconds?: number;
}

export class PagodaError extends Error {
  override readonly name = "PagodaError";
  readonly code: PagodaErrorCode;
  readonly statusCode: number;
  readonly type: OpenAiErrorType;
  readonly openAiCode: string | null;
  readonly param: string | null;
  readonly retryAfterSeconds: number | null;

  constructor(code: PagodaErrorCode, message: string, options: PagodaErrorOptions = {}) {
    super(message, { cause: options.cause });
    const definition: ErrorDefinition = ERROR_CATALOGUE[code];
    this.code = code;
    this.statusCode = definition.statusCode;
    this.type = definition.type;
    this.openAiCode = definition.openAiCode;
    this.param = options.param ?? null;
    this.retryAfterSeconds = options.retryAfterSeconds ?? null;
  }
}

export interface OpenAiErrorBody {
  error: { message: string; type: OpenAiErrorType; param: string | null; code: string | null };
}

export function toErrorBody(error: PagodaError): OpenAiErrorBody {
  return { error: { message: error.message, type: error.type, param: error.param, code: error.openAiCode } };
}
