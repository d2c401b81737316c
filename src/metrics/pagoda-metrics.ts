/**
 * pagoda's own server-level counters under `pagoda_`: HTTP responses, refusals before the engine, engine faults
 * and request timeouts. They exist before a model is loaded.
 */
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import { CONSTRAINT_KINDS, type ConstraintKind } from "../constrain/constraint-spec.ts";

/** Grammar compile times span a cached-size JSON schema (0.1 ms) to the compile limits (seconds). */
const COMPILE_SECONDS_BUCKETS = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5];

/** Why a request was refused before reaching the engine; each a label of `pagoda_requests_rejected_total`. */
export const REJECTION_REASONS = ["queue_full", "rate_limited", "unauthorized", "limit_exceeded"] as const;
export type RejectionReason = (typeof REJECTION_REASONS)[number];

/** Routes that embed through the pooling context, as `pagoda_pooled_*_total` label them. */
export const POOLED_ROUTES = ["embeddings", "rerank"] as const;
export type PooledRoute = (typeof POOLED_ROUTES)[number];

/** `tool_choice` as `pagoda_tool_requests_total` labels it. */
export const TOOL_CHOICE_KINDS = ["auto", "required", "named"] as const;
export type ToolChoiceKind = (typeof TOOL_CHOICE_KINDS)[number];

export class PagodaMetrics {
  private readonly http: Counter<"code">;
  private readonly rejected: Counter<"reason">;
  private readonly engineFaults: Counter;
  private readonly requestTimeouts: Counter;
  private readonly constrained: Counter<"kind">;
  private readonly compileSeconds: Histogram<"kind">;
  private readonly toolRequests: Counter<"tool_choice">;
  private readonly toolCalls: Counter;
  private readonly toolParseFailures: Counter;
  private readonly pooledInputs: Counter<"route" | "model_name">;
  private readonly pooledTokens: Counter<"route" | "model_name">;
  private readonly pooledQueues = new Map<string, () => number>();

  constructor(registry: Registry) {
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
      help: "Generations stopped because they ran past --request-timeout-seconds.",
      registers: [registry],
    });
    this.constrained = new Counter({
      name: "pagoda_constrained_requests_total",
      help: "Generation requests whose output follows a grammar, by what asked for it (json_object, json_schema, grammar, regex, choice).",
      labelNames: ["kind"],
      registers: [registry],
    });
    for (const kind of CONSTRAINT_KINDS) this.constrained.labels(kind).inc(0);
    this.compileSeconds = new Histogram({
      name: "pagoda_grammar_compile_seconds",
      help: "Time to compile a generation request's constraint to a grammar, when it was not cached, by kind.",
      labelNames: ["kind"],
      buckets: COMPILE_SECONDS_BUCKETS,
      registers: [registry],
    });
    this.toolRequests = new Counter({
      name: "pagoda_tool_requests_total",
      help: "Chat requests offering tools the model may call, by tool_choice (auto, required, named); none is not counted.",
      labelNames: ["tool_choice"],
      registers: [registry],
    });
    for (const kind of TOOL_CHOICE_KINDS) this.toolRequests.labels(kind).inc(0);
    this.toolCalls = new Counter({
      name: "pagoda_tool_calls_total",
      help: "Tool calls returned to clients.",
      registers: [registry],
    });
    this.pooledInputs = new Counter({
      name: "pagoda_pooled_inputs_total",
      help: "Inputs embedded by a pooling context, by route (embeddings; rerank, one per query and document pair) and model.",
      labelNames: ["route", "model_name"],
      registers: [registry],
    });
    this.pooledTokens = new Counter({
      name: "pagoda_pooled_tokens_total",
      help: "Tokens of the inputs embedded by a pooling context, by route and model.",
      labelNames: ["route", "model_name"],
      registers: [registry],
    });
    const pooledQueues = this.pooledQueues;
    new Gauge({
      name: "pagoda_pooled_inputs_waiting",
      help: "Embedding and rerank inputs waiting for a decode of a model's pooling context (its queue), by model.",
      labelNames: ["model_name"],
      registers: [registry],
      collect() {
        for (const [modelName, numWaiting] of pooledQueues) this.labels(modelName).set(numWaiting());
      },
    });
    this.toolParseFailures = new Counter({
      name: "pagoda_tool_parse_failures_total",
      help: "Choices whose tool call could not be read (usually cut by max_tokens); their text is returned as content.",
      registers: [registry],
    });
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

  observeToolRequest(kind: ToolChoiceKind): void {
    this.toolRequests.labels(kind).inc();
  }

  /**
   * Starts the pooled counters of a model's routes at zero, so a rate over them exists before the first request, and
   * reads its queue's length at every scrape.
   */
  declarePooled(modelName: string, numWaiting: () => number, routes: readonly PooledRoute[] = POOLED_ROUTES): void {
    this.pooledQueues.set(modelName, numWaiting);
    for (const route of routes) {
      this.pooledInputs.labels(route, modelName).inc(0);
      this.pooledTokens.labels(route, modelName).inc(0);
    }
  }

  /** Inputs a route had a model's pooling context embed. */
  observePooled(route: PooledRoute, modelName: string, numInputs: number, numTokens: number): void {
    this.pooledInputs.labels(route, modelName).inc(numInputs);
    this.pooledTokens.labels(route, modelName).inc(numTokens);
  }

  /** One choice's output, read for calls. */
  observeToolOutput(numCalls: number, isParseFailure: boolean): void {
    if (numCalls > 0) this.toolCalls.inc(numCalls);
    if (isParseFailure) this.toolParseFailures.inc();
  }

  /** A constrained request; `compileMs` is null when its grammar came from the cache. */
  observeConstraint(kind: ConstraintKind, compileMs: number | null): void {
    this.constrained.labels(kind).inc();
    if (compileMs !== null) this.compileSeconds.labels(kind).observe(compileMs / 1000);
  }
}
