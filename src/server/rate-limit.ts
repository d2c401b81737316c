/**
 * Per-client request rate limit (`--rate-limit` requests per `--rate-limit-window-seconds`) with
 * @fastify/rate-limit: one fixed window per API key, or per client IP when the server has no keys. Answers 429 in
 * OpenAI's envelope (`type: "requests"`, `code: "rate_limit_exceeded"`) with Retry-After in seconds.
 */
import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyRequest } from "fastify";
import { PagodaError } from "./errors.ts";

export interface RateLimitOptions {
  /** Requests per window and client. */
  readonly maxRequests: number;
  readonly windowMs: number;
  /** Routes (as registered) never counted: health checks and scrapes must not be starved by traffic. */
  readonly exemptRoutes: readonly string[];
}

/** How many clients the in-memory store tracks; the least recently seen beyond this start a fresh window. */
const MAX_TRACKED_CLIENTS = 10_000;

function clientKey(request: FastifyRequest): string {
  return request.apiKeyId ?? `ip-${request.ip}`;
}

/** Registers the limiter; call it before the routes, since it attaches itself to each route as it is added. */
export async function registerRateLimit(app: FastifyInstance, options: RateLimitOptions): Promise<void> {
  const exempt = new Set(options.exemptRoutes);
  const windowSeconds = Math.round(options.windowMs / 1000);
  await app.register(rateLimit, {
    global: true,
    max: options.maxRequests,
    timeWindow: options.windowMs,
    cache: MAX_TRACKED_CLIENTS,
    // A route-level onRequest hook: it runs after the app-level API-key check, so it can count per key.
    hook: "onRequest",
    keyGenerator: clientKey,
    allowList: (request) => exempt.has(request.routeOptions.url ?? ""),
    errorResponseBuilder: (request, context) => {
      const retryAfterSeconds = Math.max(1, Math.ceil(context.ttl / 1000));
      const per = request.apiKeyId === null ? "client address" : "API key";
      return new PagodaError(
        "PAGODA_ERR_RATE_LIMITED",
        `Rate limit reached for this ${per}: limit ${context.max} requests per ${windowSeconds} s. Please try again in ${retryAfterSeconds} s.`,
        { retryAfterSeconds },
      );
    },
  });
}
