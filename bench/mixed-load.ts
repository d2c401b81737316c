/**
 * Generation beside retrieval in one server: do streamed generations keep their inter-token latency (ITL) while
 * /v1/embeddings (and, with a reranker, /v1/rerank) requests run against the same process? One pagoda process is
 * started (`node bin/pagoda.js`); each round runs the same streamed load (N concurrent /v1/completions streams,
 * greedy, `ignore_eos`, the same number of tokens each) once per condition, the conditions' order rotating by round:
 *
 *   alone       the streams only;
 *   embeddings  the streams while a loop sends 32-input /v1/embeddings requests back to back, to the generator;
 *   rerank      with `--rerank-model FILE` (passed to the server): while a loop sends 100-document /v1/rerank
 *               requests back to back to that reranker;
 *   embeddings, second process
 *               with `--second-process`, a control: the same embeddings loop sent to a second pagoda process serving
 *               the same model, so the loss beyond it is interference inside the server, not competition for cores.
 *
 * ITL is the gap between SSE content chunks as this client receives them; each run's p50 and p99 (nearest rank)
 * over all its streams' gaps, then medians over rounds, and each condition's ratio to alone (the issue's target:
 * p99 within 1.5×). The background loops start before the streams and stop after they end. Beside the client's view,
 * the server's own from /metrics scraped before and after each run: the mean engine step (pagoda_engine_step_seconds)
 * and the largest event-loop delay (pagoda_event_loop_lag_seconds, sampled at 10 ms resolution, so ~10 means idle).
 *
 *   npm run bench:mixed-load -- [--model path.gguf] [--threads 1] [--streams 8] [--max-tokens 512] [--rounds 7]
 *                               [--embedding-inputs 32] [--rerank-model reranker.gguf] [--rerank-documents 100]
 *                               [--second-process]
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { timeStream } from "./load-probe.ts";
import { percentileSummary } from "./load-stats.ts";
import { requestShape } from "./load-target.ts";
import { randomWords } from "./random-words.ts";
import { freePort, median } from "./side-by-side.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    model: { type: "string", default: path.resolve(repoRoot, "../shared/models/stories260K.gguf") },
    threads: { type: "string", default: "1" },
    streams: { type: "string", default: "8" },
    "max-tokens": { type: "string", default: "512" },
    rounds: { type: "string", default: "7" },
    "embedding-inputs": { type: "string", default: "32" },
    "rerank-model": { type: "string" },
    "rerank-documents": { type: "string", default: "100" },
    "second-process": { type: "boolean", default: false },
  },
});
const numStreams = Number(values.streams);
const maxTokens = Number(values["max-tokens"]);
const numRounds = Number(values.rounds);
const numEmbeddingInputs = Number(values["embedding-inputs"]);
const numRerankDocuments = Number(values["rerank-documents"]);
const modelId = path.basename(values.model, ".gguf");
const rerankSpec = values["rerank-model"];
/** `--rerank-model NAME=PATH` serves it as NAME, a bare path as its file name without extension. */
const rerankId =
  rerankSpec === undefined
    ? null
    : rerankSpec.includes("=")
      ? rerankSpec.slice(0, rerankSpec.indexOf("="))
      : path.basename(rerankSpec, ".gguf");
const PROMPTS = ["Once upon a time", "The little dog", "Lily and Ben went to the park", "One day, a big bird"];

