/**
 * vLLM's metrics under its exact names, types, help texts, labels and bucket edges (vllm/v1/metrics/loggers.py),
 * so dashboards and autoscalers written for vLLM read pagoda unchanged.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { StepStats } from "../scheduler/engine-loop.ts";
import type { FinishReason } from "../scheduler/request.ts";
import type { RequestStats } from "../scheduler/scheduler.ts";
import { mapEntries } from "./map-entries.ts";
import type { MetricsSource } from "./metrics-source.ts";
import type { RequestTimings } from "./request-timings.ts";
import type { StepIncrements } from "./step-deltas.ts";
import {
  build125Buckets,
  INTER_TOKEN_LATENCY_BUCKETS,
  ITERATION_TOKENS_BUCKETS,
  REQUEST_LATENCY_BUCKETS,
  REQUEST_PARAMS_N_BUCKETS,
  TIME_TO_FIRST_TOKEN_BUCKETS,
} from "./vllm-buckets.ts";

/** vLLM labels every series with the engine core's index; pagoda has one engine. */
export const VLLM_ENGINE = "0";

type ModelLabel = "model_name" | "engine";
const MODEL_LABELS: ModelLabel[] = ["model_name", "engine"];
const FINISH_REASONS: readonly FinishReason[] = ["stop", "length", "abort", "error"];

/** Counters as `[name, help]`, keyed by how the code refers to them. */
const COUNTERS = {
  prefixQueries: ["vllm:prefix_cache_queries_total", "Prefix cache queries, in terms of number of queried tokens."],
  prefixHits: ["vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens."],
  preemptions: ["vllm:num_preemptions_total", "Cumulative number of preemption from the engine."],
  promptTokens: ["vllm:prompt_tokens_total", "Number of prefill tokens processed."],
  generationTokens: ["vllm:generation_tokens_total", "Number of generation tokens processed."],
  drafts: ["vllm:spec_decode_num_drafts_total", "Number of spec decoding drafts."],
  draftTokens: ["vllm:spec_decode_num_draft_tokens_total", "Number of draft tokens."],
  acceptedTokens: ["vllm:spec_decode_num_accepted_tokens_total", "Number of accepted tokens."],
} as const satisfies Record<string, readonly [string, string]>;
type CounterKey = keyof typeof COUNTERS;

/** Histograms as `[name, help, buckets]`; token-count buckets grow with the model's context, as vLLM's do. */
function histogramDefinitions(contextSize: number) {
  const tokenBuckets = build125Buckets(contextSize);
  return {
    ttft: [
      "vllm:time_to_first_token_seconds",
      "Histogram of time to first token in seconds.",
      TIME_TO_FIRST_TOKEN_BUCKETS,
    ],
    itl: [
      "vllm:inter_token_latency_seconds",
      "Histogram of inter-token latency in seconds.",
      INTER_TOKEN_LATENCY_BUCKETS,
    ],
    e2e: ["vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", REQUEST_LATENCY_BUCKETS],
    queue: [
      "vllm:request_queue_time_seconds",
      "Histogram of time spent in WAITING phase for request.",
      REQUEST_LATENCY_BUCKETS,
    ],
    inference: [
      "vllm:request_inference_time_seconds",
      "Histogram of time spent in RUNNING phase for request.",
      REQUEST_LATENCY_BUCKETS,
    ],
    prefill: [
      "vllm:request_prefill_time_seconds",
      "Histogram of time spent in PREFILL phase for request.",
      REQUEST_LATENCY_BUCKETS,
    ],
    decode: [
      "vllm:request_decode_time_seconds",
      "Histogram of time spent in DECODE phase for request.",
      REQUEST_LATENCY_BUCKETS,
    ],
    promptTokens: ["vllm:request_prompt_tokens", "Number of prefill tokens processed.", tokenBuckets],
    generationTokens: ["vllm:request_generation_tokens", "Number of generation tokens processed.", tokenBuckets],
    // vLLM calls this histogram vllm:iteration_tokens_total, a counter's name that promtool rejects for a
    // histogram; it lives under pagoda's prefix instead, with vLLM's labels and buckets.
    iterationTokens: [
      "pagoda_iteration_tokens",
      "Histogram of number of tokens per engine_step.",
      ITERATION_TOKENS_BUCKETS,
    ],
    maxTokens: ["vllm:request_params_max_tokens", "Histogram of the max_tokens request parameter.", tokenBuckets],
    n: ["vllm:request_params_n", "Histogram of the n request parameter.", REQUEST_PARAMS_N_BUCKETS],
  } as const satisfies Record<string, readonly [string, string, readonly number[]]>;
}
type HistogramKey = keyof ReturnType<typeof histogramDefinitions>;

