/**
 * Embedding throughput side by side: inputs per second at several concurrencies against running OpenAI-compatible
 * servers (pagoda, llama-server `--embeddings`), runs interleaved target by target, medians over rounds, each
 * target's ratio to the first. Every request carries one input, as RAG ingestion clients send them in parallel.
 * The vectors are compared too: the mean and least cosine between the first target's and each other's, for the
 * same inputs (both at unit length).
 *
 *   npm run bench:embeddings -- --target pagoda=http://127.0.0.1:8080 --target llama-server=http://127.0.0.1:8081
 *                               [--concurrency 1,8,32] [--inputs 256] [--rounds 3]
 */
import { parseArgs } from "node:util";
import { firstModel } from "./load-target.ts";
import { randomWords } from "./random-words.ts";
import { parseTargets, printRateTable, ratePerSecond } from "./side-by-side.ts";

const { values } = parseArgs({
  options: {
    target: { type: "string", multiple: true },
    concurrency: { type: "string", default: "1,8,32" },
    inputs: { type: "string", default: "256" },
    rounds: { type: "string", default: "3" },
  },
});

const targets = parseTargets(values.target ?? []);
const concurrencies = values.concurrency.split(",").map(Number);
const numInputs = Number(values.inputs);
const numRounds = Number(values.rounds);

/** Inputs of 10 to 40 seeded-random words, like short chunks. */
const sentence = randomWords(12345);
const inputs = Array.from({ length: numInputs }, (_, i) => sentence(10 + (i % 31)));

async function embedOne(url: string, model: string, input: string): Promise<number[]> {
  const response = await fetch(`${url}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model, input, encoding_format: "float" }),
  });
  if (!response.ok) throw new Error(`${url} answered ${response.status}: ${(await response.text()).slice(0, 200)}`);
  const body = (await response.json()) as { data: { embedding: number[] }[] };
  return body.data[0]?.embedding ?? [];
}

function unit(vector: readonly number[]): number[] {
  const norm = Math.hypot(...vector);
  return vector.map((value) => value / norm);
}

const models = await Promise.all(targets.map((target) => firstModel(target.url, {})));
// Warm-up: every target loads its embedding context before timing.
await Promise.all(targets.map((target, index) => embedOne(target.url, models[index] ?? "", "warm up")));

console.log(
  `${numInputs} distinct inputs of 10-40 random words, one per request, ${numRounds} interleaved rounds, medians`,
);
await printRateTable({
  targets,
  levelName: "concurrency",
  levels: concurrencies,
  rounds: numRounds,
  unit: "inputs/s",
  // One input per request.
  run: (target, index, concurrency) =>
    ratePerSecond(inputs.length, concurrency, async (i) => {
      await embedOne(target.url, models[index] ?? "", inputs[i] ?? "");
    }),
});

const sample = inputs.slice(0, 32);
const reference = await Promise.all(sample.map((input) => embedOne(targets[0]?.url ?? "", models[0] ?? "", input)));
for (const [index, target] of targets.entries()) {
  if (index === 0) continue;
  const cosines = await Promise.all(
    sample.map(async (input, i) => {
      const a = unit(reference[i] ?? []);
      const b = unit(await embedOne(target.url, models[index] ?? "", input));
      return a.reduce((sum, value, dim) => sum + value * (b[dim] ?? 0), 0);
    }),
  );
  console.log(
    `cosine ${targets[0]?.label} vs ${target.label} over ${sample.length} inputs: mean ${(cosines.reduce((s, c) => s + c, 0) / cosines.length).toFixed(6)}, least ${Math.min(...cosines).toFixed(6)}`,
  );
}
