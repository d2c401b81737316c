/**
 * Prometheus metrics under vLLM's exact names, types, labels and buckets, llama-server's names as aliases, and
 * pagoda's own under `pagoda_`. It subscribes to the plain stats records the engine loop and scheduler emit.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import { Counter, collectDefaultMetrics, Gauge, Histogram, type Registry } from "prom-client";
import type { StepStats } from "../scheduler/engine-loop.ts";
import type { FinishReason } from "../scheduler/request.ts";
import type { KvCacheState, RequestStats } from "../scheduler/scheduler.ts";
import type { SpecStats } from "../spec/speculator.ts";
import {
  build125Buckets,
  INTER_TOKEN_LATENCY_BUCKETS,
  ITERATION_TOKENS_BUCKETS,
  REQUEST_LATENCY_BUCKETS,
  REQUEST_PARAMS_N_BUCKETS,
  TIME_TO_FIRST_TOKEN_BUCKETS,
} from "./vllm-buckets.ts";

/** Live values read at scrape time. */
export interface MetricsSource {
  readonly modelName: string;
  readonly maxModelLen: number;
  readonly numSequences: number;
  /** KV cells the engine reserved. */
  readonly numKvCells: number;
  /** Tokens per KV block and blocks in the pool, for vllm:cache_config_info. */
  readonly kvBlockSize: number;
  readonly numKvBlocks: number;
  readonly isPrefixCaching: boolean;
  numRunning(): number;
  numWaiting(): number;
  numKvTokens(): number;
  /** Used KV blocks over all blocks, 0..1. */
  kvUsage(): number;
  /** KV blocks held by requests, and free blocks still holding a cached prefix. */
  kvBlocks(): { readonly used: number; readonly cached: number };
}

const FINISH_REASONS: readonly FinishReason[] = ["stop", "length", "abort", "error"];

/** Why a request was refused before reaching the engine; each a label of `pagoda_requests_rejected_total`. */
export const REJECTION_REASONS = ["queue_full", "rate_limited", "unauthorized", "limit_exceeded"] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];
/** vLLM labels every series with the engine core's index; pagoda has one engine. */
const ENGINE = "0";

export class ServerMetrics {
  private readonly registry: Registry;
  private readonly http: Counter;
  private readonly rejected: Counter;
  private readonly engineFaults: Counter;
  private readonly requestTimeouts: Counter;
  private readonly loopDelay: IntervalHistogram;
  private model: ModelMetrics | null = null;

  constructor(registry: Registry) {
    this.registry = registry;
    collectDefaultMetrics({ register: registry });
    this.http = new Counter({
      name: "pagoda_http_responses_total",
      help: "HTTP responses by status code.",
      labelNames: ["code"],
      registers: [registry],
    });
    this.rejected = new Counter({
      name: "pagoda_requests_rejected_total",
      help: "Requests refused before reaching the engine, by reason (queue_full and rate_limited answer 429, unauthorized 401, limit_exceeded 400).",
      labelNames: ["reason"],
      registers: [registry],
    });
    for (const reason of REJECTION_REASONS) this.rejected.labels(reason).inc(0);
    this.engineFaults = new Counter({
      name: "pagoda_engine_faults_total",
      help: "Failures of the engine loop itself; each fails every request, turns /health to 503 and exits the process.",
      registers: [registry],
    });
    this.requestTimeouts = new Counter({
      name: "pagoda_request_timeouts_total",
      help: "Generations stopped because they ran past --request-timeout.",
      registers: [registry],
    });
    new Gauge({
      name: "pagoda_memory_bytes",
      help: "Process memory by category (rss includes the model weights llama.cpp maps and its KV cache).",
      labelNames: ["category"],
      registers: [registry],
      collect() {
        const usage = process.memoryUsage();
        this.set({ category: "rss" }, usage.rss);
        this.set({ category: "js_heap_used" }, usage.heapUsed);
        this.set({ category: "external" }, usage.external);
        this.set({ category: "array_buffers" }, usage.arrayBuffers);
      },
    });
    this.loopDelay = monitorEventLoopDelay({ resolution: 10 });
    this.loopDelay.enable();
    const loopDelay = this.loopDelay;
    new Gauge({
      name: "pagoda_event_loop_lag_seconds",
      help: "Largest event-loop delay since the previous scrape; engine steps and HTTP share this loop.",
      registers: [registry],
      collect() {
        this.set(loopDelay.max / 1e9);
        loopDelay.reset();
      },
    });
  }

