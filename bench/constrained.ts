/**
 * Constrained against unconstrained decoding, side by side in one process: the same prompts and streams, with and
 * without a JSON-schema grammar, runs alternating, medians of tokens per second. Constrained requests end where
 * their grammar completes (as served requests do); each unconstrained request then generates exactly as many tokens
 * as its constrained twin did, so both runs carry the same batches step by step.
 *
 *   npx tsx bench/constrained.ts                          stories260K (vocab 512, a trained model)
 *   npx tsx bench/constrained.ts --like qwen2.5-0.5b --vocab 32000      synthetic, random weights, Q8_0
 *   npx tsx bench/constrained.ts --like qwen2.5-0.5b                    the real vocabulary size, 151,936
 *
 * Synthetic models have random weights: the native sampler's sample-then-check fast path almost never finds its
 * first pick allowed, so every token pays a full-vocabulary grammar pass. That is the worst case, reported as such;
 * a trained model mostly picks allowed tokens.
 */
import { access, mkdir } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { ConstraintCompiler } from "../src/constrain/constraint-compiler.ts";
import { greedySampling, type SamplingParams, type TokenId } from "../src/engine/engine.ts";
import { runSynthCommand } from "../src/gguf/synth-command.ts";
import type { Runtime } from "../src/server/serving-state.ts";
import { EXTRACTION_SCHEMA } from "./extraction-schema.ts";
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

async function modelPath(): Promise<{ file: string; label: string }> {
  if (values.like === undefined) return { file: values.model, label: path.basename(values.model) };
  const vocab = values.vocab ?? "";
  const file = path.join(repoRoot, ".cache/pagoda", `bench-${values.like}-${values.type}-v${vocab || "default"}.gguf`);
  try {
    await access(file);
  } catch {
    await mkdir(path.dirname(file), { recursive: true });
    const argv = ["--like", values.like, "--type", values.type, "--out", file, ...(vocab ? ["--vocab", vocab] : [])];
    if ((await runSynthCommand(argv)) !== 0) throw new Error(`pagoda synth ${argv.join(" ")} failed`);
  }
  return { file, label: `synthetic ${values.like} ${values.type}${vocab ? `, vocab ${vocab}` : ""} (random weights)` };
}

/**
 * Submits one request per entry of `maxTokens` at once; constrained ones stop where the grammar completes, plain ones
 * run to their count. Returns each request's generated tokens and the wall time.
 */
async function runBatch(
  runtime: Runtime,
  prompt: readonly TokenId[],
  maxTokens: readonly number[],
  sampling: SamplingParams,
): Promise<{ counts: number[]; durationMs: number }> {
  const prompts = maxTokens.map(() => [...prompt]);
  const { timings, durationMs } = await runAll(runtime, prompts, maxTokens, sampling, sampling.grammar == null);
  return { counts: timings.map((timing) => timing.numTokens), durationMs };
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
  const compiled = new ConstraintCompiler().compile({
    kind: "json_schema",
    schema: EXTRACTION_SCHEMA,
    param: "json_schema",
  });
  const grammar = { gbnf: compiled.gbnf };
  engine.prepareGrammar(grammar);
  const plain: SamplingParams = greedySampling(1);
  const constrained: SamplingParams = { ...plain, grammar };
  const prompt = engine.tokenize("Describe one thing as JSON:", { addBos: true });
  const tokPerS = ({ counts, durationMs }: { counts: number[]; durationMs: number }): number =>
    (counts.reduce((sum, count) => sum + count, 0) / durationMs) * 1000;
  // Greedy: every constrained run of a stream count generates the same tokens, so their counts are known up front.
  const countsOf = new Map<number, number[]>();
  for (const streams of levels) {
    const warmUp = await runBatch(server.runtime, prompt, new Array<number>(streams).fill(maxTokens), constrained);
    countsOf.set(streams, warmUp.counts);
    await runBatch(server.runtime, prompt, warmUp.counts, plain);
  }
  console.log(
    `${label}, threads ${values.threads}, at most ${maxTokens} tokens per stream (constrained: ${[...countsOf.values()].map((counts) => counts[0]).join("/")}), median of ${repeats}, alternating`,
  );
  console.log(`grammar: ${compiled.gbnf.length} characters, compiled in ${compiled.compileMs.toFixed(2)} ms`);
  console.log("streams | unconstrained tok/s | constrained tok/s | constrained / unconstrained");
  for (const streams of levels) {
    const free: number[] = [];
    const bound: number[] = [];
    for (let repeat = 0; repeat < repeats; repeat++) {
      // Alternate which goes first, so drift in the machine's speed falls on both.
      const counts = countsOf.get(streams) ?? [];
      const runPlain = async () => free.push(tokPerS(await runBatch(server.runtime, prompt, counts, plain)));
      const runBound = async () => bound.push(tokPerS(await runBatch(server.runtime, prompt, counts, constrained)));
      if (repeat % 2 === 0) {
        await runPlain();
        await runBound();
      } else {
        await runBound();
        await runPlain();
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
