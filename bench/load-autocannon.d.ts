/**
 * The part of autocannon's programmatic API the benchmarks use; autocannon ships no type declarations.
 * Field meanings follow its README ("Results" and "Usage" → "autocannon(opts[, cb])").
 */
declare module "autocannon" {
  /** One request of a sequence; `setupRequest` may rewrite it per request, `onResponse` sees every answer. */
  interface AutocannonRequest {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    setupRequest?: (request: AutocannonRequest, context: Record<string, unknown>) => AutocannonRequest;
    onResponse?: (
      status: number,
      body: string,
      context: Record<string, unknown>,
      headers: Record<string, string>,
    ) => void;
  }

  interface AutocannonOptions {
    url: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    /** Concurrent connections. Defaults to 10. */
    connections?: number;
    /** Seconds to run. Defaults to 10. */
    duration?: number;
    /** Requests to make; overrides duration. */
    amount?: number;
    /** Seconds before a request counts as timed out. Defaults to 10. */
    timeout?: number;
    requests?: AutocannonRequest[];
    title?: string;
  }

  /** Percentiles and moments of one histogram, in its unit (milliseconds for latency). */
  interface AutocannonHistogram {
    average: number;
    mean: number;
    stddev: number;
    min: number;
    max: number;
    total: number;
    p50: number;
    p90: number;
    p97_5: number;
    p99: number;
    [percentile: string]: number;
  }

  interface AutocannonResult {
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    resets: number;
    mismatches: number;
    "1xx": number;
    "2xx": number;
    "3xx": number;
    "4xx": number;
    "5xx": number;
    statusCodeStats: Record<string, { count: number }>;
    latency: AutocannonHistogram;
    requests: AutocannonHistogram & { sent: number };
    throughput: AutocannonHistogram;
  }

  interface AutocannonInstance extends PromiseLike<AutocannonResult> {
    stop(): void;
  }

  function autocannon(options: AutocannonOptions): AutocannonInstance;
  export default autocannon;
}
