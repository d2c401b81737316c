/**
 * Node's process metrics (prom-client's defaults) and pagoda's memory and event-loop gauges: what the process
 * costs, independent of the model.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import { collectDefaultMetrics, Gauge, type Registry } from "prom-client";

/**
 * prom-client's default gauges that are named like counters, which promtool rejects. Each is the sum of the family
 * of the same name without the suffix (e.g. `sum(nodejs_active_handles)`), so leaving them out loses nothing.
 */
const MISNAMED_DEFAULT_METRICS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
] as const;

export class ProcessMetrics {
  private readonly loopDelay: IntervalHistogram;

  constructor(registry: Registry) {
    collectDefaultMetrics({ register: registry });
    for (const name of MISNAMED_DEFAULT_METRICS) registry.removeSingleMetric(name);
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

  dispose(): void {
    this.loopDelay.disable();
  }
}
