/**
 * `buildApp` assembles the Fastify application and never listens; `main.ts` listens. Tests call `inject()`.
 */
import { randomUUID } from "node:crypto";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { Registry } from "prom-client";
import { ServerMetrics } from "../metrics/server-metrics.ts";
import { closeUnusedConnectionsOnClose } from "./connection-tracker.ts";
import { installErrorHandlers } from "./error-handler.ts";
import { PagodaError } from "./errors.ts";
import type { Generation } from "./generation.ts";
import type { RouteOptions } from "./route-context.ts";
import { chatCompletionsRoute } from "./routes/chat-completions.ts";
import { completionsRoute } from "./routes/completions.ts";
import { embeddingsRoute } from "./routes/embeddings.ts";
import { modelsRoute } from "./routes/models.ts";
import { planRoute } from "./routes/plan.ts";
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
  /** Serve `/v1/embeddings`. Defaults to true. */
  readonly isEmbeddingsEnabled?: boolean;
  /** How long a close lets running requests finish before failing them with 503. Defaults to 30 s. */
  readonly shutdownGraceMs?: number;
}

const DEFAULT_SHUTDOWN_GRACE_MS = 30_000;

const DEFAULT_BODY_LIMIT_BYTES = 8 * 1024 * 1024;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app: FastifyInstance = Fastify({
    ...(deps.logger === undefined ? { logger: false } : { loggerInstance: deps.logger }),
    // The access log is our own one line per request (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: deps.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES,
    requestIdHeader: "x-request-id",
    genReqId: () => randomUUID(),
    // Requests arriving while closing get our own 503 envelope with Retry-After (ServingState), not Fastify's.
    return503OnClosing: false,
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
      maxModelLen: runtime.engine.info.contextSize,
      numSequences: runtime.engine.info.numSequences,
      numKvCells: runtime.engine.info.contextSize * runtime.engine.info.numSequences,
      numRunning: () => runtime.loop.numRunning,
      numWaiting: () => runtime.loop.numWaiting,
      numKvTokens: () => runtime.loop.numKvTokens,
    }),
  );
  app.decorateRequest("generation", null);
  installErrorHandlers(app);
  // Fastify's own text/plain parser would let a plain-text body through to validation; JSON only.
  app.removeContentTypeParser("text/plain");
  closeUnusedConnectionsOnClose(app);

  app.addHook("onRequest", async (request, reply) => {
    void reply.header("x-request-id", request.id);
  });
  // One line per request; prompts and outputs are never logged at info.
  app.addHook("onResponse", async (request, reply) => {
    metrics.observeHttpResponse(reply.statusCode);
    const generation = request.generation;
    request.log.info(
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
  const routeOptions: RouteOptions = {
    serving: deps.serving,
    serverSeed: deps.serverSeed ?? null,
    nextRequestOrdinal: () => ordinal++,
    metrics,
  };
  app.get("/metrics", async (_request, reply) => reply.header("content-type", registry.contentType).send(await registry.metrics()));
  await app.register(modelsRoute, routeOptions);
  await app.register(completionsRoute, routeOptions);
  await app.register(chatCompletionsRoute, routeOptions);
  await app.register(tokenizeRoute, routeOptions);
  await app.register(planRoute, routeOptions);
  if (deps.isEmbeddingsEnabled !== false) await app.register(embeddingsRoute, routeOptions);

  // New requests get 503 from here on; running ones may finish within the grace period, then the rest fail with
  // 503 (an error frame on streams), which also ends every open SSE stream before the server closes.
  app.addHook("preClose", async () => {
    deps.serving.markClosing();
    const loop = deps.serving.runtime?.loop;
    if (loop === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, deps.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS);
    });
    try {
      await Promise.race([loop.drained(), grace]);
    } finally {
      clearTimeout(timer);
    }
    await loop.stop(new PagodaError("PAGODA_ERR_UNAVAILABLE", "The server shut down before this generation finished", { retryAfterSeconds: 5 }));
  });
  app.addHook("onClose", async () => {
    metrics.dispose();
    await deps.serving.runtime?.engine.dispose();
  });
  return app;
}

function roundOrNull(value: number | null): number | null {
  return value === null ? null : Math.round(value * 10) / 10;
}
