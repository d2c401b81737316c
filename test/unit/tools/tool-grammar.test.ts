import assert from "node:assert/strict";
import { test } from "node:test";
import { matchesGbnf, parseGbnf, sampleGbnf } from "../../../src/constrain/gbnf/index.ts";
import { GENERIC_SYNTAX, HERMES_SYNTAX, LLAMA3_SYNTAX, type ToolCallSyntax } from "../../../src/tools/call-syntax.ts";
import type { ToolDefinition } from "../../../src/tools/tool-definition.ts";
import { ToolError } from "../../../src/tools/tool-error.ts";
import { buildToolGrammar, type ToolGrammar, type ToolGrammarChoice } from "../../../src/tools/tool-grammar.ts";
import { mulberry32 } from "../../helpers/mulberry32.ts";
import { compileValidator } from "../../helpers/schema-soundness.ts";
import { runParser } from "./parser-harness.ts";

const WEATHER: ToolDefinition = {
  name: "get_weather",
  description: "Current weather for a city",
  parameters: {
    type: "object",
    properties: { city: { type: "string" }, unit: { enum: ["celsius", "fahrenheit"] } },
    required: ["city"],
    additionalProperties: false,
  },
};
const TIME: ToolDefinition = { name: "get-time" };
/** Same rule names as WEATHER's grammar (object, string, ws), different language. */
const SEARCH: ToolDefinition = {
  name: "search_web",
  parameters: {
    type: "object",
    properties: { query: { type: "string", minLength: 1 }, limit: { type: "integer", minimum: 1, maximum: 10 } },
    required: ["query", "limit"],
  },
};
/** Recursive through $defs: rules on a cycle must be renamed consistently too. */
const TREE: ToolDefinition = {
  name: "save_tree",
  parameters: {
    type: "object",
    properties: { root: { $ref: "#/$defs/node" } },
    required: ["root"],
    $defs: {
      node: {
        type: "object",
        properties: { label: { type: "string" }, children: { type: "array", items: { $ref: "#/$defs/node" } } },
        required: ["label"],
      },
    },
  },
};
const TOOLS = [WEATHER, TIME, SEARCH, TREE];

function full(tools: readonly ToolDefinition[], syntax: ToolCallSyntax, choice: ToolGrammarChoice, isParallel = true) {
  const grammar = buildToolGrammar(tools, syntax, choice, { isParallel });
  assert.equal(grammar.kind, "full");
  return parseGbnf(grammar.kind === "full" ? grammar.grammar : "");
}

function lazy(grammar: ToolGrammar, trigger: string) {
  assert.equal(grammar.kind, "lazy");
  const found = grammar.kind === "lazy" ? grammar.triggers.find((entry) => entry.trigger === trigger) : undefined;
  assert.ok(found, `a lazy grammar for ${trigger}`);
  return { ...found, parsed: parseGbnf(found.grammar) };
}

const weatherCall = (args: string) => `{"name": "get_weather", "arguments": ${args}}`;
const hermes = (...calls: string[]) => calls.map((call) => `<tool_call>\n${call}\n</tool_call>`).join("\n");

test("the Hermes required grammar accepts one or several well-formed calls", () => {
  const grammar = full(TOOLS, HERMES_SYNTAX, "required");
  assert.ok(matchesGbnf(grammar, hermes(weatherCall('{"city": "Paris"}'))));
  assert.ok(matchesGbnf(grammar, hermes(weatherCall('{"city": "Paris", "unit": "celsius"}'))));
  assert.ok(
    matchesGbnf(
      grammar,
      hermes(
        '{"name": "get-time", "arguments": {}}',
        '{"name": "search_web", "arguments": {"query": "q", "limit": 3}}',
      ),
    ),
  );
  assert.ok(
    matchesGbnf(
      grammar,
      hermes(
        '{"name": "save_tree", "arguments": {"root": {"label": "a", "children": [{"label": "b", "children": []}]}}}',
      ),
    ),
  );
});

test("the Hermes required grammar rejects content, unknown tools, bad arguments and broken framing", () => {
  const grammar = full(TOOLS, HERMES_SYNTAX, "required");
  const rejected = [
    `Sure! ${hermes(weatherCall('{"city": "Paris"}'))}`,
    hermes('{"name": "get_wether", "arguments": {"city": "Paris"}}'),
    hermes(weatherCall('{"unit": "celsius"}')),
    hermes(weatherCall('{"city": "Paris", "unit": "kelvin"}')),
    hermes(weatherCall('{"city": 7}')),
    hermes(weatherCall('{"city": "Paris", "extra": 1}')),
    hermes('{"name": "search_web", "arguments": {"query": "q", "limit": 11}}'),
    hermes('{"name": "search_web", "arguments": {"query": "", "limit": 1}}'),
    hermes('{"name": "get_weather", "arguments": {"query": "q", "limit": 3}}'),
    `<tool_call>\n${weatherCall('{"city": "Paris"}')}`,
    `<tool_call>${weatherCall('{"city": "Paris"}')}</tool_call>`,
    "",
  ];
  for (const text of rejected) assert.ok(!matchesGbnf(grammar, text), `rejects ${JSON.stringify(text)}`);
});

