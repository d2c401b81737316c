import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { memoryPlanToJson } from "../../plan/format-plan.ts";
import { readGgufModelInfo } from "../../plan/gguf-model-info.ts";
import { type KvCacheType, planMemory } from "../../plan/memory-plan.ts";
import { PagodaError } from "../errors.ts";
import type { RouteOptions } from "../route-context.ts";

/** What the server was started with, for planning the memory of the model it serves. */
export interface PlanSource {
  /** The GGUF file the server loaded. */
  readonly modelPath: string;
  readonly ctxSize: number;
  readonly parallel: number;
  readonly batchSize: number;
  readonly kvType: KvCacheType;
  /** Size of a KV pool shared by all sequences; null or absent when each sequence has its own. */
  readonly kvCacheTokens?: number | null;
  /** Whether the context runs with flash attention. Defaults to the planner's choice (on for a shared pool, as the engine chooses on CPU). */
  readonly flashAttention?: boolean;
}

/** `GET /v1/plan`: where the RAM of the served model goes. The plan never changes while the process runs, so it is computed once. */
export const planRoute: FastifyPluginAsyncZod<RouteOptions> = async (app, options) => {
  let cached: Promise<Record<string, unknown>> | null = null;

  const computePlan = async (source: PlanSource): Promise<Record<string, unknown>> => {
    const model = await readGgufModelInfo(source.modelPath);
    const plan = planMemory(model, {
      ctxSize: source.ctxSize,
      parallel: source.parallel,
      batchSize: source.batchSize,
      kvType: source.kvType,
      kvCacheTokens: source.kvCacheTokens ?? null,
      ...(source.flashAttention === undefined ? {} : { flashAttention: source.flashAttention }),
    });
    return memoryPlanToJson(plan);
  };

  app.get("/v1/plan", async () => {
    const runtime = options.serving.requireRuntime();
    const source = runtime.planSource ?? null;
    if (source === null) {
      throw new PagodaError(
        "PAGODA_ERR_ROUTE_NOT_FOUND",
        "This server has no memory plan: it was not told which model file it serves",
      );
    }
    if (cached === null) {
      cached = computePlan(source);
      // A failed read (file moved, unreadable) is retried on the next request rather than cached.
      cached.catch(() => {
        cached = null;
      });
    }
    let plan: Record<string, unknown>;
    try {
      plan = await cached;
    } catch (error) {
      throw new PagodaError("PAGODA_ERR_INTERNAL", "Could not compute the memory plan of the served model", {
        cause: error,
      });
    }
    return { object: "memory_plan", model: runtime.modelId, ...plan };
  });
};
