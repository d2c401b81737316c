/** The phases of one finished request in seconds, computed once for vLLM's histograms and llama-server's totals. */
import type { RequestStats } from "../scheduler/scheduler.ts";

/** Each phase in seconds, or null when the request never reached it (e.g. aborted while waiting). */
export interface RequestTimings {
  readonly e2eSeconds: number | null;
  readonly queueSeconds: number | null;
  readonly inferenceSeconds: number | null;
  readonly prefillSeconds: number | null;
  readonly decodeSeconds: number | null;
  readonly timeToFirstTokenSeconds: number | null;
}

export function requestTimings(stats: RequestStats): RequestTimings {
  return {
    e2eSeconds: seconds(stats.arrivalAtMs, stats.finishedAtMs),
    // A request that never left the queue waited until it finished.
    queueSeconds: seconds(stats.arrivalAtMs, stats.scheduledAtMs ?? stats.finishedAtMs),
    inferenceSeconds: seconds(stats.scheduledAtMs, stats.finishedAtMs),
    prefillSeconds: seconds(stats.scheduledAtMs, stats.firstTokenAtMs),
    decodeSeconds: seconds(stats.firstTokenAtMs, stats.lastTokenAtMs),
    timeToFirstTokenSeconds: seconds(stats.arrivalAtMs, stats.firstTokenAtMs),
  };
}

function seconds(fromMs: number | null, toMs: number | null): number | null {
  return fromMs === null || toMs === null ? null : Math.max(0, toMs - fromMs) / 1000;
}