  /** Registers the model's metrics once it is loaded; they read `source` at every scrape. */
  attach(source: MetricsSource): void {
    if (this.model === null) this.model = new ModelMetrics(this.registry, source);
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

  observeHttpResponse(statusCode: number): void {
    this.http.labels(String(statusCode)).inc();
  }

  observeRejection(reason: RejectionReason): void {
    this.rejected.labels(reason).inc();
  }

  observeEngineFault(): void {
    this.engineFaults.inc();
  }

  observeRequestTimeout(): void {
    this.requestTimeouts.inc();
  }

  dispose(): void {
    this.loopDelay.disable();
  }
}

class ModelMetrics {
  private readonly requestParamsN: Histogram;
  private readonly labels: { model_name: string; engine: string };
  private readonly counters: Record<string, Counter>;
  private readonly histograms: Record<string, Histogram>;
  private readonly success: Counter;
  private readonly llamaDecodes: Counter;
  private readonly stepSeconds: Histogram;
  private numBusySlots = 0;
  private numDecodes = 0;
  private readonly acceptedPerPosition: Counter<"model_name" | "engine" | "position">;
  private lastSpec: SpecStats = {
    numDrafts: 0,
    numDraftTokens: 0,
    numAcceptedTokens: 0,
    acceptedPerPosition: [],
    numDraftFailures: 0,
  };
  private lastKv: Pick<KvCacheState, "prefixQueriedTokens" | "prefixHitTokens" | "numPreemptions"> = {
    prefixQueriedTokens: 0,
    prefixHitTokens: 0,
    numPreemptions: 0,
  };

