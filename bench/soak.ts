/**
 * Soak: a pagoda server process under mixed load for a long time, its resident memory and heap sampled from its
 * own /metrics. Growth is measured from the end of the warm-up to the end of the run; a leak shows as steady growth.
 *
 *   npm run bench:soak -- [--model path.gguf] [--minutes 10] [--warmup-minutes 2] [--concurrency 32] [--out file]
 *
 * The load mixes non-streamed completions, streamed chat completions with stream_options, and streams that the
 * client abandons after a few chunks (each connection cycles through them), at temperature 0.8 with distinct seeds.
 */
import { spawn } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    model: { type: "string", default: path.resolve(repoRoot, "../shared/models/stories260K.gguf") },
    minutes: { type: "string", default: "10" },
    "warmup-minutes": { type: "string", default: "2" },
    concurrency: { type: "string", default: "32" },
    out: { type: "string", default: path.join(repoRoot, "bench/out/soak.json") },
  },
});
const durationMs = Number(values.minutes) * 60_000;
const warmupMs = Number(values["warmup-minutes"]) * 60_000;

interface Sample {
  readonly atSeconds: number;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly requests: number;
}

async function startServer(): Promise<{ url: string; stop(): Promise<number | null> }> {
  const child = spawn(
    process.execPath,
    ["bin/pagoda.js", "--model", values.model, "--port", "0", "--parallel", "16", "--log-level", "info"],
    {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const url = await new Promise<string>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      if (!line.includes("pagoda is ready")) return;
      const parsed = JSON.parse(line) as { url: string };
      resolve(parsed.url);
    });
    child.on("exit", (code) => reject(new Error(`server exited with ${code}`)));
  });
  return {
    url,
    stop: () =>
      new Promise((resolve) => {
        child.on("exit", (code) => resolve(code));
        child.kill("SIGTERM");
      }),
  };
}

function metric(text: string, name: string): number {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+]+)$`, "m").exec(text);
  return match === null ? Number.NaN : Number(match[1]);
}

/** One connection's loop: a completion, a streamed chat, an abandoned stream, again, until the deadline. */
async function worker(
  url: string,
  model: string,
  index: number,
  deadline: number,
  counts: { ok: number; failed: number; aborted: number },
): Promise<void> {
  const headers = { "content-type": "application/json" };
  for (let round = 0; Date.now() < deadline; round++) {
    const seed = index * 100_000 + round;
    const kind = round % 3;
    try {
      if (kind === 0) {
        const response = await fetch(`${url}/v1/completions`, {
          method: "POST",
          headers,
          body: JSON.stringify({
            model,
            prompt: `Story ${seed}: Once upon a time`,
            max_tokens: 48,
            temperature: 0.8,
            seed,
          }),
        });
        await response.text();
        if (response.ok) counts.ok += 1;
        else counts.failed += 1;
      } else {
        const controller = new AbortController();
        const response = await fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers,
          signal: controller.signal,
          body: JSON.stringify({
            model,
            messages: [{ role: "user", content: `Tell story ${seed}.` }],
            max_tokens: 64,
            temperature: 0.8,
            seed,
            stream: true,
            stream_options: { include_usage: true },
          }),
        });
        if (!response.ok || response.body === null) {
          counts.failed += 1;
          continue;
        }
        let chunks = 0;
        const abandonAfter = kind === 2 ? 1 + (seed % 7) : Number.POSITIVE_INFINITY;
        for await (const chunk of response.body) {
          void chunk;
          if (++chunks >= abandonAfter) {
            controller.abort();
            break;
          }
        }
        if (kind === 2) counts.aborted += 1;
        else counts.ok += 1;
      }
    } catch (error) {
      if ((error as Error).name === "AbortError") counts.aborted += 1;
      else counts.failed += 1;
    }
  }
}

const server = await startServer();
const model = ((await (await fetch(`${server.url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]?.id ?? "";
const started = Date.now();
const deadline = started + durationMs;
const counts = { ok: 0, failed: 0, aborted: 0 };
const samples: Sample[] = [];
const sampler = setInterval(() => {
  void fetch(`${server.url}/metrics`).then(async (response) => {
    const text = await response.text();
    samples.push({
      atSeconds: Math.round((Date.now() - started) / 1000),
      rssBytes: metric(text, "process_resident_memory_bytes"),
      heapUsedBytes: metric(text, "nodejs_heap_size_used_bytes"),
      requests: counts.ok + counts.failed + counts.aborted,
    });
  });
}, 10_000);
await Promise.all(
  Array.from({ length: Number(values.concurrency) }, (_, index) => worker(server.url, model, index, deadline, counts)),
);
clearInterval(sampler);
const health = await (await fetch(`${server.url}/metrics`)).text();
const running = metric(health, "vllm:num_requests_running");
const kvUsage = metric(health, "vllm:kv_cache_usage_perc");
const exitCode = await server.stop();

const mean = (list: readonly number[]): number =>
  list.reduce((sum, value) => sum + value, 0) / Math.max(1, list.length);
const window = (fromSeconds: number, toSeconds: number): Sample[] =>
  samples.filter((sample) => sample.atSeconds >= fromSeconds && sample.atSeconds < toSeconds);
const afterWarmup = window(warmupMs / 1000, warmupMs / 1000 + 60);
const last = window(durationMs / 1000 - 60, durationMs / 1000 + 1);
const growth = (key: "rssBytes" | "heapUsedBytes"): number =>
  mean(last.map((sample) => sample[key])) / mean(afterWarmup.map((sample) => sample[key])) - 1;
const result = {
  model: path.basename(values.model),
  minutes: Number(values.minutes),
  concurrency: Number(values.concurrency),
  counts,
  rssGrowth: growth("rssBytes"),
  heapGrowth: growth("heapUsedBytes"),
  rssAfterWarmupMiB: mean(afterWarmup.map((sample) => sample.rssBytes)) / 2 ** 20,
  rssEndMiB: mean(last.map((sample) => sample.rssBytes)) / 2 ** 20,
  heapAfterWarmupMiB: mean(afterWarmup.map((sample) => sample.heapUsedBytes)) / 2 ** 20,
  heapEndMiB: mean(last.map((sample) => sample.heapUsedBytes)) / 2 ** 20,
  runningAtEnd: running,
  kvUsageAtEnd: kvUsage,
  exitCode,
  samples,
};
console.log(
  `soak ${values.minutes} min, ${values.concurrency} connections, ${result.model}: ${counts.ok} ok, ${counts.aborted} abandoned, ${counts.failed} failed`,
);
console.log(
  `RSS ${result.rssAfterWarmupMiB.toFixed(1)} -> ${result.rssEndMiB.toFixed(1)} MiB (${(100 * result.rssGrowth).toFixed(2)}%), heap ${result.heapAfterWarmupMiB.toFixed(1)} -> ${result.heapEndMiB.toFixed(1)} MiB (${(100 * result.heapGrowth).toFixed(2)}%)`,
);
console.log(`after the load: ${running} running, KV usage ${kvUsage}, exit code ${exitCode}`);
await mkdir(path.dirname(values.out), { recursive: true });
await writeFile(values.out, JSON.stringify(result, null, 2));
