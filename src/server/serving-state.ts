import type { PoolingEngine, ServerEngine } from "../engine/engine.ts";
import type { EngineLoop } from "../scheduler/engine-loop.ts";
import { PagodaError } from "./errors.ts";
import type { PlanSource } from "./routes/plan.ts";

export type ServingStatus = "loading" | "ready" | "closing" | "failed";

/** What a loaded model offers the routes. */
export interface Runtime {
  /** The model as the routes use it; its sequences and steps are the engine loop's. */
  readonly engine: ServerEngine;
  readonly loop: EngineLoop;
  /** The id clients pass as `model`. */
  readonly modelId: string;
  readonly createdSeconds: number;
  /** The served file and context settings, for `GET /v1/plan`; absent when the model is not a file. */
  readonly planSource?: PlanSource | null;
  /** Models served for embeddings or reranking only, beside the generator (`--embedding-model`, `--rerank-model`). */
  readonly pooledModels?: readonly PooledModelRuntime[];
  /**
   * Releases the model and what the runtime holds beside it (a draft model); called at close, after the engine
   * loop stopped. Absent when there is nothing to release.
   */
  readonly dispose?: () => Promise<void>;
}

/** What a model served beside the generator offers the embedding and rerank routes. */
export interface PooledModelRuntime {
  /** The id clients pass as `model`. */
  readonly modelId: string;
  readonly createdSeconds: number;
  /** "rerank" models answer /v1/rerank and /v1/score; "embedding" models answer /v1/embeddings. */
  readonly role: "embedding" | "rerank";
  readonly engine: PoolingEngine;
}

/**
 * The server answers before its model is loaded (health says 503 while loading), so routes reach the model
 * through this holder rather than through a constructor argument.
 */
export class ServingState {
  private currentStatus: ServingStatus = "loading";
  private currentRuntime: Runtime | null = null;
  private readonly readyListeners: ((runtime: Runtime) => void)[] = [];

  get status(): ServingStatus {
    return this.currentStatus;
  }

  get runtime(): Runtime | null {
    return this.currentRuntime;
  }

  markReady(runtime: Runtime): void {
    this.currentRuntime = runtime;
    this.currentStatus = "ready";
    for (const listener of this.readyListeners.splice(0)) listener(runtime);
  }

  /** Calls `listener` with the runtime once it is ready (at once if it already is). */
  onReady(listener: (runtime: Runtime) => void): void {
    if (this.currentRuntime !== null) listener(this.currentRuntime);
    else this.readyListeners.push(listener);
  }

  /** A failed server stays "failed" while it closes, so health keeps saying why it is going away. */
  markClosing(): void {
    if (this.currentStatus !== "failed") this.currentStatus = "closing";
  }

  markFailed(): void {
    this.currentStatus = "failed";
  }

  /** The runtime, or a 503 while the model is loading or the server is closing. */
  requireRuntime(): Runtime {
    if (this.currentStatus === "ready" && this.currentRuntime !== null) return this.currentRuntime;
    const reason = this.currentStatus === "loading" ? "the model is still loading" : "the server is shutting down";
    throw new PagodaError("PAGODA_ERR_UNAVAILABLE", `Service unavailable: ${reason}`, { retryAfterSeconds: 5 });
  }
}
