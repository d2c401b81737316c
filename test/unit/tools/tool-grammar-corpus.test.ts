import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseGbnf, sampleGbnf } from "../../../src/constrain/gbnf/index.ts";
import { GENERIC_SYNTAX, HERMES_SYNTAX, LLAMA3_SYNTAX } from "../../../src/tools/call-syntax.ts";
import type { ToolDefinition } from "../../../src/tools/tool-definition.ts";
import { ToolError } from "../../../src/tools/tool-error.ts";
import { buildToolGrammar } from "../../../src/tools/tool-grammar.ts";
import { mulberry32 } from "../../helpers/mulberry32.ts";
import { compileValidator } from "../../helpers/schema-soundness.ts";
import { runParser } from "./parser-harness.ts";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
const corpusDir = path.resolve(repoRoot, "../shared/schemas/jsonschemabench/Glaiveai2K");
const SKIP = existsSync(corpusDir) ? false : `Glaiveai2K corpus not found at ${corpusDir}`;
/** Every 10th schema in file name order: a deterministic sample of about 170. */
const STRIDE = 10;
const SAMPLES_PER_GRAMMAR = 3;

interface CorpusTool {
  readonly file: string;
  readonly tool: ToolDefinition;
}

function corpusTools(): CorpusTool[] {
  return readdirSync(corpusDir)
    .filter((file) => file.endsWith(".json"))
    .sort()
    .filter((_, index) => index % STRIDE === 0)
    .map((file) => ({
      file,
      tool: {
        name: file
          .replace(/\.json$/, "")
          .replace(/[^a-zA-Z0-9_-]/g, "_")
          .slice(0, 64),
        parameters: JSON.parse(readFileSync(path.join(corpusDir, file), "utf8")) as unknown,
      },
    }));
}

/** Samples the required grammar of `tools` in `syntax`, parses each sample back and validates every call. */
function checkTools(tools: readonly ToolDefinition[], random: () => number) {
  const invalid: string[] = [];
  const validators = new Map(tools.map((tool) => [tool.name, compileValidator(tool.parameters)]));
  let numCalls = 0;
  let numUnchecked = 0;
  for (const syntax of [HERMES_SYNTAX, LLAMA3_SYNTAX, GENERIC_SYNTAX]) {
    const grammar = buildToolGrammar(tools, syntax, "required", { maxCalls: 3 });
    const parsed = parseGbnf(grammar.kind === "full" ? grammar.grammar : "");
    for (let round = 0; round < SAMPLES_PER_GRAMMAR; round++) {
      const sample = sampleGbnf(parsed, random, { maxLength: 8000 });
      if (sample === null) continue;
      const { result } = runParser(syntax, [sample], { toolNames: tools.map((tool) => tool.name) });
      if (result.parseFailure !== null || result.calls.length === 0) {
        invalid.push(`${syntax.name}: ${result.parseFailure ?? "no call"} in ${sample}`);
        continue;
      }
      for (const call of result.calls) {
        numCalls++;
        const validate = validators.get(call.name) ?? null;
        if (validate === null) numUnchecked++;
        else if (!validate(JSON.parse(call.arguments))) {
          invalid.push(`${syntax.name}: ${call.arguments} (${JSON.stringify(validate.errors)})`);
        }
      }
    }
  }
  return { invalid, numCalls, numUnchecked };
}

test("every 10th Glaiveai2K schema as tool parameters yields calls that parse back and validate", {
  skip: SKIP,
}, (t) => {
  const random = mulberry32(2024);
  const invalid: string[] = [];
  let numRefused = 0;
  let numConverted = 0;
  let numCalls = 0;
  let numUnchecked = 0;
  const tools = corpusTools();
  for (const { file, tool } of tools) {
    try {
      const check = checkTools([tool], random);
      numConverted++;
      numCalls += check.numCalls;
      numUnchecked += check.numUnchecked;
      for (const bad of check.invalid) invalid.push(`${file}: ${bad}`);
    } catch (error) {
      if (!(error instanceof ToolError)) throw error;
      numRefused++;
    }
  }
  const numValid = numCalls - invalid.length;
  t.diagnostic(
    `Glaiveai2K: ${tools.length} schemas, ${numConverted} converted, ${numRefused} refused; ` +
      `${numValid}/${numCalls} sampled calls valid (${numUnchecked} of them in schemas ajv cannot compile)`,
  );
  assert.deepEqual(invalid, []);
  assert.ok(numConverted >= tools.length * 0.75, `only ${numConverted} of ${tools.length} converted`);
});

test("pairs of Glaiveai2K schemas share one grammar without their rules colliding", { skip: SKIP }, (t) => {
  const random = mulberry32(7);
  const tools = corpusTools();
  const invalid: string[] = [];
  let numPairs = 0;
  for (let index = 0; index + 1 < tools.length; index += 2) {
    const pair = [tools[index]!.tool, tools[index + 1]!.tool];
    try {
      const check = checkTools(pair, random);
      numPairs++;
      for (const bad of check.invalid) invalid.push(`${tools[index]!.file} + ${tools[index + 1]!.file}: ${bad}`);
    } catch (error) {
      if (!(error instanceof ToolError)) throw error;
    }
  }
  t.diagnostic(`${numPairs} pairs of tools checked`);
  assert.deepEqual(invalid, []);
  assert.ok(numPairs > 0);
});
