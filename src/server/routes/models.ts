import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { type RouteOptions, requireModel } from "../route-context.ts";
import type { PooledModelRuntime, Runtime } from "../serving-state.ts";

/** A served model as OpenAI lists it, with vLLM's `max_model_len`. */
function toModel(served: Runtime | PooledModelRuntime): Record<string, unknown> {
  return {
    id: served.modelId,
    object: "model",
    created: served.createdSeconds,
    owned_by: "pagoda",
    max_model_len: served.engine.info.contextSize,
  };
}

export const modelsRoute: FastifyPluginAsyncZod<RouteOptions> = async (app, options) => {
  app.get("/v1/models", async () => {
    const runtime = options.serving.requireRuntime();
    return { object: "list", data: [runtime, ...(runtime.pooledModels ?? [])].map(toModel) };
  });

  app.get("/v1/models/:model", { schema: { params: z.object({ model: z.string() }) } }, async (request) => {
    const runtime = options.serving.requireRuntime();
    const pooled = runtime.pooledModels?.find((served) => served.modelId === request.params.model);
    return toModel(pooled ?? requireModel(options.serving, request.params.model));
  });

  // Readiness: 503 while the model loads and while the server drains, so balancers send new work elsewhere.
  app.get("/health", async (_request, reply) => {
    const status = options.serving.status;
    if (status === "ready") return { status: "ok" };
    return reply.status(503).header("retry-after", "5").send({ status });
  });

  // Liveness: the process answers. It stays 200 while loading and draining, where /health is 503, because a
  // liveness probe that fails restarts the container: on /health it would kill a long model load or the streams a
  // drain is finishing. Only a failed server (dead engine, failed load) is not alive; it is exiting anyway.
  app.get("/livez", async (_request, reply) => {
    const status = options.serving.status;
    return reply.status(status === "failed" ? 503 : 200).send({ status });
  });
};
