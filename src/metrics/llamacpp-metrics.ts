/**
 * llama-server's metric names (its /metrics under `llamacpp:`), unlabelled as it exposes them, for dashboards
 * written for llama.cpp. They read the same step and request records as vLLM's set.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { StepStats } from "../scheduler/engine-loop.ts";
import { mapEntries } from "./map-entries.ts";
import type { MetricsSource } from "./metrics-source.ts";
import type { RequestTimings } from "./request-timings.ts";
import type { StepIncrements } from "./step-deltas.ts";

/** Counters as `[name, help]`, keyed by how the code refers to them. */
const COUNTERS = {
  promptTokens: ["llamacpp:prompt_tokens_total", "Number of prompt tokens processed."],
  promptSeconds: ["llamacpp:prompt_seconds_total", "Prompt process time."],
  predictedTokens: ["llamacpp:tokens_predicted_total", "Number of generation tokens processed."],
  predictedSeconds: ["llamacpp:tokens_predicted_seconds_total", "Predict process time."],
  draftTokens: ["llamacpp:spec_decode_num_draft_tokens_total", "Number of draft tokens."],
  acceptedTokens: ["llamacpp:spec_decode_num_accepted_tokens_total", "Number of accepted draft tokens."],
  decodes: ["llamacpp:n_decode_total", "Total number of llama_decode() calls."],
} as const satisfies Record<string, readonly [string, string]>;
type CounterKey = keyof typeof COUNTERS;

export class LlamacppMetrics {
  private readonly counters: Record<CounterKey, Counter>;
  private numBusySlots = 0;
  private numDecodes = 0;

  constructor(registry: Registry, source: MetricsSource) {
    const registers = [registry];
    this.counters = mapEntries(COUNTERS, ([name, help]) => new Counter({ name, help, registers }));
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    };
    gauge("llamacpp:n_busy_slots_per_decode", "Average number of busy slots per llama_decode() call.", () =>
      this.numDecodes === 0 ? 0 : this.numBusySlots / this.numDecodes,
    );
    gauge("llamacpp:kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage.", () => source.kvUsage());
    gauge("llamacpp:kv_cache_tokens", "KV-cache tokens.", () => source.numKvTokens());
    gauge("llamacpp:requests_processing", "Number of requests processing.", () => source.numRunning());
    gauge("llamacpp:requests_deferred", "Number of requests deferred.", () => source.numWaiting());
  }

  /** Each engine step is one llama_decode() call. */
  observeStep(stats: StepStats, increments: StepIncrements): void {
    this.counters.promptTokens.inc(stats.numPromptTokens);
    this.counters.predictedTokens.inc(stats.numGeneratedTokens);
    this.counters.draftTokens.inc(increments.numDraftTokens);
    this.counters.acceptedTokens.inc(increments.numAcceptedTokens);
    this.counters.decodes.inc();
    this.numDecodes += 1;
    this.numBusySlots += stats.numSequences;
  }

  observeRequest(timings: RequestTimings): void {
    if (timings.prefillSeconds !== null) this.counters.promptSeconds.inc(timings.prefillSeconds);
    if (timings.decodeSeconds !== null) this.counters.predictedSeconds.inc(timings.decodeSeconds);
  }
}
