import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { type RouteOptions, requireModel } from "../route-context.ts";
import type { Runtime } from "../serving-state.ts";

function toModel(runtime: Runtime): Record<string, unknown> {
  return {
    id: runtime.modelId,
    object: "model",
    created: runtime.createdSeconds,
    owned_by: "pagoda",
    max_model_len: runtime.engine.info.contextSize,
  };
}

export const modelsRoute: FastifyPluginAsyncZod<RouteOptions> = async (app, options) => {
  app.get("/v1/models", async () => {
    const runtime = options.serving.requireRuntime();
    return { object: "list", data: [toModel(runtime)] };
  });

  app.get("/v1/models/:model", { schema: { params: z.object({ model: z.string() }) } }, async (request) =>
    toModel(requireModel(options.serving, request.params.model)),
  );

  app.get("/health", async (_request, reply) => {
    const status = options.serving.status;
    if (status === "ready") return { status: "ok" };
    return reply.status(503).header("retry-after", "5").send({ status });
  });
};
