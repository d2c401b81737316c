/**
 * pagoda's own model-level metrics: the shared KV pool's blocks by state, the wall time of engine steps and the
 * draft-model steps that failed.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { StepStats } from "../scheduler/engine-loop.ts";
import type { MetricsSource } from "./metrics-source.ts";
import type { StepIncrements } from "./step-deltas.ts";

const ENGINE_STEP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class PagodaEngineMetrics {
  private readonly stepSeconds: Histogram;
  private readonly draftFailures: Counter;
  private readonly sampleSeconds: Histogram;
  private readonly grammarFallbacks: Counter;
  private readonly triggerFailures: Counter;

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
    this.draftFailures = new Counter({
      name: "pagoda_spec_draft_failures_total",
      help: "Draft-model steps that failed; their drafts were dropped and the requests decoded on without them.",
      registers: [registry],
    });
    this.sampleSeconds = new Histogram({
      name: "pagoda_step_sampling_seconds",
      help: "Wall time of one engine step's sampling, after its decode: every sequence's sampler, grammars included.",
      buckets: ENGINE_STEP_BUCKETS,
      registers: [registry],
    });
    this.grammarFallbacks = new Counter({
      name: "pagoda_grammar_fallbacks_total",
      help: "Sampled tokens whose grammar rejected the sampler's first pick, so the grammar ran over the whole vocabulary (the costly path of constrained decoding).",
      registers: [registry],
    });
    this.triggerFailures = new Counter({
      name: "pagoda_grammar_trigger_failures_total",
      help: "Tool calls under tool_choice auto whose grammar could not start at its trigger, so the call ran unconstrained.",
      registers: [registry],
    });
  }

  observeStep(stats: StepStats, increments: StepIncrements): void {
    this.stepSeconds.observe(stats.durationMs / 1000);
    if (increments.numDraftFailures > 0) this.draftFailures.inc(increments.numDraftFailures);
    this.sampleSeconds.observe(increments.sampleMs / 1000);
    if (increments.numGrammarFallbacks > 0) this.grammarFallbacks.inc(increments.numGrammarFallbacks);
    if (increments.numTriggerFailures > 0) this.triggerFailures.inc(increments.numTriggerFailures);
  }
}