test("without parallel calls the grammar admits exactly one call", () => {
  const grammar = full(TOOLS, HERMES_SYNTAX, "required", false);
  assert.ok(matchesGbnf(grammar, hermes(weatherCall('{"city": "Oslo"}'))));
  assert.ok(!matchesGbnf(grammar, hermes(weatherCall('{"city": "Oslo"}'), weatherCall('{"city": "Rome"}'))));
});

test("a named choice admits one call, to that function only", () => {
  const grammar = full(TOOLS, HERMES_SYNTAX, { name: "get-time" });
  assert.ok(matchesGbnf(grammar, hermes('{"name": "get-time", "arguments": {}}')));
  const twice = hermes('{"name": "get-time", "arguments": {}}', '{"name": "get-time", "arguments": {}}');
  assert.ok(!matchesGbnf(grammar, twice));
  assert.ok(!matchesGbnf(grammar, hermes(weatherCall('{"city": "Oslo"}'))));
  assert.ok(!matchesGbnf(grammar, hermes('{"name": "get-time", "arguments": {"tz": "UTC"}}')));
});

test("the Llama 3 required grammar is one bare call with parameters", () => {
  const grammar = full(TOOLS, LLAMA3_SYNTAX, "required");
  assert.ok(matchesGbnf(grammar, '{"name": "get_weather", "parameters": {"city": "Paris"}}'));
  assert.ok(!matchesGbnf(grammar, '{"name": "get_weather", "arguments": {"city": "Paris"}}'));
  assert.ok(!matchesGbnf(grammar, '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}}'));
  assert.ok(
    !matchesGbnf(
      grammar,
      '{"name": "get_weather", "parameters": {"city": "Paris"}}{"name": "get-time", "parameters": {}}',
    ),
  );
});

test("the generic required grammar is one tool_calls object with one or more calls", () => {
  const grammar = full(TOOLS, GENERIC_SYNTAX, "required");
  assert.ok(matchesGbnf(grammar, `{"tool_calls": [${weatherCall('{"city": "Paris"}')}]}`));
  assert.ok(
    matchesGbnf(
      grammar,
      `{"tool_calls": [${weatherCall('{"city": "Paris"}')}, {"name": "get-time", "arguments": {}}]}`,
    ),
  );
  assert.ok(!matchesGbnf(grammar, '{"tool_calls": []}'));
  assert.ok(!matchesGbnf(grammar, weatherCall('{"city": "Paris"}')));
});

test("the Hermes auto grammar takes over after <tool_call> and allows further calls", () => {
  const { parsed, isAtStartOnly } = lazy(buildToolGrammar(TOOLS, HERMES_SYNTAX, "auto"), "<tool_call>");
  assert.equal(isAtStartOnly, false);
  assert.ok(matchesGbnf(parsed, `\n${weatherCall('{"city": "Paris"}')}\n</tool_call>`));
  assert.ok(
    matchesGbnf(
      parsed,
      `\n${weatherCall('{"city": "Paris"}')}\n</tool_call>\n${hermes('{"name": "get-time", "arguments": {}}')}`,
    ),
  );
  assert.ok(!matchesGbnf(parsed, `\n${weatherCall('{"city": "Paris"}')}\n</tool_call> and more text`));
});

test("the Llama 3 auto grammars follow the opening of a call at the start, or <|python_tag|> anywhere", () => {
  const grammar = buildToolGrammar(TOOLS, LLAMA3_SYNTAX, "auto");
  const start = lazy(grammar, '{"name": "');
  assert.equal(start.isAtStartOnly, true);
  assert.ok(matchesGbnf(start.parsed, 'get_weather", "parameters": {"city": "Paris"}}'));
  const tag = lazy(grammar, "<|python_tag|>");
  assert.equal(tag.isAtStartOnly, false);
  assert.ok(matchesGbnf(tag.parsed, '{"name": "get-time", "parameters": {}}'));
});

test("calls sampled from every syntax's grammars parse back and their arguments validate", () => {
  const validators = new Map(TOOLS.map((tool) => [tool.name, compileValidator(tool.parameters ?? { type: "object" })]));
  const random = mulberry32(11);
  let numChecked = 0;
  for (const syntax of [HERMES_SYNTAX, LLAMA3_SYNTAX, GENERIC_SYNTAX]) {
    for (const choice of ["required", { name: "save_tree" }, "auto"] as const) {
      const grammar = buildToolGrammar(TOOLS, syntax, choice);
      const entries =
        grammar.kind === "full"
          ? [{ prefix: "", grammar: grammar.grammar }]
          : grammar.triggers.map((entry) => ({
              prefix: entry.isAtStartOnly ? entry.trigger : `Let me check.\n${entry.trigger}`,
              grammar: entry.grammar,
            }));
      for (const entry of entries) {
        const parsed = parseGbnf(entry.grammar);
        for (let round = 0; round < 20; round++) {
          const sample = sampleGbnf(parsed, random, { maxLength: 2000 });
          if (sample === null) continue;
          const output = entry.prefix + sample;
          const { result } = runParser(syntax, [output], { toolNames: TOOLS.map((tool) => tool.name) });
          assert.equal(result.parseFailure, null, output);
          assert.ok(result.calls.length > 0, output);
          for (const call of result.calls) {
            const validate = validators.get(call.name)!;
            assert.ok(validate(JSON.parse(call.arguments)), `${output}: ${JSON.stringify(validate.errors)}`);
            numChecked++;
          }
        }
      }
    }
  }
  assert.ok(numChecked > 100, `only ${numChecked} calls checked`);
});

