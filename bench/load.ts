/**
 * Load harness for a running OpenAI-compatible server (pagoda, vLLM, llama-server):
 *
 *   npm run bench:load -- [--url http://127.0.0.1:8080] [--model id] [--concurrency 8] [--duration 10 | --requests N]
 *                         [--max-tokens 64] [--prompt text | --prompts-file file] [--stream] [--chat] [--api-key key]
 *                         [--compare-url url [--compare-model id] [--compare-api-key key]] [--out results.json]
 *                         [--probe-streams 1] [--timeout 120] [--temperature 0] [--no-ignore-eos]
 *
 * autocannon keeps `--concurrency` keep-alive connections busy and reports throughput, whole-response latency
 * percentiles and status codes; 429s (the server shedding load) are counted apart from failures (other non-2xx,
 * connection errors, timeouts). A few streams opened alongside with fetch measure time to first token and
 * inter-token latency. With --compare-url the same load runs against a second server afterwards (never at the
 * same time: they share the machine), and the table gets a ratio column. --out writes everything as JSON.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import {
  firstModel,
  type LoadOptions,
  type LoadTarget,
  requestShape,
  runTarget,
  type TargetResult,
} from "./load-target.ts";

const DEFAULT_PROMPT = "Once upon a time, in a small village by the sea, there lived";

const { values } = parseArgs({
  options: {
    url: { type: "string", default: "http://127.0.0.1:8080" },
    model: { type: "string" },
    "api-key": { type: "string" },
    "compare-url": { type: "string" },
    "compare-model": { type: "string" },
    "compare-api-key": { type: "string" },
    concurrency: { type: "string", default: "8" },
    duration: { type: "string", default: "10" },
    requests: { type: "string" },
    "max-tokens": { type: "string", default: "64" },
    temperature: { type: "string", default: "0" },
    prompt: { type: "string" },
    "prompts-file": { type: "string" },
    stream: { type: "boolean", default: false },
    chat: { type: "boolean", default: false },
    "no-ignore-eos": { type: "boolean", default: false },
    "probe-streams": { type: "string", default: "1" },
    timeout: { type: "string", default: "120" },
    out: { type: "string" },
  },
  strict: true,
});

function positiveInteger(name: string, text: string | undefined, minimum = 1): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < minimum)
    throw new Error(`--${name}: expected an integer >= ${minimum}, got ${JSON.stringify(text)}`);
  return value;
}

function readPrompts(): string[] {
  if (values["prompts-file"] !== undefined) {
    const prompts = readFileSync(values["prompts-file"], "utf8")
      .split(/\r?\n/)
      .filter((line) => line.trim().length > 0);
    if (prompts.length === 0)
      throw new Error(`--prompts-file: ${values["prompts-file"]} holds no prompt (one per line)`);
    return prompts;
  }
  return [values.prompt ?? DEFAULT_PROMPT];
}

function headersFor(apiKey: string | undefined): Record<string, string> {
  return { "content-type": "application/json", ...(apiKey === undefined ? {} : { authorization: `Bearer ${apiKey}` }) };
}

async function target(
  label: string,
  url: string,
  model: string | undefined,
  apiKey: string | undefined,
): Promise<LoadTarget> {
  const base = url.replace(/\/+$/, "").replace(/\/v1$/, "");
  const headers = headersFor(apiKey);
  return { label, url: base, model: model ?? (await firstModel(base, headers)), headers };
}

const format = (value: number | undefined | null): string =>
  value === undefined || value === null ? "-" : Number.isInteger(value) ? String(value) : value.toFixed(1);

/** One row per measure, one column per server, and a ratio column when there are two. */
function table(results: readonly TargetResult[]): string {
  const rows: [string, (result: TargetResult) => number | null | undefined][] = [
    ["requests", (r) => r.numRequests],
    ["ok (2xx)", (r) => r.numOk],
    ["rate limited (429)", (r) => r.numRateLimited],
    ["failed", (r) => r.numFailed],
    ["  errors", (r) => r.numErrors],
    ["  timeouts", (r) => r.numTimeouts],
    ["requests/s", (r) => r.requestsPerSecond],
    ["completion tokens/s", (r) => r.completionTokensPerSecond],
    ["latency mean ms", (r) => r.latencyMs.mean],
    ["latency p50 ms", (r) => r.latencyMs.p50],
    ["latency p90 ms", (r) => r.latencyMs.p90],
    ["latency p99 ms", (r) => r.latencyMs.p99],
    ["latency max ms", (r) => r.latencyMs.max],
    ["probe streams", (r) => r.probe?.numStreams],
    ["TTFT p50 ms", (r) => r.probe?.ttftMs?.p50],
    ["TTFT p99 ms", (r) => r.probe?.ttftMs?.p99],
    ["ITL p50 ms", (r) => r.probe?.itlMs?.p50],
    ["ITL p99 ms", (r) => r.probe?.itlMs?.p99],
  ];
  const header = ["", ...results.map((r) => `${r.label} (${r.model})`), ...(results.length === 2 ? ["ratio"] : [])];
  const body = rows.map(([name, read]) => {
    const cells = results.map((result) => format(read(result)));
    const [first, second] = results.map(read);
    const ratio =
      results.length === 2
        ? [first != null && second != null && second !== 0 ? `${(first / second).toFixed(2)}x` : "-"]
        : [];
    return [name, ...cells, ...ratio];
  });
  const widths = header.map((_, column) => Math.max(...[header, ...body].map((row) => (row[column] ?? "").length)));
  const line = (row: string[]): string =>
    row
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0)))
      .join("  ");
  return [line(header), ...body.map(line)].join("\n");
}

