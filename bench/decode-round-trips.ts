/**
 * What one stream's token costs below the engine loop: llama.cpp's decode of one token as the addon runs it, and
 * what sampling adds, on the context pagoda opens (shared pool, its flash-attention default). Three ways per token,
 * interleaved, medians of the repeats:
 * - decode: `decodeBatch` alone (the next token is made up), to set beside `llama-batched-bench -npl 1 -kvu`;
 * - decode + native sample: the engine's path, a second thread-pool round trip for the sampler;
 * - decode + argmax: the logits read on the main thread and the best token picked there, no round trip.
 *
 *   npx tsx bench/decode-round-trips.ts [--model path.gguf] [--threads 1] [--tokens 1000] [--repeats 3]
 */
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { isPatchedContext } from "../src/engine/llama-internals.ts";
import { openLlamaContext } from "../src/engine/open-llama-context.ts";
import { median } from "./side-by-side.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    model: { type: "string", default: path.resolve(repoRoot, "../shared/models/stories260K.gguf") },
    threads: { type: "string", default: "1" },
    tokens: { type: "string", default: "1000" },
    repeats: { type: "string", default: "3" },
  },
  strict: true,
});
const numTokens = Number(values.tokens);

const opened = await openLlamaContext({
  modelPath: values.model,
  threads: Number(values.threads),
  numSequences: 16,
  contextSize: numTokens + 16,
  batchSize: 512,
  gpu: "false",
});
const { internals } = opened;
const native = opened.native;
if (!isPatchedContext(native)) throw new Error("the patched addon is needed to read logits");
const patched = native;
const sampler = internals.createSampler();
sampler.applyConfig({ temperature: 0 });

type Way = "decode" | "decode + native sample" | "decode + argmax";
const WAYS: readonly Way[] = ["decode", "decode + native sample", "decode + argmax"];

/** Milliseconds per token over `numTokens` tokens of one sequence, from an empty cache. */
async function perToken(way: Way): Promise<number> {
  native.removeTokenCellsFromSequence(0, 0, -1);
  let token = 1;
  const startMs = performance.now();
  for (let position = 0; position < numTokens; position++) {
    native.initBatch(1);
    const [row] = native.addToBatch(0, position, Uint32Array.of(token), Uint32Array.of(0));
    await native.decodeBatch();
    if (way === "decode + native sample") [token] = await native.sampleToken(row!, sampler, false);
    else if (way === "decode + argmax") token = argmax(patched.getLogits(row!));
    else token = 3 + ((position * 7) % 500);
  }
  return (performance.now() - startMs) / numTokens;
}

function argmax(logits: Float32Array): number {
  let best = 0;
  for (let index = 1; index < logits.length; index++) if (logits[index]! > logits[best]!) best = index;
  return best;
}

const samples = new Map<Way, number[]>(WAYS.map((way) => [way, []]));
await perToken("decode");
for (let repeat = 0; repeat < Number(values.repeats); repeat++)
  for (const way of WAYS) samples.get(way)!.push(await perToken(way));

console.log(`${path.basename(values.model)}, threads ${values.threads}, one sequence, ${numTokens} tokens`);
console.log("| per token | ms | tok/s |\n| --- | ---: | ---: |");
for (const way of WAYS) {
  const msPerToken = median(samples.get(way)!);
  console.log(`| ${way} | ${msPerToken.toFixed(3)} | ${Math.round(1000 / msPerToken)} |`);
}
sampler.dispose();
await native.dispose();
await opened.model.dispose();
