/**
 * `buildApp` assembles the Fastify application and never listens; `main.ts` listens. Tests call `inject()`.
 */
import { randomUUID } from "node:crypto";
import cors from "@fastify/cors";
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from "fastify";
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { Registry } from "prom-client";
import { ConstraintCompiler } from "../constrain/constraint-compiler.ts";
import { ServerMetrics } from "../metrics/server-metrics.ts";
import { installAuth } from "./auth.ts";
import { trackConnections } from "./connection-tracker.ts";
import { clientErrorHandler, installErrorHandlers } from "./error-handler.ts";
import { PagodaError } from "./errors.ts";
import type { Generation } from "./generation.ts";
import { PooledRequests } from "./pooled-requests.ts";
import { registerRateLimit } from "./rate-limit.ts";
import { DEFAULT_REQUEST_LIMITS, type RequestLimits } from "./request-limits.ts";
import type { RouteOptions } from "./route-context.ts";
import { chatCompletionsRoute } from "./routes/chat-completions.ts";
import { completionsRoute } from "./routes/completions.ts";
import { embeddingsRoute } from "./routes/embeddings.ts";
import { modelsRoute } from "./routes/models.ts";
import { planRoute } from "./routes/plan.ts";
import { rerankRoute } from "./routes/rerank.ts";
import { tokenizeRoute } from "./routes/tokenize.ts";
import type { ServingState } from "./serving-state.ts";

declare module "fastify" {
  interface FastifyRequest {
    /** The generation this request started, for the access log line. */
    generation: Generation | null;
  }
  interface FastifyInstance {
    /** This app's own metrics registry; never prom-client's global one. */
    metricsRegistry: Registry;
    /** Feeds the registry; the engine loop's stats hooks call into it. */
    serverMetrics: ServerMetrics;
  }
}

export interface AppDeps {
  readonly serving: ServingState;
  /** Defaults to no logging. */
  readonly logger?: FastifyBaseLogger;
  /** Base seed for requests without one. Defaults to null: a random seed per request. */
  readonly serverSeed?: number | null;
  /** Defaults to 8 MiB: a 128k-token prompt is about half a megabyte of JSON. */
  readonly bodyLimitBytes?: number;
  /** The generator answers `/v1/embeddings` and the rerank routes. Defaults to true. */
  readonly isEmbeddingsEnabled?: boolean;
  /** Models are served beside the generator for embeddings or reranking: their routes are served either way. */
  readonly hasPooledModels?: boolean;
  /** How long a close lets running requests finish before failing them with 503. Defaults to 30 s. */
  readonly shutdownGraceMs?: number;
  /** Keys clients must send as `Authorization: Bearer <key>`. Defaults to none: an open server. */
  readonly apiKeys?: readonly string[];
  /** Require a key on /metrics and /metrics/router as well (/health and /livez are always public). Defaults to false. */
  readonly isMetricsAuthRequired?: boolean;
  /** Origins browsers may call from (CORS); "*" allows any. Defaults to none: CORS off. */
  readonly corsOrigins?: readonly string[];
  /** Requests per window per API key (per IP without keys). Defaults to null: no rate limit. */
  readonly rateLimit?: { readonly maxRequests: number; readonly windowMs: number } | null;
  /** Defaults to `DEFAULT_REQUEST_LIMITS`. */
  readonly limits?: RequestLimits;
  /** How long a generation may run, queue time included; 0 = no limit. Defaults to 600 s. */
  readonly requestTimeoutMs?: number;
  /** How long an idle keep-alive connection stays open. Defaults to 72 s. */
  readonly keepAliveTimeoutMs?: number;
  /** Trusted proxy hops for X-Forwarded-For; 0 (the default) ignores the header. */
  readonly trustProxy?: number;
}

const DEFAULT_SHUTDOWN_GRACE_MS = 30_000;

/**
 * Fastify runs application hooks, the drain in preClose among them, under its plugin timeout (10 s by default):
 * a drain outlasting it would fail the close, stop the listener while streams still run and exit 1. The hook's
 * budget is the grace plus the time the loop takes to fail what is left.
 */
const HOOK_TIMEOUT_MARGIN_MS = 30_000;

/** After the grace period, how long the last frames may take to reach slow clients before connections are cut. */
export const FINAL_WRITE_MS = 5_000;

const DEFAULT_BODY_LIMIT_BYTES = 8 * 1024 * 1024;

const DEFAULT_REQUEST_TIMEOUT_MS = 600_000;

/** Above the 60 s idle timeout of AWS ALB and nginx, so the balancer, not the server, closes idle connections. */
const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 72_000;

/**
 * Slow-client bounds, in Node's HTTP server rather than in a route: headers must arrive within 30 s and the whole
 * request (an 8 MiB body at 70 KB/s) within 120 s, or the connection gets a 408 and is closed. They cover only
 * receiving the request, never the response, so long generations and streams are untouched. Fastify's defaults
 * disable the request bound, which leaves a server without a proxy open to slowloris-style attacks.
 */
