import type { Engine, TokenId } from "../engine/engine.ts";
import type { ServerMetrics } from "../metrics/server-metrics.ts";
import { PagodaError } from "./errors.ts";
import type { Runtime, ServingState } from "./serving-state.ts";

/** What every route plugin is registered with. */
export interface RouteOptions {
  readonly serving: ServingState;
  /** Base seed for requests without one; null draws random seeds. */
  readonly serverSeed: number | null;
  /** Counts generation requests, so a server seed still gives every request its own stream. */
  readonly nextRequestOrdinal: () => number;
  readonly metrics: ServerMetrics;
}

/** The runtime serving `model`: 503 while not ready, 404 for a model this server does not serve. */
export function requireModel(serving: ServingState, model: string | null | undefined): Runtime {
  const runtime = serving.requireRuntime();
  if (model != null && model !== runtime.modelId) {
    throw new PagodaError("PAGODA_ERR_MODEL_NOT_FOUND", `The model \`${model}\` does not exist. This server serves \`${runtime.modelId}\`.`, {
      param: "model",
    });
  }
  return runtime;
}

export function checkTokenIds(engine: Engine, tokens: readonly TokenId[], param: string): void {
  const vocabSize = engine.info.vocabSize;
  const bad = tokens.find((token) => token >= vocabSize);
  if (bad !== undefined) {
    throw new PagodaError("PAGODA_ERR_INVALID_REQUEST", `Token id ${bad} is out of the vocabulary (size ${vocabSize})`, { param });
  }
}
