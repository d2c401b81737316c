import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { PagodaError, toErrorBody } from "./errors.ts";

/** Maps anything thrown in a route to OpenAI's error envelope; nothing escapes as an HTML page or a crash. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: unknown, request: FastifyRequest, reply: FastifyReply) => {
    const pagodaError = toPagodaError(error);
    if (pagodaError.statusCode >= 500) request.log.error({ err: error }, pagodaError.message);
    if (pagodaError.retryAfterSeconds !== null) void reply.header("retry-after", String(pagodaError.retryAfterSeconds));
    return reply.status(pagodaError.statusCode).send(toErrorBody(pagodaError));
  });
  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const error = new PagodaError("PAGODA_ERR_ROUTE_NOT_FOUND", `Unknown route ${request.method} ${request.url.split("?")[0]}`);
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
      return new PagodaError("PAGODA_ERR_UNSUPPORTED_MEDIA_TYPE", "Content-Type must be application/json", { cause: error });
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return new PagodaError("PAGODA_ERR_INVALID_JSON", "Request body is empty; expected a JSON object", { cause: error });
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
