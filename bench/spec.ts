/**
 * Speculative decoding on vs off, side by side in one process on one model file: aggregate generation tokens/s and
 * mean time per output token, at 1 and 8 concurrent requests, greedy and sampled, with n-gram (prompt lookup)
 * drafts. Runs alternate between the two runtimes, each going first in every other pair, so machine noise hits both.
 *
 *   npm run bench:spec -- [--model path.gguf | --synthetic 512x8] [--draft-model draft.gguf] [--threads 1]
 *                         [--max-tokens 256] [--repeats 3] [--concurrency 1,8] [--draft-max 4] [--grounded]
 *                         [--widen-ffn 65536 [--perturbation 0.003]]
 *
 * Without --draft-model the drafts come from prompt lookup (--spec-mode ngram); with it, from that model.
 * --widen-ffn N benchmarks a draft/target pair: the target is --model with its feed-forward widened to N units
 * (written once into .cache/pagoda), the draft is --model itself.
 * --fixed always drafts --draft-max tokens (no adaptive length).
 * --grounded uses input-grounded prompts: a story, then its first words again, so the answer repeats the prompt.
 */

import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { GREEDY, loadRuntimeWith, runAll } from "./harness.ts";
import { syntheticModel, widenedModel } from "./synthetic.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const { values } = parseArgs({
  options: {
    model: { type: "string", default: path.resolve(repoRoot, "../shared/models/stories260K.gguf") },
    synthetic: { type: "string" },
    threads: { type: "string", default: "1" },
    "max-tokens": { type: "string", default: "256" },
    repeats: { type: "string", default: "3" },
    "draft-model": { type: "string" },
    concurrency: { type: "string", default: "1,8" },
    grounded: { type: "boolean", default: false },
    "draft-max": { type: "string", default: "4" },
    fixed: { type: "boolean", default: false },
    "widen-ffn": { type: "string" },
    perturbation: { type: "string", default: "0.003" },
  },
});
const cacheDir = path.join(repoRoot, ".cache/pagoda");
const widenFfn = values["widen-ffn"];
if (widenFfn !== undefined && (values.synthetic !== undefined || values["draft-model"] !== undefined))
  throw new Error("--widen-ffn makes both models; it excludes --synthetic and --draft-model");
const modelPath =
  widenFfn !== undefined
    ? await widenedModel(path.resolve(values.model), Number(widenFfn), Number(values.perturbation), cacheDir)
    : values.synthetic === undefined
      ? values.model
      : await syntheticModel(values.synthetic, cacheDir);
const maxTokens = Number(values["max-tokens"]);
const OPENINGS = [
  "Once upon a time",
  "The little dog",
  "Lily and Ben went to the park",
  "One day, a big bird",
  "Tom had a red ball",
  "The sun was hot and",
  "Mom said to Sue",
  "There was a tiny frog",
];
const STORY =
  "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her dog Max. One day, Lily and Max found a big red ball under a tree. They played with the ball all day and were very happy.";
// Grounded: the story, then its opening again with a different name, so a faithful continuation copies spans.
const PROMPTS = values.grounded
  ? OPENINGS.map(
      (_, index) =>
        `${STORY.replaceAll("Lily", `Lily${index}`)}\n\nOnce upon a time, there was a little girl named Lily${index}.`,
    )
  : OPENINGS;
const common = [
  "--model",
  modelPath,
  "--threads",
  values.threads,
  "--parallel",
  "16",
  "--ctx-size",
  String(maxTokens + 128),
];
const off = await loadRuntimeWith(common);
const draftModel = widenFfn === undefined ? values["draft-model"] : values.model;
const specFlags =
  draftModel === undefined
    ? ["--spec-mode", "ngram"]
    : ["--spec-mode", "draft", "--draft-model", path.resolve(draftModel)];
const on = await loadRuntimeWith([
  ...common,
  ...specFlags,
  "--draft-max",
  values["draft-max"],
  ...(values.fixed ? ["--spec-adaptive", "false"] : []),
]);

const rows: Record<string, number | string>[] = [];
for (const [label, sampling] of [
  ["greedy", GREEDY],
  ["temperature 0.8", { ...GREEDY, temperature: 0.8, seed: 11 }],
] as const) {
  for (const concurrency of values.concurrency.split(",").map(Number)) {
    const rates = { off: [] as number[], on: [] as number[] };
    for (let repeat = 0; repeat < Number(values.repeats); repeat++) {
      // Alternating which runtime goes first cancels whatever the first run of a pair leaves behind for the second.
      const order =
        repeat % 2 === 0
          ? ([
              ["off", off],
              ["on", on],
            ] as const)
          : ([
              ["on", on],
              ["off", off],
            ] as const);
      for (const [name, loaded] of order) {
        const prompts = Array.from({ length: concurrency }, (_, index) =>
          loaded.runtime.engine.tokenize(PROMPTS[index % PROMPTS.length]!, { addBos: true }),
        );
        const { timings, durationMs } = await runAll(loaded.runtime, prompts, maxTokens, sampling);
        rates[name].push((timings.reduce((sum, timing) => sum + timing.numTokens, 0) / durationMs) * 1000);
      }
    }
    const median = (list: number[]): number => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)] ?? 0;
    rows.push({
      sampling: label,
      concurrency,
      offTokensPerSecond: median(rates.off),
      onTokensPerSecond: median(rates.on),
      speedup: median(rates.on) / median(rates.off),
    });
  }
}
const spec = on.runtime.loop.specStats();
console.log(
  `model ${path.basename(modelPath)}${values.synthetic === undefined ? "" : " (random weights)"}, drafts from ${draftModel === undefined ? "prompt lookup" : path.basename(draftModel)}, ${maxTokens} tokens per request, median of ${values.repeats}`,
);
console.log("sampling        | requests | spec off tok/s | spec on tok/s | on / off");
for (const row of rows) {
  console.log(
    `${String(row.sampling).padEnd(15)} | ${String(row.concurrency).padStart(8)} | ${Number(row.offTokensPerSecond).toFixed(0).padStart(14)} | ${Number(row.onTokensPerSecond).toFixed(0).padStart(13)} | ${Number(row.speedup).toFixed(2).padStart(8)}`,
  );
}
if (spec !== null)
  console.log(
    `drafts ${spec.numDrafts}, draft tokens ${spec.numDraftTokens}, accepted ${spec.numAcceptedTokens} (${((100 * spec.numAcceptedTokens) / Math.max(1, spec.numDraftTokens)).toFixed(0)}%), by position ${spec.acceptedPerPosition.join("/")}, mean accepted length ${(spec.numAcceptedTokens / Math.max(1, spec.numDrafts)).toFixed(2)} per drafting step`,
  );
await mkdir(path.join(repoRoot, "bench/out"), { recursive: true });
await writeFile(
  path.join(repoRoot, "bench/out/spec.json"),
  JSON.stringify({ model: path.basename(modelPath), draftModel: draftModel ?? null, maxTokens, rows, spec }, null, 2),
);
await off.close();
await on.close();
