import type { FastifyReply, FastifyRequest } from "fastify";
import type { ConstraintCompiler } from "../constrain/constraint-compiler.ts";
import type { PoolingEngine, TokenId } from "../engine/engine.ts";
import type { ServerMetrics } from "../metrics/server-metrics.ts";
import { RequestDeadline } from "./deadline.ts";
import { PagodaError } from "./errors.ts";
import { type ChoiceSpec, Generation } from "./generation.ts";
import { NO_OUTPUT_CONSTRAINTS, type OutputConstraints } from "./output-constraints.ts";
import type { PooledRequests } from "./pooled-requests.ts";
import type { RequestLimits } from "./request-limits.ts";
import type { PooledModelRuntime, Runtime, ServingState } from "./serving-state.ts";
import { onClientGone } from "./sse.ts";

/** What every route plugin is registered with. */
export interface RouteOptions {
  readonly serving: ServingState;
  /** Base seed for requests without one; null draws random seeds. */
  readonly serverSeed: number | null;
  /** Counts generation requests, so a server seed still gives every request its own stream. */
  readonly nextRequestOrdinal: () => number;
  readonly metrics: ServerMetrics;
  /** Compiles and caches the requests' output constraints. */
  readonly constraints: ConstraintCompiler;
  /** Defaults to `DEFAULT_REQUEST_LIMITS`. */
  readonly limits?: RequestLimits;
  /** How long a generation may run, queue time included; 0 = no limit. Defaults to 0. */
  readonly requestTimeoutMs?: number;
  /** The generator answers embedding and rerank requests itself (`--embeddings`). Defaults to true. */
  readonly isGeneratorPooling?: boolean;
  /** Embedding and rerank requests in flight, for the drain; absent, nothing waits for them. */
  readonly pooledRequests?: PooledRequests;
}

export interface StartedGeneration {
  readonly generation: Generation;
  /** Clear it in `finally` once the response is complete. */
  readonly deadline: RequestDeadline;
}

/**
 * Submits the choices and ties the generation to its HTTP request: the access log, the client going away and the
 * deadline all stop it through the same abort, which frees its sequences at the next engine step.
 */
export function startGeneration(
  request: FastifyRequest,
  reply: FastifyReply,
  runtime: Runtime,
  choices: readonly ChoiceSpec[],
  n: number,
  options: RouteOptions,
  constraints: OutputConstraints = NO_OUTPUT_CONSTRAINTS,
): StartedGeneration {
  const generation = Generation.start(runtime.loop, choices);
  options.metrics.observeRequestParams({ n });
  if (constraints.kind !== null) options.metrics.observeConstraint(constraints.kind, constraints.compileMs);
  request.generation = generation;
  onClientGone(request, reply, () => generation.abort());
  const deadline = new RequestDeadline(options.requestTimeoutMs ?? 0);
  deadline.onExpire(() => {
    options.metrics.observeRequestTimeout();
    generation.abort();
  });
  return { generation, deadline };
}

/** The runtime serving `model`: 503 while not ready, 404 for a model this server does not serve. */
export function requireModel(serving: ServingState, model: string | null | undefined): Runtime {
  const runtime = serving.requireRuntime();
  if (model == null || model === runtime.modelId) return runtime;
  const pooled = runtime.pooledModels?.find((served) => served.modelId === model);
  if (pooled !== undefined) {
    const routes = pooled.role === "rerank" ? "/v1/rerank and /v1/score" : "/v1/embeddings";
    throw new PagodaError(
      "PAGODA_ERR_UNSUPPORTED",
      `The model \`${model}\` is served for ${routes} only; \`${runtime.modelId}\` generates.`,
      { param: "model" },
    );
  }
  throw modelNotFound(runtime, model);
}

/** A model that pools inputs, as the embedding and rerank routes use it. */
export interface PoolingModel {
  readonly modelId: string;
  readonly engine: PoolingEngine;
}

/**
 * The model an embedding or rerank request names: the generator (unless its own embeddings are off) or one served
 * beside it. Without a name, the first model served for `role`, else the generator.
 */
export function requirePoolingModel(
  options: RouteOptions,
  model: string | null | undefined,
  role: PooledModelRuntime["role"],
): PoolingModel {
  const served = findServedModel(options.serving, model, role);
  if (options.isGeneratorPooling === false && served.modelId === options.serving.requireRuntime().modelId) {
    throw new PagodaError(
      "PAGODA_ERR_UNSUPPORTED",
      `The model \`${served.modelId}\` does not serve ${role === "rerank" ? "reranking" : "embeddings"} here (--embeddings false)`,
      { param: "model" },
    );
  }
  return served;
}

/** Any served model by id: the generator or one beside it; without an id, the first served for `role`, else the generator. */
export function findServedModel(
  serving: ServingState,
  model: string | null | undefined,
  role: PooledModelRuntime["role"] | null,
): PoolingModel {
  const runtime = serving.requireRuntime();
  const pooled = runtime.pooledModels ?? [];
  if (model == null) return pooled.find((served) => served.role === role) ?? runtime;
  if (model === runtime.modelId) return runtime;
  const named = pooled.find((served) => served.modelId === model);
  if (named === undefined) throw modelNotFound(runtime, model);
  return named;
}

function modelNotFound(runtime: Runtime, model: string): PagodaError {
  const ids = [runtime.modelId, ...(runtime.pooledModels ?? []).map((served) => served.modelId)];
  const served = ids.map((id) => `\`${id}\``).join(", ");
  return new PagodaError(
    "PAGODA_ERR_MODEL_NOT_FOUND",
    `The model \`${model}\` does not exist. This server serves ${served}.`,
    { param: "model" },
  );
}

/**
 * Token ids from a request body become `TokenId`s here, once checked against the vocabulary; the schema has already
 * made them non-negative integers.
 */
export function checkTokenIds(
  engine: PoolingEngine,
  tokens: readonly number[],
  param: string,
): asserts tokens is TokenId[] {
  const vocabSize = engine.info.vocabSize;
  const bad = tokens.find((token) => token >= vocabSize);
  if (bad !== undefined) {
    throw new PagodaError(
      "PAGODA_ERR_INVALID_REQUEST",
      `Token id ${bad} is out of the vocabulary (size ${vocabSize})`,
      { param },
    );
  }
}