  constructor(registry: Registry, source: MetricsSource) {
    const labels = { model_name: source.modelName, engine: ENGINE };
    const labelNames = ["model_name", "engine"] as const;
    const counter = (name: string, help: string): Counter => {
      const metric = new Counter({ name, help, labelNames, registers: [registry] });
      metric.labels(labels).inc(0);
      return metric;
    };
    const histogram = (name: string, help: string, buckets: number[]): Histogram => {
      const metric = new Histogram({ name, help, labelNames, buckets, registers: [registry] });
      metric.zero(labels);
      return metric;
    };
    const gauge = (name: string, help: string, read: () => number, labelled = true): void => {
      new Gauge({
        name,
        help,
        labelNames: labelled ? labelNames : [],
        registers: [registry],
        collect() {
          if (labelled) this.set(labels, read());
          else this.set(read());
        },
      });
    };
    const kvUsage = (): number => source.kvUsage();

    gauge("vllm:num_requests_running", "Number of requests in model execution batches.", () => source.numRunning());
    gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed.", () => source.numWaiting());
    gauge("vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage.", kvUsage);
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
    this.counters = {
      prefixQueries: counter(
        "vllm:prefix_cache_queries_total",
        "Prefix cache queries, in terms of number of queried tokens.",
      ),
      prefixHits: counter("vllm:prefix_cache_hits_total", "Prefix cache hits, in terms of number of cached tokens."),
      preemptions: counter("vllm:num_preemptions_total", "Cumulative number of preemption from the engine."),
      promptTokens: counter("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
      generationTokens: counter("vllm:generation_tokens_total", "Number of generation tokens processed."),
      drafts: counter("vllm:spec_decode_num_drafts_total", "Number of spec decoding drafts."),
      draftTokens: counter("vllm:spec_decode_num_draft_tokens_total", "Number of draft tokens."),
      acceptedTokens: counter("vllm:spec_decode_num_accepted_tokens_total", "Number of accepted tokens."),
      llamaPromptTokens: counterUnlabelled(
        registry,
        "llamacpp:prompt_tokens_total",
        "Number of prompt tokens processed.",
      ),
      llamaPromptSeconds: counterUnlabelled(registry, "llamacpp:prompt_seconds_total", "Prompt process time."),
      llamaPredicted: counterUnlabelled(
        registry,
        "llamacpp:tokens_predicted_total",
        "Number of generation tokens processed.",
      ),
      llamaPredictedSeconds: counterUnlabelled(
        registry,
        "llamacpp:tokens_predicted_seconds_total",
        "Predict process time.",
      ),
      llamaDraftTokens: counterUnlabelled(
        registry,
        "llamacpp:spec_decode_num_draft_tokens_total",
        "Number of draft tokens.",
      ),
      llamaAcceptedTokens: counterUnlabelled(
        registry,
        "llamacpp:spec_decode_num_accepted_tokens_total",
        "Number of accepted draft tokens.",
      ),
    };
    this.acceptedPerPosition = new Counter({
      name: "vllm:spec_decode_num_accepted_tokens_per_pos_total",
      help: "Accepted tokens per draft position.",
      labelNames: ["model_name", "engine", "position"],
      registers: [registry],
    });
    this.success = new Counter({
      name: "vllm:request_success_total",
      help: "Count of successfully processed requests.",
      labelNames: ["model_name", "engine", "finished_reason"],
      registers: [registry],
    });
    for (const reason of FINISH_REASONS) this.success.labels({ ...labels, finished_reason: reason }).inc(0);
    const tokenBuckets = build125Buckets(source.maxModelLen);
    this.histograms = {
      ttft: histogram(
        "vllm:time_to_first_token_seconds",
        "Histogram of time to first token in seconds.",
        TIME_TO_FIRST_TOKEN_BUCKETS,
      ),
      itl: histogram(
        "vllm:inter_token_latency_seconds",
        "Histogram of inter-token latency in seconds.",
        INTER_TOKEN_LATENCY_BUCKETS,
      ),
      e2e: histogram(
        "vllm:e2e_request_latency_seconds",
        "Histogram of e2e request latency in seconds.",
        REQUEST_LATENCY_BUCKETS,
      ),
      queue: histogram(
        "vllm:request_queue_time_seconds",
        "Histogram of time spent in WAITING phase for request.",
        REQUEST_LATENCY_BUCKETS,
      ),
      inference: histogram(
        "vllm:request_inference_time_seconds",
        "Histogram of time spent in RUNNING phase for request.",
        REQUEST_LATENCY_BUCKETS,
      ),
      prefill: histogram(
        "vllm:request_prefill_time_seconds",
        "Histogram of time spent in PREFILL phase for request.",
        REQUEST_LATENCY_BUCKETS,
      ),
      decode: histogram(
        "vllm:request_decode_time_seconds",
        "Histogram of time spent in DECODE phase for request.",
        REQUEST_LATENCY_BUCKETS,
      ),
      promptTokens: histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tokenBuckets),
      generationTokens: histogram(
        "vllm:request_generation_tokens",
        "Number of generation tokens processed.",
        tokenBuckets,
      ),
      iterationTokens: histogram(
        "vllm:iteration_tokens_total",
        "Histogram of number of tokens per engine_step.",
        ITERATION_TOKENS_BUCKETS,
      ),
      maxTokens: histogram(
        "vllm:request_params_max_tokens",
        "Histogram of the max_tokens request parameter.",
        tokenBuckets,
      ),
    };
    this.requestParamsN = histogram(
      "vllm:request_params_n",
      "Histogram of the n request parameter.",
      REQUEST_PARAMS_N_BUCKETS,
    );
    new Gauge({
      name: "vllm:cache_config_info",
      help: "Information of the LLMEngine CacheConfig",
      labelNames: ["engine", "block_size", "num_gpu_blocks", "enable_prefix_caching", "cache_dtype"],
      registers: [registry],
    })
      .labels({
        engine: ENGINE,
        block_size: String(source.kvBlockSize),
        num_gpu_blocks: String(source.numKvBlocks),
        enable_prefix_caching: source.isPrefixCaching ? "True" : "False",
        cache_dtype: "auto",
      })
      .set(1);

    this.llamaDecodes = counterUnlabelled(registry, "llamacpp:n_decode_total", "Total number of llama_decode() calls.");
    gauge(
      "llamacpp:n_busy_slots_per_decode",
      "Average number of busy slots per llama_decode() call.",
      () => (this.numDecodes === 0 ? 0 : this.numBusySlots / this.numDecodes),
      false,
    );
    gauge("llamacpp:kv_cache_usage_ratio", "KV-cache usage. 1 means 100 percent usage.", kvUsage, false);
    gauge("llamacpp:kv_cache_tokens", "KV-cache tokens.", () => source.numKvTokens(), false);
    gauge("llamacpp:requests_processing", "Number of requests processing.", () => source.numRunning(), false);
    gauge("llamacpp:requests_deferred", "Number of requests deferred.", () => source.numWaiting(), false);
    this.stepSeconds = new Histogram({
      name: "pagoda_engine_step_seconds",
      help: "Wall time of one engine step: one batched decode plus sampling and bookkeeping.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
    this.labels = labels;
  }

  observeStep(stats: StepStats): void {
    this.counters.promptTokens?.labels(this.labels).inc(stats.numPromptTokens);
    this.counters.generationTokens?.labels(this.labels).inc(stats.numGeneratedTokens);
    this.counters.llamaPromptTokens?.inc(stats.numPromptTokens);
    this.counters.llamaPredicted?.inc(stats.numGeneratedTokens);
    this.histograms.iterationTokens?.labels(this.labels).observe(stats.numPromptTokens + stats.numGeneratedTokens);
    this.llamaDecodes.inc();
    this.numDecodes += 1;
    this.numBusySlots += stats.numSequences;
    this.stepSeconds.observe(stats.durationMs / 1000);
    // The pool's counters are cumulative; Prometheus counters take the increments.
    const kv = stats.kvCache;
    this.counters.prefixQueries?.labels(this.labels).inc(kv.prefixQueriedTokens - this.lastKv.prefixQueriedTokens);
    this.counters.prefixHits?.labels(this.labels).inc(kv.prefixHitTokens - this.lastKv.prefixHitTokens);
    this.counters.preemptions?.labels(this.labels).inc(kv.numPreemptions - this.lastKv.numPreemptions);
    this.lastKv = kv;
    const spec = stats.spec;
    if (spec !== null) {
      const last = this.lastSpec;
      this.counters.drafts?.labels(this.labels).inc(spec.numDrafts - last.numDrafts);
      this.counters.draftTokens?.labels(this.labels).inc(spec.numDraftTokens - last.numDraftTokens);
      this.counters.acceptedTokens?.labels(this.labels).inc(spec.numAcceptedTokens - last.numAcceptedTokens);
      this.counters.llamaDraftTokens?.inc(spec.numDraftTokens - last.numDraftTokens);
      this.counters.llamaAcceptedTokens?.inc(spec.numAcceptedTokens - last.numAcceptedTokens);
      spec.acceptedPerPosition.forEach((count, position) => {
        const increment = count - (last.acceptedPerPosition[position] ?? 0);
        if (increment > 0)
          this.acceptedPerPosition.labels({ ...this.labels, position: String(position) }).inc(increment);
      });
      this.lastSpec = spec;
    }
  }

  observeRequestParams(n: number): void {
    this.requestParamsN.labels(this.labels).observe(n);
  }

  observeRequest(stats: RequestStats): void {
    const observe = (name: string, value: number | null): void => {
      if (value !== null) this.histograms[name]?.labels(this.labels).observe(value);
    };
    const seconds = (fromMs: number | null, toMs: number | null): number | null =>
      fromMs === null || toMs === null ? null : Math.max(0, toMs - fromMs) / 1000;
    this.success.labels({ ...this.labels, finished_reason: stats.finishReason }).inc();
    observe("e2e", seconds(stats.arrivalMs, stats.finishedMs));
    observe("queue", seconds(stats.arrivalMs, stats.scheduledMs ?? stats.finishedMs));
    observe("inference", seconds(stats.scheduledMs, stats.finishedMs));
    observe("prefill", seconds(stats.scheduledMs, stats.firstTokenMs));
    observe("decode", seconds(stats.firstTokenMs, stats.lastTokenMs));
    observe("ttft", seconds(stats.arrivalMs, stats.firstTokenMs));
    for (const interval of stats.interTokenMs) observe("itl", interval / 1000);
    observe("promptTokens", stats.numPromptTokens);
    observe("generationTokens", stats.numOutputTokens);
    observe("maxTokens", stats.maxTokens);
    const prefillSeconds = seconds(stats.scheduledMs, stats.firstTokenMs);
    const decodeSeconds = seconds(stats.firstTokenMs, stats.lastTokenMs);
    if (prefillSeconds !== null) this.counters.llamaPromptSeconds?.inc(prefillSeconds);
    if (decodeSeconds !== null) this.counters.llamaPredictedSeconds?.inc(decodeSeconds);
  }
}

function counterUnlabelled(registry: Registry, name: string, help: string): Counter {
  return new Counter({ name, help, registers: [registry] });
}
