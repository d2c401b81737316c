/**
 * Rerank throughput side by side: 100-document requests (query + 100 distinct documents of 10–40 seeded-random
 * words) from 1 and 4 concurrent clients against running servers (pagoda, llama-server `--reranking`), targets
 * interleaved, medians over rounds, documents scored per second and each target's ratio to the first. Also the
 * largest difference between the first target's raw scores (`raw_scores`, TEI's `/rerank`) and each other's for the
 * same pairs: llama-server's rerank score is its head's first output, which is what pagoda's raw score is.
 *
 *   npm run bench:rerank -- --target llama-server=http://127.0.0.1:8092 --target pagoda=http://127.0.0.1:8091
 *                           [--concurrency 1,4] [--requests 8] [--rounds 3]
 */
import { parseArgs } from "node:util";
import { randomWords } from "./random-words.ts";

const { values } = parseArgs({
  options: {
    target: { type: "string", multiple: true },
    concurrency: { type: "string", default: "1,4" },
    requests: { type: "string", default: "8" },
    rounds: { type: "string", default: "3" },
  },
});
const targets = (values.target ?? []).map((entry) => {
  const at = entry.indexOf("=");
  if (at < 0) throw new Error(`--target ${entry}: expected name=url`);
  return { name: entry.slice(0, at), url: entry.slice(at + 1).replace(/\/$/, "") };
});
if (targets.length === 0) throw new Error("give at least one --target name=url");

const sentence = randomWords(777);
const numRequests = Number(values.requests);
const requests = Array.from({ length: numRequests }, () => ({
  query: sentence(8),
  documents: Array.from({ length: 100 }, (_, i) => sentence(10 + (i % 31))),
}));

async function rerank(url: string, query: string, documents: readonly string[], isRaw: boolean) {
  const response = await fetch(`${url}/rerank`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query, texts: documents, raw_scores: isRaw }),
  });
  if (!response.ok) throw new Error(`${url} answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
  return (await response.json()) as { index: number; score: number }[];
}

async function run(url: string, concurrency: number): Promise<number> {
  let next = 0;
  const startMs = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests.length) {
        const request = requests[next++]!;
        await rerank(url, request.query, request.documents, false);
      }
    }),
  );
  return (requests.length * 100) / ((performance.now() - startMs) / 1000);
}

function median(samples: readonly number[]): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[middle] ?? 0) : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

await Promise.all(targets.map((target) => rerank(target.url, "warm up", ["warm up"], false)));
console.log(
  `${numRequests} requests of 1 query and 100 distinct documents, ${values.rounds} interleaved rounds, medians`,
);
console.log(
  `| concurrency | ${targets.map((target) => `${target.name} docs/s`).join(" | ")} | ${targets
    .slice(1)
    .map((target) => `${target.name} / ${targets[0]?.name}`)
    .join(" | ")} |`,
);
console.log(
  `| ---: | ${targets.map(() => "---:").join(" | ")} | ${targets
    .slice(1)
    .map(() => "---:")
    .join(" | ")} |`,
);
for (const concurrency of values.concurrency.split(",").map(Number)) {
  const samples = targets.map((): number[] => []);
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const [index, target] of targets.entries()) samples[index]?.push(await run(target.url, concurrency));
  }
  const medians = samples.map(median);
  console.log(
    `| ${concurrency} | ${medians.map((value) => value.toFixed(1)).join(" | ")} | ${medians
      .slice(1)
      .map((value) => `${(value / (medians[0] ?? 1)).toFixed(2)}×`)
      .join(" | ")} |`,
  );
}

const sample = requests[0]!;
const reference = new Map(
  (await rerank(targets[0]!.url, sample.query, sample.documents, true)).map((r) => [r.index, r.score]),
);
for (const target of targets.slice(1)) {
  const other = await rerank(target.url, sample.query, sample.documents, true);
  const largest = Math.max(...other.map((r) => Math.abs(r.score - (reference.get(r.index) ?? Number.NaN))));
  console.log(
    `raw scores ${targets[0]?.name} vs ${target.name} over 100 pairs: largest |Δ| ${largest.toExponential(2)}`,
  );
}
