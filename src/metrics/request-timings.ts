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
    e2eSeconds: seconds(stats.arrivalMs, stats.finishedMs),
    // A request that never left the queue waited until it finished.
    queueSeconds: seconds(stats.arrivalMs, stats.scheduledMs ?? stats.finishedMs),
    inferenceSeconds: seconds(stats.scheduledMs, stats.finishedMs),
    prefillSeconds: seconds(stats.scheduledMs, stats.firstTokenMs),
    decodeSeconds: seconds(stats.firstTokenMs, stats.lastTokenMs),
    timeToFirstTokenSeconds: seconds(stats.arrivalMs, stats.firstTokenMs),
  };
}

function seconds(fromMs: number | null, toMs: number | null): number | null {
  return fromMs === null || toMs === null ? null : Math.max(0, toMs - fromMs) / 1000;
}