function refusal(run: () => unknown): ToolError {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ToolError, String(error));
    return error;
  }
  assert.fail("expected a ToolError");
}

test("invalid and duplicate names are refused naming the tool", () => {
  for (const name of ["get weather", "", "x".repeat(65), "naïve", 'a"b']) {
    const error = refusal(() => buildToolGrammar([WEATHER, { name }], HERMES_SYNTAX, "required"));
    assert.equal(error.code, "PAGODA_ERR_TOOL_INVALID_NAME");
    assert.equal(error.param, "tools[1].function.name");
  }
  const error = refusal(() => buildToolGrammar([WEATHER, TIME, WEATHER], HERMES_SYNTAX, "auto"));
  assert.equal(error.code, "PAGODA_ERR_TOOL_DUPLICATE_NAME");
  assert.equal(error.param, "tools[2].function.name");
  assert.equal(error.name, "ToolError");
  assert.equal(error.statusCode, 400);
});

test("a named choice that is not among the tools, or no tools at all, is refused", () => {
  assert.equal(refusal(() => buildToolGrammar(TOOLS, HERMES_SYNTAX, { name: "nope" })).param, "tool_choice");
  assert.equal(refusal(() => buildToolGrammar([], HERMES_SYNTAX, "required")).code, "PAGODA_ERR_TOOL_INVALID");
});

test("parameters that are not an object schema are refused naming the tool", () => {
  for (const parameters of [{ type: "string" }, { type: ["string", "null"] }, "object", [], 5, false]) {
    const error = refusal(() => buildToolGrammar([TIME, { name: "f", parameters }], HERMES_SYNTAX, "required"));
    assert.equal(error.code, "PAGODA_ERR_TOOL_INVALID_PARAMETERS");
    assert.equal(error.param, "tools[1].function.parameters");
  }
});

test("a schema keyword the grammar cannot enforce is refused with the tool, keyword and pointer", () => {
  const parameters = { type: "object", properties: { tags: { type: "array", uniqueItems: true } } };
  const error = refusal(() => buildToolGrammar([WEATHER, TIME, { name: "tag", parameters }], LLAMA3_SYNTAX, "auto"));
  assert.equal(error.code, "PAGODA_ERR_TOOL_UNSUPPORTED_SCHEMA");
  assert.equal(error.param, "tools[2].function.parameters");
  assert.equal(error.keyword, "uniqueItems");
  assert.equal(error.pointer, "/properties/tags");
});

test("a thousand tools are refused by count", () => {
  const tools = Array.from({ length: 1000 }, (_, index) => ({ name: `tool_${index}`, parameters: WEATHER.parameters }));
  const error = refusal(() => buildToolGrammar(tools, HERMES_SYNTAX, "required"));
  assert.equal(error.code, "PAGODA_ERR_TOOL_LIMIT");
  assert.equal(error.param, "tools");
});

test("a thousand tools allowed by count still stop at the grammar size limit", () => {
  const tools = Array.from({ length: 1000 }, (_, index) => ({
    name: `tool_${index}`,
    parameters: { type: "object", properties: { [`field_${index}`]: { type: "string", maxLength: 50 } } },
  }));
  const error = refusal(() => buildToolGrammar(tools, HERMES_SYNTAX, "required", { maxTools: 1000, maxRules: 500 }));
  assert.equal(error.code, "PAGODA_ERR_TOOL_LIMIT");
  assert.equal(error.keyword, "maxRules");
});

test("deeply nested parameters are refused by the converter's depth limit", () => {
  let parameters: object = { type: "object" };
  for (let depth = 0; depth < 500; depth++) parameters = { type: "object", properties: { inner: parameters } };
  const error = refusal(() => buildToolGrammar([{ name: "deep", parameters }], HERMES_SYNTAX, "required"));
  assert.equal(error.code, "PAGODA_ERR_TOOL_LIMIT");
  assert.equal(error.keyword, "maxDocumentDepth");
});

test("many tools with the same shared rules carry one copy of them", () => {
  const tools = Array.from({ length: 100 }, (_, index) => ({ name: `tool_${index}`, parameters: SEARCH.parameters }));
  const grammar = buildToolGrammar(tools, HERMES_SYNTAX, "required");
  assert.equal(grammar.kind, "full");
  const text = grammar.kind === "full" ? grammar.grammar : "";
  assert.equal(text.match(/^p\d+-ws ::=/gm)?.length, 1);
  assert.ok(parseGbnf(text).rules.size < 20, "identical tools share every rule");
});
