/**
 * Runs in a worker thread: scrapes `${baseUrl}${path}` (/metrics) on a fixed period, as the endpoint picker does every 50 ms
 * (no token, a new scrape only once the last one is read: a slow scrape skips ticks rather than piling up).
 * Receives { baseUrl, periodMs, path } to start and "stop" to stop, then posts back what it did.
 */
import { parentPort } from "node:worker_threads";

interface ScrapeStart {
  readonly baseUrl: string;
  readonly periodMs: number;
  readonly path: string;
}

export interface ScrapeReport {
  readonly numScrapes: number;
  readonly durationMs: number;
  readonly meanScrapeMs: number;
  readonly maxScrapeMs: number;
  readonly bytesPerScrape: number;
}

let isRunning = false;

async function scrape(request: ScrapeStart): Promise<ScrapeReport> {
  const startMs = performance.now();
  let numScrapes = 0;
  let totalScrapeMs = 0;
  let maxScrapeMs = 0;
  let bytes = 0;
  let nextMs = startMs;
  while (isRunning) {
    const scrapeStartMs = performance.now();
    const response = await fetch(`${request.baseUrl}${request.path}`);
    if (!response.ok) throw new Error(`${request.path} answered ${response.status}`);
    bytes += (await response.arrayBuffer()).byteLength;
    const scrapeMs = performance.now() - scrapeStartMs;
    numScrapes++;
    totalScrapeMs += scrapeMs;
    maxScrapeMs = Math.max(maxScrapeMs, scrapeMs);
    nextMs += request.periodMs;
    const nowMs = performance.now();
    if (nextMs < nowMs) nextMs = nowMs;
    await new Promise((resolve) => setTimeout(resolve, nextMs - nowMs));
  }
  return {
    numScrapes,
    durationMs: performance.now() - startMs,
    meanScrapeMs: totalScrapeMs / Math.max(1, numScrapes),
    maxScrapeMs,
    bytesPerScrape: bytes / Math.max(1, numScrapes),
  };
}

let running: Promise<ScrapeReport> | null = null;

parentPort?.on("message", (message: ScrapeStart | "stop") => {
  if (message === "stop") {
    isRunning = false;
    running?.then(
      (report) => parentPort?.postMessage(report),
      (error: unknown) => parentPort?.postMessage({ error: String(error) }),
    );
    running = null;
    return;
  }
  isRunning = true;
  running = scrape(message);
});
