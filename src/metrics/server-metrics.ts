/**
 * Prometheus metrics of one app: vLLM's exact names, types, labels and buckets, llama-server's names as aliases,
 * pagoda's own under `pagoda_`, and Node's process metrics. It subscribes to the plain stats records the engine
 * loop and scheduler emit; the model's metrics appear once a model is attached.
 */
import type { Registry } from "prom-client";
import type { ConstraintKind } from "../constrain/constraint-spec.ts";
import type { StepStats } from "../scheduler/engine-loop.ts";
import type { RequestStats } from "../scheduler/scheduler.ts";
import type { MetricsSource } from "./metrics-source.ts";
import { ModelMetrics } from "./model-metrics.ts";
import { PagodaMetrics, type PooledRoute, type RejectionReason, type ToolChoiceKind } from "./pagoda-metrics.ts";
import { ProcessMetrics } from "./process-metrics.ts";

export type { MetricsSource } from "./metrics-source.ts";
export type { RejectionReason } from "./pagoda-metrics.ts";

export class ServerMetrics {
  private readonly registry: Registry;
  private readonly process: ProcessMetrics;
  private readonly pagoda: PagodaMetrics;
  private model: ModelMetrics | null = null;

  constructor(registry: Registry) {
    this.registry = registry;
    this.process = new ProcessMetrics(registry);
    this.pagoda = new PagodaMetrics(registry);
  }

  /** Registers the model's metrics once it is loaded; they read `source` at every scrape. */
  attach(source: MetricsSource): void {
    if (this.model !== null) return;
    this.model = new ModelMetrics(this.registry, source);
    this.pagoda.declarePooled(source.modelName, () => source.numWaitingPooledInputs());
    for (const pooled of source.pooledModels)
      this.pagoda.declarePooled(pooled.modelName, () => pooled.numWaitingInputs(), [pooled.route]);
  }

  observeStep(stats: StepStats): void {
    this.model?.observeStep(stats);
  }

  observeRequest(stats: RequestStats): void {
    this.model?.observeRequest(stats);
  }

  /** Once per HTTP generation request: its `n`. */
  observeRequestParams(params: { readonly n: number }): void {
    this.model?.observeRequestParams(params.n);
  }

  /** A constrained request; `compileMs` is null when its grammar came from the cache. */
  observeConstraint(kind: ConstraintKind, compileMs: number | null): void {
    this.pagoda.observeConstraint(kind, compileMs);
  }

  observeToolRequest(kind: ToolChoiceKind): void {
    this.pagoda.observeToolRequest(kind);
  }

  observePooled(route: PooledRoute, modelName: string, numInputs: number, numTokens: number): void {
    this.pagoda.observePooled(route, modelName, numInputs, numTokens);
  }

  observeToolOutput(numCalls: number, isParseFailure: boolean): void {
    this.pagoda.observeToolOutput(numCalls, isParseFailure);
  }

  observeHttpResponse(statusCode: number): void {
    this.pagoda.observeHttpResponse(statusCode);
  }

  observeRejection(reason: RejectionReason): void {
    this.pagoda.observeRejection(reason);
  }

  observeEngineFault(): void {
    this.pagoda.observeEngineFault();
  }

  observeRequestTimeout(): void {
    this.pagoda.observeRequestTimeout();
  }

  dispose(): void {
    this.process.dispose();
  }
}
