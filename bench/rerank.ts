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
import { parseTargets, printRateTable, ratePerSecond } from "./side-by-side.ts";

const { values } = parseArgs({
  options: {
    target: { type: "string", multiple: true },
    concurrency: { type: "string", default: "1,4" },
    requests: { type: "string", default: "8" },
    rounds: { type: "string", default: "3" },
  },
});
const targets = parseTargets(values.target ?? []);

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

await Promise.all(targets.map((target) => rerank(target.url, "warm up", ["warm up"], false)));
console.log(
  `${numRequests} requests of 1 query and 100 distinct documents, ${values.rounds} interleaved rounds, medians`,
);
await printRateTable({
  targets,
  levelName: "concurrency",
  levels: values.concurrency.split(",").map(Number),
  rounds: Number(values.rounds),
  unit: "docs/s",
  run: async (target, _index, concurrency) =>
    100 *
    (await ratePerSecond(requests.length, concurrency, async (i) => {
      const request = requests[i]!;
      await rerank(target.url, request.query, request.documents, false);
    })),
});

const sample = requests[0]!;
const reference = new Map(
  (await rerank(targets[0]!.url, sample.query, sample.documents, true)).map((r) => [r.index, r.score]),
);
for (const target of targets.slice(1)) {
  const other = await rerank(target.url, sample.query, sample.documents, true);
  const largest = Math.max(...other.map((r) => Math.abs(r.score - (reference.get(r.index) ?? Number.NaN))));
  console.log(
    `raw scores ${targets[0]?.label} vs ${target.label} over 100 pairs: largest |Δ| ${largest.toExponential(2)}`,
  );
}
