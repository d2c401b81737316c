/**
 * What scraping /metrics at the endpoint picker's rate costs a generating server: the same streamed load on one
 * loaded model with and without a scraper fetching /metrics every 50 ms (20 Hz), runs interleaved (the order
 * alternating each round), medians of aggregate tokens per second and their ratio. Load clients and the scraper
 * each run in their own worker thread, so only the server's side of a scrape lands on the server's event loop;
 * steps and requests feed the metrics as in `npm start`, so the exposition has its real size.
 *
 *   npm run bench:metrics-scrape -- [--model path.gguf] [--threads 1] [--streams 8] [--max-tokens 256]
 *                                   [--rounds 7] [--period-ms 50] [--path /metrics]
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Worker } from "node:worker_threads";
import { loadRuntimeWith } from "./harness.ts";
import type { ScrapeReport } from "./metrics-scrape-worker.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    model: { type: "string", default: path.resolve(repoRoot, "../shared/models/stories260K.gguf") },
    threads: { type: "string", default: "1" },
    streams: { type: "string", default: "8" },
    "max-tokens": { type: "string", default: "256" },
    rounds: { type: "string", default: "7" },
    "period-ms": { type: "string", default: "50" },
    // A control: --path /livez makes the same requests at the same rate without the exposition's cost.
    path: { type: "string", default: "/metrics" },
  },
});
const numStreams = Number(values.streams);
const maxTokens = Number(values["max-tokens"]);
const numRounds = Number(values.rounds);
const periodMs = Number(values["period-ms"]);
const PROMPTS = ["Once upon a time", "The little dog", "Lily and Ben went to the park", "One day, a big bird"];

/** A worker running one of bench/'s TypeScript modules (loader hooks do not reach workers on Node 20). */
function tsWorker(file: string): Worker {
  const url = new URL(file, import.meta.url).href;
  const tsxApi = import.meta.resolve("tsx/esm/api");
  const shim = `import { register } from ${JSON.stringify(tsxApi)}; register(); await import(${JSON.stringify(url)});`;
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(shim)}`));
}

function nextMessage<T>(worker: Worker): Promise<T> {
  return new Promise((resolve, reject) => {
    worker.once("message", (message: T & { error?: string }) => {
      if (message.error !== undefined) reject(new Error(message.error));
      else resolve(message);
    });
  });
}

function median(numbers: readonly number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function main(): Promise<void> {
  const server = await loadRuntimeWith(
    [
      "--model",
      values.model,
      "--threads",
      values.threads,
      "--parallel",
      String(numStreams),
      "--ctx-size",
      String(maxTokens + 64),
    ],
    { listen: true, isObservingMetrics: true },
  );
  const baseUrl = server.baseUrl ?? "";
  const load = tsWorker("./http-load-worker.ts");
  const scraper = tsWorker("./metrics-scrape-worker.ts");
  const prompts = Array.from({ length: numStreams }, (_, index) => PROMPTS[index % PROMPTS.length] ?? "");

  const run = async (isScraped: boolean): Promise<{ tokensPerSecond: number; scrape: ScrapeReport | null }> => {
    if (isScraped) scraper.postMessage({ baseUrl, periodMs, path: values.path });
    const loaded = nextMessage<{ durationMs: number; numTokens: number }>(load);
    load.postMessage({ baseUrl, model: server.runtime.modelId, prompts, maxTokens });
    const { durationMs, numTokens } = await loaded;
    let scrape: ScrapeReport | null = null;
    if (isScraped) {
      const report = nextMessage<ScrapeReport>(scraper);
      scraper.postMessage("stop");
      scrape = await report;
    }
    if (numTokens !== numStreams * maxTokens) throw new Error(`the load returned ${numTokens} tokens`);
    return { tokensPerSecond: (numTokens / durationMs) * 1000, scrape };
  };

  await run(false);
  await run(true);
  const plain: number[] = [];
  const scraped: number[] = [];
  const reports: ScrapeReport[] = [];
  for (let round = 0; round < numRounds; round++) {
    const order = round % 2 === 0 ? [false, true] : [true, false];
    for (const isScraped of order) {
      const result = await run(isScraped);
      (isScraped ? scraped : plain).push(result.tokensPerSecond);
      if (result.scrape !== null) reports.push(result.scrape);
    }
  }

  const ratios = plain.map((value, index) => (scraped[index] ?? 0) / value);
  const scrapesPerSecond = reports.map((report) => (report.numScrapes / report.durationMs) * 1000);
  console.log(
    `model ${path.basename(values.model)}, threads ${values.threads}, ${numStreams} streams x ${maxTokens} tokens, ` +
      `${numRounds} interleaved rounds, medians; scraping ${values.path} every ${periodMs} ms`,
  );
  console.log(
    `without scraping  ${median(plain).toFixed(0)} tok/s  (runs ${plain.map((v) => v.toFixed(0)).join(" ")})`,
  );
  console.log(
    `with scraping     ${median(scraped).toFixed(0)} tok/s  (runs ${scraped.map((v) => v.toFixed(0)).join(" ")})`,
  );
  console.log(
    `scraped / plain   ${(median(scraped) / median(plain)).toFixed(3)}  (per-round ratios ${ratios.map((v) => v.toFixed(3)).join(" ")}; median ${median(ratios).toFixed(3)})`,
  );
  console.log(
    `scrapes           ${median(scrapesPerSecond).toFixed(1)}/s achieved, ${median(reports.map((r) => r.meanScrapeMs)).toFixed(2)} ms mean, ` +
      `${Math.max(...reports.map((r) => r.maxScrapeMs)).toFixed(1)} ms max, ${(median(reports.map((r) => r.bytesPerScrape)) / 1024).toFixed(1)} KiB each`,
  );
  await load.terminate();
  await scraper.terminate();
  await server.close();
}

await main();