async function main(): Promise<void> {
  const prompts = readPrompts();
  const options: LoadOptions = {
    concurrency: positiveInteger("concurrency", values.concurrency),
    durationSeconds: positiveInteger("duration", values.duration),
    numRequests: values.requests === undefined ? null : positiveInteger("requests", values.requests),
    isStream: values.stream,
    timeoutSeconds: positiveInteger("timeout", values.timeout),
    numProbeStreams: positiveInteger("probe-streams", values["probe-streams"], 0),
  };
  const maxTokens = positiveInteger("max-tokens", values["max-tokens"]);
  const temperature = Number(values.temperature);
  if (!Number.isFinite(temperature) || temperature < 0)
    throw new Error(`--temperature: expected a number >= 0, got ${JSON.stringify(values.temperature)}`);
  const targets = [await target("pagoda", values.url, values.model, values["api-key"])];
  if (values["compare-url"] !== undefined) {
    targets.push(
      await target(
        "compare",
        values["compare-url"],
        values["compare-model"],
        values["compare-api-key"] ?? values["api-key"],
      ),
    );
  }
  const results: TargetResult[] = [];
  for (const current of targets) {
    const shape = requestShape({
      route: values.chat ? "chat" : "completions",
      model: current.model,
      maxTokens,
      temperature,
      isIgnoreEos: !values["no-ignore-eos"],
    });
    const amount = options.numRequests === null ? `${options.durationSeconds} s` : `${options.numRequests} requests`;
    process.stderr.write(
      `load: ${current.url}${shape.path} (${current.model}), ${options.concurrency} connections, ${amount}${options.isStream ? ", streamed" : ""}\n`,
    );
    results.push(await runTarget(current, shape, prompts, options));
  }
  process.stdout.write(`${table(results)}\n`);
  if (values.out !== undefined) {
    const report = {
      harness: "pagoda bench:load",
      startedAt: new Date().toISOString(),
      options: {
        ...options,
        maxTokens,
        temperature,
        route: values.chat ? "chat" : "completions",
        isIgnoreEos: !values["no-ignore-eos"],
        numPrompts: prompts.length,
      },
      results,
    };
    writeFileSync(values.out, `${JSON.stringify(report, null, 2)}\n`);
    process.stderr.write(`wrote ${values.out}\n`);
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench:load: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