export class VllmMetrics {
  private readonly labels: Record<ModelLabel, string>;
  private readonly counters: Record<CounterKey, Counter<ModelLabel>>;
  private readonly histograms: Record<HistogramKey, Histogram<ModelLabel>>;
  private readonly success: Counter<ModelLabel | "finished_reason">;
  private readonly acceptedPerPosition: Counter<ModelLabel | "position">;

  constructor(registry: Registry, source: MetricsSource) {
    const labels = { model_name: source.modelName, engine: VLLM_ENGINE };
    this.labels = labels;
    const registers = [registry];
    const gauge = (name: string, help: string, read: () => number): void => {
      new Gauge({
        name,
        help,
        labelNames: MODEL_LABELS,
        registers,
        collect() {
          this.set(labels, read());
        },
      });
    };
    gauge("vllm:num_requests_running", "Number of requests in model execution batches.", () => source.numRunning());
    gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", () => source.numWaiting());
    gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", () => source.kvUsage());
    this.counters = mapEntries(COUNTERS, ([name, help]) => {
      const counter = new Counter({ name, help, labelNames: MODEL_LABELS, registers });
      counter.labels(labels).inc(0);
      return counter;
    });
    this.acceptedPerPosition = new Counter({
      name: "vllm:spec_decode_num_accepted_tokens_per_pos_total",
      help: "Accepted tokens per draft position.",
      labelNames: [...MODEL_LABELS, "position"],
      registers,
    });
    this.success = new Counter({
      name: "vllm:request_success_total",
      help: "Count of successfully processed requests.",
      labelNames: [...MODEL_LABELS, "finished_reason"],
      registers,
    });
    for (const reason of FINISH_REASONS) this.success.labels({ ...labels, finished_reason: reason }).inc(0);
    this.histograms = mapEntries(histogramDefinitions(source.contextSize), ([name, help, buckets]) => {
      const histogram = new Histogram({ name, help, labelNames: MODEL_LABELS, buckets: [...buckets], registers });
      histogram.zero(labels);
      return histogram;
    });
    registerCacheConfigInfo(registry, source);
  }

  observeStep(stats: StepStats, increments: StepIncrements): void {
    const inc = (key: CounterKey, value: number): void => this.counters[key].labels(this.labels).inc(value);
    inc("promptTokens", stats.numPromptTokens);
    inc("generationTokens", stats.numGeneratedTokens);
    this.histograms.iterationTokens.labels(this.labels).observe(stats.numPromptTokens + stats.numGeneratedTokens);
    inc("prefixQueries", increments.numPrefixQueriedTokens);
    inc("prefixHits", increments.numPrefixHitTokens);
    inc("preemptions", increments.numPreemptions);
    inc("drafts", increments.numDrafts);
    inc("draftTokens", increments.numDraftTokens);
    inc("acceptedTokens", increments.numAcceptedTokens);
    increments.acceptedPerPosition.forEach((increment, position) => {
      if (increment > 0) this.acceptedPerPosition.labels({ ...this.labels, position: String(position) }).inc(increment);
    });
  }

  observeRequestParams(n: number): void {
    this.histograms.n.labels(this.labels).observe(n);
  }

  observeRequest(stats: RequestStats, timings: RequestTimings): void {
    const observe = (key: HistogramKey, value: number | null): void => {
      if (value !== null) this.histograms[key].labels(this.labels).observe(value);
    };
    this.success.labels({ ...this.labels, finished_reason: stats.finishReason }).inc();
    observe("e2e", timings.e2eSeconds);
    observe("queue", timings.queueSeconds);
    observe("inference", timings.inferenceSeconds);
    observe("prefill", timings.prefillSeconds);
    observe("decode", timings.decodeSeconds);
    observe("ttft", timings.timeToFirstTokenSeconds);
    for (const intervalMs of stats.interTokenMs) observe("itl", intervalMs / 1000);
    observe("promptTokens", stats.numPromptTokens);
    observe("generationTokens", stats.numOutputTokens);
    observe("maxTokens", stats.maxTokens);
  }
}

/** vLLM's info gauge: always 1, the cache configuration in its labels. */
function registerCacheConfigInfo(registry: Registry, source: MetricsSource): void {
  new Gauge({
    name: "vllm:cache_config_info",
    help: "Information of the LLMEngine CacheConfig",
    labelNames: ["engine", "block_size", "num_gpu_blocks", "enable_prefix_caching", "cache_dtype"],
    registers: [registry],
  })
    .labels({
      engine: VLLM_ENGINE,
      block_size: String(source.kvBlockSize),
      num_gpu_blocks: String(source.numKvBlocks),
      enable_prefix_caching: source.isPrefixCaching ? "True" : "False",
      cache_dtype: "auto",
    })
    .set(1);
}
