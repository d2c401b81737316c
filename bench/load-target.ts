/**
 * One load run against one OpenAI-compatible server: autocannon drives `concurrency` keep-alive connections of
 * completions (whole-response latency, throughput, status codes), while the streaming probe measures TTFT and ITL.
 */
import autocannon from "autocannon";
import { type ProbeResult, runProbe } from "./load-probe.ts";

export interface LoadTarget {
  /** "pagoda" or "compare", for the table and the JSON. */
  readonly label: string;
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:8080. */
  readonly url: string;
  readonly model: string;
  readonly headers: Record<string, string>;
}

export interface RequestShape {
  readonly route: "completions" | "chat";
  readonly path: string;
  body(prompt: string, isStream: boolean): Record<string, unknown>;
}

export interface ShapeOptions {
  readonly route: "completions" | "chat";
  readonly model: string;
  readonly maxTokens: number;
  readonly temperature: number;
  /** Send `ignore_eos` (vLLM's and llama-server's extension) so every request generates max_tokens. */
  readonly isIgnoreEos: boolean;
}

export function requestShape(options: ShapeOptions): RequestShape {
  const common = {
    model: options.model,
    max_tokens: options.maxTokens,
    temperature: options.temperature,
    ...(options.isIgnoreEos ? { ignore_eos: true } : {}),
  };
  const streamFields = (isStream: boolean): Record<string, unknown> =>
    isStream ? { stream: true, stream_options: { include_usage: true } } : {};
  if (options.route === "chat") {
    return {
      route: "chat",
      path: "/v1/chat/completions",
      body: (prompt, isStream) => ({
        ...common,
        messages: [{ role: "user", content: prompt }],
        ...streamFields(isStream),
      }),
    };
  }
  return {
    route: "completions",
    path: "/v1/completions",
    body: (prompt, isStream) => ({ ...common, prompt, ...streamFields(isStream) }),
  };
}

export interface LoadOptions {
  readonly concurrency: number;
  /** Seconds to run; ignored when `numRequests` is set. */
  readonly durationSeconds: number;
  readonly numRequests: number | null;
  readonly isStream: boolean;
  /** Seconds before autocannon counts a request as timed out. */
  readonly timeoutSeconds: number;
  /** Streams the probe keeps open alongside the load; 0 turns it off. */
  readonly numProbeStreams: number;
}

export interface TargetResult {
  readonly label: string;
  readonly url: string;
  readonly model: string;
  readonly durationSeconds: number;
  readonly numRequests: number;
  /** 2xx answers. */
  readonly numOk: number;
  /** 429 answers: the server refusing load it cannot take (queue full, rate limit), reported apart from failures. */
  readonly numRateLimited: number;
  /** Every other non-2xx answer, plus connection errors and timeouts. */
  readonly numFailed: number;
  /** Connection errors (resets, refused connections), timeouts not included. */
  readonly numErrors: number;
  readonly numTimeouts: number;
  readonly statusCodes: Record<string, number>;
  readonly requestsPerSecond: number;
  /** From the usage the server reported in each 2xx answer. */
  readonly completionTokens: number;
  readonly completionTokensPerSecond: number;
  /** Whole-response latency of every answer, in milliseconds. */
  readonly latencyMs: {
    readonly mean: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
    readonly max: number;
  };
  readonly probe: ProbeResult | null;
}

/** The completion tokens a response body reports: the JSON usage, or the usage chunk of a stream. */
export function completionTokensOf(body: string): number {
  if (!body.startsWith("data: ")) {
    try {
      return (JSON.parse(body) as { usage?: { completion_tokens?: number } }).usage?.completion_tokens ?? 0;
    } catch {
      return 0;
    }
  }
  let tokens = 0;
  for (const frame of body.split("\n\n")) {
    if (!frame.includes('"usage":{')) continue;
    try {
      tokens =
        (JSON.parse(frame.slice("data: ".length)) as { usage?: { completion_tokens?: number } }).usage
          ?.completion_tokens ?? tokens;
    } catch {
      // A truncated frame reports nothing.
    }
  }
  return tokens;
}

/** The first model a server lists, for runs that do not name one. */
export async function firstModel(url: string, headers: Record<string, string>): Promise<string> {
  const response = await fetch(`${url}/v1/models`, { headers });
  if (!response.ok)
    throw new Error(`GET ${url}/v1/models answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
  const id = ((await response.json()) as { data?: { id?: string }[] }).data?.[0]?.id;
  if (id === undefined) throw new Error(`${url}/v1/models lists no model`);
  return id;
}

export async function runTarget(
  target: LoadTarget,
  shape: RequestShape,
  prompts: readonly string[],
  options: LoadOptions,
): Promise<TargetResult> {
  const probeControl = new AbortController();
  const probe =
    options.numProbeStreams > 0
      ? runProbe(target, shape, prompts, options.numProbeStreams, probeControl.signal)
      : Promise.resolve(null);
  let next = 0;
  let completionTokens = 0;
  const startMs = performance.now();
  const result = await autocannon({
    url: `${target.url}${shape.path}`,
    method: "POST",
    headers: target.headers,
    connections: options.concurrency,
    ...(options.numRequests === null ? { duration: options.durationSeconds } : { amount: options.numRequests }),
    timeout: options.timeoutSeconds,
    requests: [
      {
        setupRequest: (request) => ({
          ...request,
          body: JSON.stringify(shape.body(prompts[next++ % prompts.length] ?? "", options.isStream)),
        }),
        onResponse: (status, body) => {
          if (status >= 200 && status < 300) completionTokens += completionTokensOf(body);
        },
      },
    ],
  });
  const elapsedSeconds = (performance.now() - startMs) / 1000;
  probeControl.abort();
  const statusCodes = Object.fromEntries(
    Object.entries(result.statusCodeStats).map(([code, { count }]) => [code, count]),
  );
  const numRateLimited = statusCodes["429"] ?? 0;
  const numOk = result["2xx"];
  const numAnswered = Object.values(statusCodes).reduce((sum, count) => sum + count, 0);
  const durationSeconds = Math.round(elapsedSeconds * 100) / 100;
  const latency = result.latency;
  return {
    label: target.label,
    url: target.url,
    model: target.model,
    durationSeconds,
    // autocannon counts a timeout as an error too.
    numRequests: numAnswered + result.errors,
    numOk,
    numRateLimited,
    numFailed: numAnswered - numOk - numRateLimited + result.errors,
    numErrors: result.errors - result.timeouts,
    numTimeouts: result.timeouts,
    statusCodes,
    requestsPerSecond: Math.round((numAnswered / elapsedSeconds) * 10) / 10,
    completionTokens,
    completionTokensPerSecond: Math.round((completionTokens / elapsedSeconds) * 10) / 10,
    latencyMs: { mean: latency.mean, p50: latency.p50, p90: latency.p90, p99: latency.p99, max: latency.max },
    probe: await probe,
  };
}
