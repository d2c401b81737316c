/**
 * JSONSchemaBench through the real model: every schema of the chosen splits is sent as `json_schema` to a pagoda it
 * starts on stories260K, greedy, and tallied: refused with a 400 naming why, generated and valid (ajv), ran into
 * max_tokens, invalid (must be 0), other failures (must be 0). The model tests run a sample of the same.
 * `--as-tool` sends each schema as a tool's parameters with a named tool_choice on /v1/chat/completions instead,
 * and validates the call's arguments.
 *
 *   npm run bench:schema-generation -- [--split Glaiveai2K ...] [--max-tokens 768] [--concurrency 8] [--stride 1]
 *                                      [--as-tool]
 */
import { readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { generateForSchemas } from "../test/helpers/corpus-generation.ts";
import { loadRuntimeWith } from "./harness.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const corpusDir = path.resolve(repoRoot, "../shared/schemas/jsonschemabench");

const { values } = parseArgs({
  options: {
    split: { type: "string", multiple: true },
    model: { type: "string", default: path.resolve(repoRoot, "../shared/models/stories260K.gguf") },
    "max-tokens": { type: "string", default: "768" },
    concurrency: { type: "string", default: "8" },
    stride: { type: "string", default: "1" },
    "as-tool": { type: "boolean", default: false },
  },
});

const splits = values.split ?? ["Glaiveai2K", "Github_trivial", "Github_easy", "Github_medium"];
const concurrency = Number(values.concurrency);
const server = await loadRuntimeWith(
  [
    "--model",
    values.model,
    "--threads",
    "1",
    "--parallel",
    String(concurrency),
    "--ctx-size",
    // A tool's schema is in the prompt, described to the model; a json_schema prompt is one line.
    String(Number(values["max-tokens"]) + (values["as-tool"] === true ? 2048 : 64)),
  ],
  { listen: true },
);
const asTool = values["as-tool"] === true;
console.log(
  `${path.basename(values.model)}, greedy, max_tokens ${values["max-tokens"]}, ${concurrency} at a time, ` +
    (asTool ? "each schema as a tool's parameters (named tool_choice)" : "each schema as json_schema"),
);
console.log(
  "| split | schemas | refused (400) | valid | ajv cannot compile (parsed only) | max_tokens first | invalid | other failures | minutes |",
);
console.log("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const split of splits) {
  const dir = path.join(corpusDir, split);
  const files = readdirSync(dir)
    .filter((file) => file.endsWith(".json"))
    .sort()
    .filter((_, index) => index % Number(values.stride) === 0)
    .map((file) => path.join(dir, file));
  const tally = await generateForSchemas(files, {
    baseUrl: server.baseUrl ?? "",
    maxTokens: Number(values["max-tokens"]),
    concurrency,
    asTool,
  });
  console.log(
    `| ${split} | ${tally.numSchemas} | ${tally.numRefused} | ${tally.numValid} | ${tally.numUnchecked} | ${tally.numLength} | ${tally.invalid.length} | ${tally.failures.length} | ${(tally.durationMs / 60_000).toFixed(1)} |`,
  );
  for (const line of [...tally.invalid, ...tally.failures].slice(0, 10)) console.error(`  ${line}`);
}
await server.close();
