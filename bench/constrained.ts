/**
 * Constrained against unconstrained decoding, side by side in one process: the same prompts, streams and token
 * counts, with and without a JSON-schema grammar, runs alternating, medians of tokens per second.
 *
 *   npx tsx bench/constrained.ts                          stories260K (vocab 512, a trained model)
 *   npx tsx bench/constrained.ts --like qwen2.5-0.5b --vocab 32000      synthetic, random weights, Q8_0
 *   npx tsx bench/constrained.ts --like qwen2.5-0.5b                    the real vocabulary size, 151,936
 *
 * Synthetic models have random weights: the native sampler's sample-then-check fast path almost never finds its
 * first pick allowed, so every token pays a full-vocabulary grammar pass. That is the worst case, reported as such;
 * a trained model mostly picks allowed tokens.
 */
import { access } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ConstraintCompiler } from "../src/constrain/constraint-compiler.ts";
import { greedySampling, type SamplingParams } from "../src/engine/engine.ts";
import { runSynthCommand } from "../src/gguf/synth-command.ts";
import { loadRuntimeWith, runAll } from "./harness.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

const { values } = parseArgs({
  options: {
    model: { type: "string", default: path.resolve(repoRoot, "../shared/models/stories260K.gguf") },
    like: { type: "string" },
    vocab: { type: "string" },
    type: { type: "string", default: "q8_0" },
    streams: { type: "string", default: "1,16" },
    "max-tokens": { type: "string", default: "64" },
    repeats: { type: "string", default: "5" },
    threads: { type: "string", default: "1" },
  },
});

/** A schema of the kind agents send: an object with bounded strings, an enum, an integer and an array. */
const SCHEMA = {
  type: "object",
  properties: {
    name: { type: "string", maxLength: 40 },
    kind: { enum: ["person", "place", "thing"] },
    count: { type: "integer", minimum: 0, maximum: 1000 },
    tags: { type: "array", items: { type: "string", maxLength: 16 }, maxItems: 8 },
  },
  required: ["name", "kind", "count", "tags"],
  additionalProperties: false,
};

async function modelPath(): Promise<{ file: string; label: string }> {
  if (values.like === undefined) return { file: values.model, label: path.basename(values.model) };
  const vocab = values.vocab ?? "";
  const file = path.join(repoRoot, ".cache/pagoda", `bench-${values.like}-${values.type}-v${vocab || "default"}.gguf`);
  try {
    await access(file);
  } catch {
    const argv = ["--like", values.like, "--type", values.type, "--out", file, ...(vocab ? ["--vocab", vocab] : [])];
    if ((await runSynthCommand(argv)) !== 0) throw new Error(`pagoda synth ${argv.join(" ")} failed`);
  }
  return { file, label: `synthetic ${values.like} ${values.type}${vocab ? `, vocab ${vocab}` : ""} (random weights)` };
}

function median(numbers: readonly number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function main(): Promise<void> {
  const levels = values.streams.split(",").map(Number);
  const maxTokens = Number(values["max-tokens"]);
  const repeats = Number(values.repeats);
  const { file, label } = await modelPath();
  const maxStreams = Math.max(...levels);
  const server = await loadRuntimeWith([
    "--model",
    file,
    "--threads",
    values.threads,
    "--parallel",
    String(maxStreams),
    "--ctx-size",
    String(maxTokens + 64),
  ]);
  const engine = server.runtime.engine;
  const compiled = new ConstraintCompiler().compile({ kind: "json_schema", schema: SCHEMA, param: "json_schema" });
  const grammar = { gbnf: compiled.gbnf };
  engine.prepareGrammar(grammar);
  const plain: SamplingParams = greedySampling(1);
  const constrained: SamplingParams = { ...plain, grammar };
  const prompt = engine.tokenize("Describe one thing as JSON:", { addBos: true });
  const run = async (streams: number, sampling: SamplingParams): Promise<number> => {
    const prompts = Array.from({ length: streams }, () => [...prompt]);
    const { timings, durationMs } = await runAll(server.runtime, prompts, maxTokens, sampling);
    const numTokens = timings.reduce((sum, timing) => sum + timing.numTokens, 0);
    return (numTokens / durationMs) * 1000;
  };
  await run(maxStreams, plain);
  await run(maxStreams, constrained);
  console.log(`${label}, threads ${values.threads}, ${maxTokens} tokens per stream, median of ${repeats}, alternating`);
  console.log(`grammar: ${compiled.gbnf.length} characters, compiled in ${compiled.compileMs.toFixed(2)} ms`);
  console.log("streams | unconstrained tok/s | constrained tok/s | constrained / unconstrained");
  for (const streams of levels) {
    const free: number[] = [];
    const bound: number[] = [];
    for (let repeat = 0; repeat < repeats; repeat++) {
      // Alternate which goes first, so drift in the machine's speed falls on both.
      if (repeat % 2 === 0) {
        free.push(await run(streams, plain));
        bound.push(await run(streams, constrained));
      } else {
        bound.push(await run(streams, constrained));
        free.push(await run(streams, plain));
      }
    }
    const ratios = free.map((value, index) => (bound[index] ?? 0) / value);
    console.log(
      `${String(streams).padStart(7)} | ${median(free).toFixed(0).padStart(19)} | ${median(bound).toFixed(0).padStart(17)} | ${median(ratios).toFixed(3).padStart(10)} (pairs ${ratios.map((ratio) => ratio.toFixed(2)).join(" ")})`,
    );
  }
  await server.close();
}

await main();
