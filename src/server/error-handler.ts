import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import type { RejectionReason } from "../metrics/server-metrics.ts";
import { type OpenAiErrorBody, PagodaError, type PagodaErrorCode, toErrorBody } from "./errors.ts";

const REJECTION_REASONS: Partial<Record<PagodaErrorCode, RejectionReason>> = {
  PAGODA_ERR_QUEUE_FULL: "queue_full",
  PAGODA_ERR_RATE_LIMITED: "rate_limited",
  PAGODA_ERR_MISSING_API_KEY: "unauthorized",
  PAGODA_ERR_INVALID_API_KEY: "unauthorized",
  PAGODA_ERR_ABOVE_MAX_VALUE: "limit_exceeded",
  PAGODA_ERR_ABOVE_MAX_LENGTH: "limit_exceeded",
  PAGODA_ERR_ARRAY_ABOVE_MAX_LENGTH: "limit_exceeded",
};

export interface ErrorHandlerOptions {
  /** Told about every request refused before it reached the engine (metrics). */
  readonly onRejection?: (reason: RejectionReason) => void;
}

/** Maps anything thrown in a route to OpenAI's error envelope; nothing escapes as an HTML page or a crash. */
export function installErrorHandlers(app: FastifyInstance, options: ErrorHandlerOptions = {}): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const pagodaError = toPagodaError(error);
    if (pagodaError.statusCode >= 500) request.log.error({ err: error }, pagodaError.message);
    if (pagodaError.retryAfterSeconds !== null) void reply.header("retry-after", String(pagodaError.retryAfterSeconds));
    // RFC 6750: a 401 names the scheme the client should use.
    if (pagodaError.statusCode === 401) void reply.header("www-authenticate", "Bearer");
    const reason = REJECTION_REASONS[pagodaError.code];
    if (reason !== undefined) options.onRejection?.(reason);
    return reply.status(pagodaError.statusCode).send(toErrorBody(pagodaError));
  });
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const error = new PagodaError(
      "PAGODA_ERR_ROUTE_NOT_FOUND",
      `Unknown route ${request.method} ${request.url.split("?")[0]}`,
    );
    return reply.status(error.statusCode).send(toErrorBody(error));
  });
}

export function toPagodaError(error: unknown): PagodaError {
  if (error instanceof PagodaError) return error;
  if (hasZodFastifySchemaValidationErrors(error)) {
    const issues = error.validation;
    const first = issues[0];
    const param = first === undefined ? null : toParam(first.instancePath) || null;
    const message = issues
      .slice(0, 5)
      .map((issue) => `${toParam(issue.instancePath) || "body"}: ${issue.message}`)
      .join("; ");
    return new PagodaError("PAGODA_ERR_INVALID_REQUEST", `Invalid request: ${message}`, { param, cause: error });
  }
  const fastifyError = error as Partial<FastifyError>;
  switch (fastifyError.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return new PagodaError("PAGODA_ERR_BODY_TOO_LARGE", "Request body is too large", { cause: error });
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return new PagodaError("PAGODA_ERR_UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json", {
        cause: error,
      });
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new PagodaError("PAGODA_ERR_INVALID_JSON", "Request body is empty; expected a JSON object", {
        cause: error,
      });
    case "FST_ERR_CTP_INVALID_CONTENT_LENGTH":
      return new PagodaError("PAGODA_ERR_INVALID_REQUEST", "Content-Length does not match the body", { cause: error });
    default:
      break;
  }
  if (error instanceof SyntaxError || fastifyError.statusCode === 400) {
    const detail = error instanceof Error ? error.message : "malformed request";
    return new PagodaError("PAGODA_ERR_INVALID_JSON", `Could not parse the request: ${detail}`, { cause: error });
  }
  if (typeof fastifyError.statusCode === "number" && fastifyError.statusCode >= 400 && fastifyError.statusCode < 500) {
    return new PagodaError("PAGODA_ERR_INVALID_REQUEST", fastifyError.message ?? "Bad request", { cause: error });
  }
  return new PagodaError("PAGODA_ERR_INTERNAL", "Internal server error", { cause: error });
}

/** "/messages/0/role" → "messages[0].role", the form OpenAI uses in `param`. */
function toParam(instancePath: string): string {
  return instancePath
    .split("/")
    .filter((part) => part.length > 0)
    .map((part, index) => (/^\d+$/.test(part) ? `[${part}]` : index === 0 ? part : `.${part}`))
    .join("");
}

/**
 * Answers what Node's HTTP parser refuses before Fastify sees a request (a malformed request line or header,
 * headers over the size limit, a client too slow to send its request) in OpenAI's envelope, then closes the
 * connection as Node and Fastify do: the byte stream can no longer be trusted to frame a next request.
 */
export function clientErrorHandler(error: NodeJS.ErrnoException, socket: Duplex): void {
  // A reset connection has nobody to answer.
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const [status, code, message] =
    error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? [408, "request_timeout", "The request was not received in time"]
      : error.code === "HPE_HEADER_OVERFLOW"
        ? [431, "request_header_fields_too_large", "The request headers are too large"]
        : [400, "invalid_request", "Malformed HTTP request"];
  // Never interleave with a response already under way on this connection (Node's own rule).
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && inFlight?.headersSent !== true) {
    const body: OpenAiErrorBody = { error: { message, type: "invalid_request_error", param: null, code } };
    const text = JSON.stringify(body);
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}\r\nConnection: close\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
    );
  }
  socket.destroy(error);
}