const HEADERS_TIMEOUT_MS = 30_000;
const RECEIVE_REQUEST_TIMEOUT_MS = 120_000;

/**
 * Answered without an API key: the readiness and liveness probes (kubelet sends no token) and, unless
 * isMetricsAuthRequired, Prometheus and the GIE endpoint picker, which scrape /metrics without one.
 */
const HEALTH_ROUTE = "/health";
const LIVENESS_ROUTE = "/livez";
const METRICS_ROUTE = "/metrics";

/**
 * Only the gauges a load-aware router reads (llm-d's endpoint picker, `vllm` engine profile), for scraping every
 * 50 ms: the whole exposition costs the event loop about ten times as much per scrape, most of it in histograms
 * the router never reads.
 */
const ROUTER_METRICS_ROUTE = "/metrics/router";
const ROUTER_METRIC_NAMES = [
  "vllm:num_requests_waiting",
  "vllm:num_requests_running",
  "vllm:kv_cache_usage_perc",
  "vllm:cache_config_info",
];

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const shutdownGraceMs = deps.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
  const app: FastifyInstance = Fastify({
    ...(deps.logger === undefined ? { logger: false } : { loggerInstance: deps.logger }),
    // The access log is our own one line per request (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    requestIdHeader: "x-request-id",
    genReqId: () => randomUUID(),
    // Requests arriving while closing get our own 503 envelope with Retry-After (ServingState), not Fastify's.
    return503OnClosing: false,
    keepAliveTimeout: deps.keepAliveTimeoutMs ?? DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
    requestTimeout: RECEIVE_REQUEST_TIMEOUT_MS,
    pluginTimeout: shutdownGraceMs + HOOK_TIMEOUT_MARGIN_MS,
    http: { headersTimeout: HEADERS_TIMEOUT_MS },
    clientErrorHandler,
    // A hop count (0 trusts none), never `true`: trusting every hop takes the leftmost entry, which the client writes.
    trustProxy: (_address: string, hop: number) => hop < (deps.trustProxy ?? 0),
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  const registry = new Registry();
  const metrics = new ServerMetrics(registry);
  app.decorate("metricsRegistry", registry);
  app.decorate("serverMetrics", metrics);
  deps.serving.onReady((runtime) =>
    metrics.attach({
      modelName: runtime.modelId,
      pooledModels: (runtime.pooledModels ?? []).map((served) => ({
        modelName: served.modelId,
        route: served.role === "rerank" ? "rerank" : "embeddings",
        numWaitingInputs: () => served.engine.numWaitingInputs(),
      })),
      numWaitingPooledInputs: () => runtime.engine.numWaitingInputs(),
      contextSize: runtime.engine.info.contextSize,
      numSequences: runtime.engine.info.numSequences,
      numKvCells: runtime.engine.info.kvCacheTokens,
      kvBlockSize: runtime.loop.kvCacheState().blockSize,
      numKvBlocks: runtime.loop.kvCacheState().numBlocks,
      isPrefixCaching: runtime.loop.isPrefixCaching,
      numRunning: () => runtime.loop.numRunning,
      numWaiting: () => runtime.loop.numWaiting,
      numKvTokens: () => runtime.loop.numKvTokens,
      kvUsage: () => runtime.loop.kvCacheState().usage,
      kvBlocks: () => {
        const state = runtime.loop.kvCacheState();
        return { used: state.numUsedBlocks, cached: state.numCachedBlocks };
      },
    }),
  );
  app.decorateRequest("generation", null);
  installErrorHandlers(app, { onRejection: (reason) => metrics.observeRejection(reason) });
  // Fastify's own text/plain parser would let a plain-text body through to validation; JSON only.
  app.removeContentTypeParser("text/plain");
  const connections = trackConnections(app);

  // Before the API-key check, so a browser can read a 401 too; preflights are answered in CORS's own hook.
  if (deps.corsOrigins !== undefined && deps.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: deps.corsOrigins.includes("*") ? "*" : [...deps.corsOrigins],
      methods: ["GET", "POST"],
      exposedHeaders: [
        "x-request-id",
        "retry-after",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
      ],
      maxAge: 600,
    });
  }
  app.addHook("onRequest", async (request, reply) => {
    void reply.header("x-request-id", request.id);
  });
  // While closing, every answer (a 503 with Retry-After for new work) tells keep-alive clients and balancers to
  // take their next request elsewhere instead of reusing a connection that is about to go. Decided at send time:
  // a request that arrived just before the close is answered after it.
  app.addHook("onSend", async (_request, reply, payload) => {
    if (deps.serving.status === "closing" || deps.serving.status === "failed") void reply.header("connection", "close");
    return payload;
  });
  const probeRoutes = [HEALTH_ROUTE, LIVENESS_ROUTE];
  const metricsRoutes = [METRICS_ROUTE, ROUTER_METRICS_ROUTE];
  const publicRoutes = deps.isMetricsAuthRequired === true ? probeRoutes : [...probeRoutes, ...metricsRoutes];
  installAuth(app, { keys: deps.apiKeys ?? [], publicRoutes });
  if (deps.rateLimit != null && deps.rateLimit.maxRequests > 0) {
    await registerRateLimit(app, { ...deps.rateLimit, exemptRoutes: [...probeRoutes, ...metricsRoutes] });
  }
  // One line per request; prompts and outputs are never logged at info. Probes and scrapes that succeed log at
  // debug: an endpoint picker scraping every 50 ms would otherwise write 72,000 lines an hour per pod.
  const quietRoutes = new Set([...probeRoutes, ...metricsRoutes]);
  app.addHook("onResponse", async (request, reply) => {
    metrics.observeHttpResponse(reply.statusCode);
    const generation = request.generation;
    const isQuiet = reply.statusCode < 400 && quietRoutes.has(request.routeOptions.url ?? "");
    (isQuiet ? request.log.debug : request.log.info).call(
      request.log,
      {
        method: request.method,
        url: request.url,
        statusCode: reply.statusCode,
        durationMs: Math.round(reply.elapsedTime * 10) / 10,
        ...(generation === null
          ? {}
          : {
              generationId: generation.id,
              promptTokens: generation.numPromptTokens,
              completionTokens: generation.numCompletionTokens,
              timeToFirstTokenMs: roundOrNull(generation.timeToFirstTokenMs),
            }),
      },
      "request completed",
    );
  });

  let ordinal = 0;
  const pooledRequests = new PooledRequests();
  const routeOptions: RouteOptions = {
    serving: deps.serving,
    serverSeed: deps.serverSeed ?? null,
    nextRequestOrdinal: () => ordinal++,
    metrics,
    constraints: new ConstraintCompiler(),
    limits: deps.limits ?? DEFAULT_REQUEST_LIMITS,
    requestTimeoutMs: deps.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
    pooledRequests,
    isGeneratorPooling: deps.isEmbeddingsEnabled !== false,
  };
  app.get(METRICS_ROUTE, async (_request, reply) =>
    reply.header("content-type", registry.contentType).send(await registry.metrics()),
  );
  // Before the model is loaded these gauges do not exist yet, as in the whole exposition.
  app.get(ROUTER_METRICS_ROUTE, async (_request, reply) => {
    const families = await Promise.all(
      ROUTER_METRIC_NAMES.filter((name) => registry.getSingleMetric(name) !== undefined).map((name) =>
        registry.getSingleMetricAsString(name),
      ),
    );
    return reply.header("content-type", registry.contentType).send(`${families.join("\n\n")}\n`);
  });
  await app.register(modelsRoute, routeOptions);
  await app.register(completionsRoute, routeOptions);
  await app.register(chatCompletionsRoute, routeOptions);
  await app.register(tokenizeRoute, routeOptions);
  await app.register(planRoute, routeOptions);
  if (deps.isEmbeddingsEnabled !== false || deps.hasPooledModels === true) {
    await app.register(embeddingsRoute, routeOptions);
    await app.register(rerankRoute, routeOptions);
  }

  // New requests get 503 from here on; running ones (generations, embeddings and reranks) may finish within the
  // grace period, then the rest fail with 503 (an error frame on streams), which also ends every open SSE stream
  // before the server closes.
  // Probes and requests that arrive during the drain are answered (503 for readiness and new work, 200 for
  // liveness); Fastify closes the listener only once this hook has returned.
  app.addHook("preClose", async () => {
    deps.serving.markClosing();
    connections.startClosing();
    const loop = deps.serving.runtime?.loop;
    if (loop === undefined) {
      connections.closeUnused();
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, shutdownGraceMs);
    });
    try {
      await Promise.race([Promise.all([loop.drained(), pooledRequests.drained()]), grace]);
    } finally {
      clearTimeout(timer);
    }
    const unfinished = (what: string) =>
      new PagodaError("PAGODA_ERR_UNAVAILABLE", `The server shut down before this ${what} finished`, {
        retryAfterSeconds: 5,
      });
    pooledRequests.abortAll(unfinished("request"));
    await loop.stop(unfinished("generation"));
    // An aborted request answers as soon as its engine lets go of it; one stuck in a native decode is left to the
    // final-write window below rather than holding the close.
    await Promise.race([
      pooledRequests.drained(),
      new Promise((resolve) => setTimeout(resolve, FINAL_WRITE_MS).unref()),
    ]);
    connections.closeUnused();
    // Every response has its last frame now. A client that stopped reading would keep its socket busy (and the
    // close waiting) until the request deadline; past a short final-write window its connection is cut.
    setTimeout(() => app.server.closeAllConnections(), FINAL_WRITE_MS).unref();
  });
  app.addHook("onClose", async () => {
    metrics.dispose();
    await deps.serving.runtime?.dispose?.();
  });
  return app;
}

function roundOrNull(value: number | null): number | null {
  return value === null ? null : Math.round(value * 10) / 10;
}