/** `node bin/pagoda.js` with `flags`, resolved once /health answers 200; its output kept for the error message. */
async function startServer(flags: string[]): Promise<{ child: ChildProcess; baseUrl: string }> {
  const port = await freePort();
  const child = spawn(process.execPath, ["bin/pagoda.js", ...flags, "--port", String(port)], {
    cwd: repoRoot,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (bytes: Buffer): void => {
    output = (output + bytes.toString()).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const baseUrl = `http://127.0.0.1:${port}`;
  const deadlineMs = performance.now() + 120_000;
  while (performance.now() < deadlineMs) {
    if (child.exitCode !== null) throw new Error(`the server exited with ${child.exitCode}:\n${output}`);
    const status = await fetch(`${baseUrl}/health`).then(
      (response) => response.status,
      () => 0,
    );
    if (status === 200) return { child, baseUrl };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill("SIGTERM");
  throw new Error(`the server was not ready within 120 s:\n${output}`);
}

async function postJson(url: string, body: unknown): Promise<void> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${url} answered ${response.status}: ${text.slice(0, 300)}`);
}

/** The unlabelled samples of the server's /metrics, by name. */
async function scrapeMetrics(baseUrl: string): Promise<Map<string, number>> {
  const response = await fetch(`${baseUrl}/metrics`);
  if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
  const samples = new Map<string, number>();
  for (const line of (await response.text()).split("\n")) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)$/.exec(line);
    if (match !== null) samples.set(match[1] ?? "", Number(match[2]));
  }
  return samples;
}

/** A background load: one request after another until stopped. */
interface Background {
  readonly name: string;
  /** Items (inputs, documents) one request carries. */
  readonly itemsPerRequest: number;
  readonly unit: string;
  request(baseUrl: string): Promise<void>;
}

const sentence = randomWords(4242);
const backgrounds: Background[] = [
  {
    name: "embeddings",
    itemsPerRequest: numEmbeddingInputs,
    unit: "inputs/s",
    // Fresh inputs of 10-40 random words each time, as in bench/embeddings.ts.
    request: (baseUrl) =>
      postJson(`${baseUrl}/v1/embeddings`, {
        model: modelId,
        input: Array.from({ length: numEmbeddingInputs }, (_, i) => sentence(10 + (i % 31))),
        encoding_format: "float",
      }),
  },
];
if (rerankId !== null) {
  backgrounds.push({
    name: "rerank",
    itemsPerRequest: numRerankDocuments,
    unit: "docs/s",
    request: (baseUrl) =>
      postJson(`${baseUrl}/v1/rerank`, {
        model: rerankId,
        query: sentence(8),
        documents: Array.from({ length: numRerankDocuments }, (_, i) => sentence(10 + (i % 31))),
        top_n: 5,
        return_documents: false,
      }),
  });
}

interface RunResult {
  readonly itlP50Ms: number;
  readonly itlP99Ms: number;
  readonly itlMaxMs: number;
  readonly tokensPerSecond: number;
  /** The server's own view: mean wall time of an engine step (decode, sampling, bookkeeping) during the run. */
  readonly meanStepMs: number;
  /** Its largest event-loop delay during the run (`pagoda_event_loop_lag_seconds`, reset by every scrape). */
  readonly eventLoopLagMs: number;
  /** The background's items per second while the streams ran; null alone. */
  readonly backgroundRate: number | null;
}

/** One way of running the streamed load: alone, or beside a background load sent to `backgroundUrl`. */
interface Condition {
  readonly label: string;
  readonly background: Background | null;
  readonly backgroundUrl: string;
}

/** The streamed load, with the condition's background looping beside it from before the first stream to after the last. */
async function runOnce(baseUrl: string, condition: Condition): Promise<RunResult> {
  const { background, backgroundUrl } = condition;
  let isStopped = false;
  let numItems = 0;
  let firstItemMs = 0;
  let loop: Promise<void> = Promise.resolve();
  if (background !== null) {
    // The first request is answered before the streams start, so they meet a loop already running.
    await background.request(backgroundUrl);
    firstItemMs = performance.now();
    loop = (async () => {
      while (!isStopped) {
        await background.request(backgroundUrl);
        if (!isStopped) numItems += background.itemsPerRequest;
      }
    })();
    // Handled here so a failing request does not crash the process before the streams end; `await loop` rethrows.
    loop.catch(() => {});
  }
  const shape = requestShape({ route: "completions", model: modelId, maxTokens, temperature: 0, isIgnoreEos: true });
  const headers = { "content-type": "application/json" };
  const before = await scrapeMetrics(baseUrl);
  const startMs = performance.now();
  const abort = new AbortController();
  try {
    const timings = await Promise.all(
      Array.from({ length: numStreams }, (_, i) =>
        timeStream(
          `${baseUrl}${shape.path}`,
          headers,
          shape.body(PROMPTS[i % PROMPTS.length] ?? "", true),
          abort.signal,
        ),
      ),
    );
    const endMs = performance.now();
    isStopped = true;
    await loop;
    const after = await scrapeMetrics(baseUrl);
    const stepDelta = (name: string): number => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    const numTokens = timings.reduce((sum, timing) => sum + timing.completionTokens, 0);
    if (numTokens !== numStreams * maxTokens) throw new Error(`the streams returned ${numTokens} tokens`);
    const itl = percentileSummary(timings.flatMap((timing) => timing.gapsMs));
    return {
      itlP50Ms: itl?.p50 ?? Number.NaN,
      itlP99Ms: itl?.p99 ?? Number.NaN,
      itlMaxMs: itl?.max ?? Number.NaN,
      tokensPerSecond: (numTokens / (endMs - startMs)) * 1000,
      meanStepMs: (stepDelta("pagoda_engine_step_seconds_sum") / stepDelta("pagoda_engine_step_seconds_count")) * 1000,
      eventLoopLagMs: (after.get("pagoda_event_loop_lag_seconds") ?? Number.NaN) * 1000,
      backgroundRate: background === null ? null : (numItems / (endMs - firstItemMs)) * 1000,
    };
  } finally {
    isStopped = true;
    abort.abort();
    await loop.catch(() => {});
  }
}

async function main(): Promise<void> {
  const flags = [
    "--model",
    values.model,
    "--threads",
    values.threads,
    "--parallel",
    String(numStreams),
    "--ctx-size",
    String(maxTokens + 64),
    "--gpu",
    "false",
    "--log-level",
    "warn",
  ];
  const servers: ChildProcess[] = [];
  try {
    const served = await startServer([...flags, ...(rerankSpec === undefined ? [] : ["--rerank-model", rerankSpec])]);
    servers.push(served.child);
    const conditions: Condition[] = [
      { label: "alone", background: null, backgroundUrl: served.baseUrl },
      ...backgrounds.map((background) => ({ label: background.name, background, backgroundUrl: served.baseUrl })),
    ];
    const embeddings = backgrounds[0];
    if (values["second-process"] && embeddings !== undefined) {
      // The control (see above): the rerank model stays with the process under test.
      const second = await startServer(flags);
      servers.push(second.child);
      conditions.push({ label: "embeddings, second process", background: embeddings, backgroundUrl: second.baseUrl });
    }
    // Warm-up: every condition once (loads the pooling contexts, JIT-compiles both sides), not timed.
    for (const condition of conditions) await runOnce(served.baseUrl, condition);
    const results = conditions.map((): RunResult[] => []);
    for (let round = 0; round < numRounds; round++) {
      for (let k = 0; k < conditions.length; k++) {
        const index = (round + k) % conditions.length;
        const condition = conditions[index];
        if (condition !== undefined) results[index]?.push(await runOnce(served.baseUrl, condition));
      }
    }
    printTable(conditions, results);
  } finally {
    for (const child of servers) {
      child.kill("SIGTERM");
      if (child.exitCode === null) await once(child, "exit");
    }
  }
}

function printTable(conditions: readonly Condition[], results: readonly RunResult[][]): void {
  const alone = results[0] ?? [];
  const aloneP50 = median(alone.map((run) => run.itlP50Ms));
  const aloneP99 = median(alone.map((run) => run.itlP99Ms));
  console.log(
    `model ${path.basename(values.model)}${rerankSpec === undefined ? "" : `, reranker ${path.basename(rerankSpec)}`}, ` +
      `threads ${values.threads}, ${numStreams} streams x ${maxTokens} tokens, ${numRounds} rounds (order rotating), ` +
      `medians; embeddings ${numEmbeddingInputs} inputs per request` +
      (rerankId === null ? "" : `, rerank ${numRerankDocuments} documents per request`),
  );
  console.log(
    "| condition | ITL p50 ms | ITL p99 ms | p50 / alone | p99 / alone | p99 / alone per round | ITL max ms | generation tok/s | server step ms | server loop lag ms | background |",
  );
  console.log("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |");
  for (const [index, condition] of conditions.entries()) {
    const runs = results[index] ?? [];
    const of = (pick: (run: RunResult) => number): number => median(runs.map(pick));
    const p50 = of((run) => run.itlP50Ms);
    const p99 = of((run) => run.itlP99Ms);
    // Round r's run against round r's alone run.
    const perRound = runs.map((run, round) => run.itlP99Ms / (alone[round]?.itlP99Ms ?? Number.NaN));
    const rate = of((run) => run.backgroundRate ?? 0);
    console.log(
      `| ${condition.label} | ${p50.toFixed(1)} | ${p99.toFixed(1)} | ${(p50 / aloneP50).toFixed(2)}× | ` +
        `**${(p99 / aloneP99).toFixed(2)}×** | ${perRound.map((ratio) => ratio.toFixed(2)).join(" ")} | ` +
        `${of((run) => run.itlMaxMs).toFixed(1)} | ${of((run) => run.tokensPerSecond).toFixed(0)} | ` +
        `${of((run) => run.meanStepMs).toFixed(2)} | ${of((run) => run.eventLoopLagMs).toFixed(1)} | ` +
        `${condition.background === null ? "" : `${rate.toFixed(0)} ${condition.background.unit}`} |`,
    );
  }
}

await main();
