/**
 * The metrics that exist once a model is loaded: vLLM's set, llama-server's aliases and pagoda's engine extras,
 * fed from one step or request record each, with the cumulative counts and request phases derived once.
 */
import type { Registry } from "prom-client";
import type { StepStats } from "../scheduler/engine-loop.ts";
import type { RequestStats } from "../scheduler/scheduler.ts";
import { LlamacppMetrics } from "./llamacpp-metrics.ts";
import type { MetricsSource } from "./metrics-source.ts";
import { PagodaEngineMetrics } from "./pagoda-engine-metrics.ts";
import { requestTimings } from "./request-timings.ts";
import { StepDeltas } from "./step-deltas.ts";
import { VllmMetrics } from "./vllm-metrics.ts";

export class ModelMetrics {
  private readonly vllm: VllmMetrics;
  private readonly llamacpp: LlamacppMetrics;
  private readonly engine: PagodaEngineMetrics;
  private readonly deltas = new StepDeltas();

  constructor(registry: Registry, source: MetricsSource) {
    this.vllm = new VllmMetrics(registry, source);
    this.engine = new PagodaEngineMetrics(registry, source);
    this.llamacpp = new LlamacppMetrics(registry, source);
  }

  observeStep(stats: StepStats): void {
    const increments = this.deltas.next(stats);
    this.vllm.observeStep(stats, increments);
    this.llamacpp.observeStep(stats, increments);
    this.engine.observeStep(stats, increments);
  }

  observeRequestParams(n: number): void {
    this.vllm.observeRequestParams(n);
  }

  observeRequest(stats: RequestStats): void {
    const timings = requestTimings(stats);
    this.vllm.observeRequest(stats, timings);
    this.llamacpp.observeRequest(timings);
  }
}
