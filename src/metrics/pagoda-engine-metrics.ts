/** pagoda's own model-level metrics: the shared KV pool's blocks by state and the wall time of engine steps. */
import { Gauge, Histogram, type Registry } from "prom-client";
import type { StepStats } from "../scheduler/engine-loop.ts";
import type { MetricsSource } from "./metrics-source.ts";

const ENGINE_STEP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class PagodaEngineMetrics {
  private readonly stepSeconds: Histogram;

  constructor(registry: Registry, source: MetricsSource) {
    new Gauge({
      name: "pagoda_kv_blocks",
      help: "KV blocks of the shared pool by state: used by requests, cached (free but holding a prefix), free.",
      labelNames: ["state"],
      registers: [registry],
      collect() {
        const { used, cached } = source.kvBlocks();
        this.set({ state: "used" }, used);
        this.set({ state: "cached" }, cached);
        this.set({ state: "free" }, source.numKvBlocks - used - cached);
      },
    });
    this.stepSeconds = new Histogram({
      name: "pagoda_engine_step_seconds",
      help: "Wall time of one engine step: one batched decode plus sampling and bookkeeping.",
      buckets: ENGINE_STEP_BUCKETS,
      registers: [registry],
    });
  }

  observeStep(stats: StepStats): void {
    this.stepSeconds.observe(stats.durationMs / 1000);
  }
}
