import assert from "node:assert/strict";
import { test } from "node:test";
import { type ToolCallDelta, ToolCallOutput } from "../../src/server/tool-call-output.ts";
import { GENERIC_SYNTAX, HERMES_SYNTAX } from "../../src/tools/index.ts";

const OUTPUT = 'Let me check.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>';

function run(output: ToolCallOutput, pieces: readonly string[]): ToolCallDelta[] {
  return [...pieces.flatMap((piece) => output.push(piece)), ...output.finish()];
}

test("a streamed call is one header delta with an id, then argument fragments that join to the final arguments", () => {
  for (let cut = 0; cut <= OUTPUT.length; cut++) {
    const output = new ToolCallOutput(HERMES_SYNTAX, ["get_weather"]);
    const deltas = run(output, [OUTPUT.slice(0, cut), OUTPUT.slice(cut)]);
    const headers = deltas.filter((delta) => delta.tool_calls?.[0]?.id !== undefined);
    assert.equal(headers.length, 1);
    const call = output.result.toolCalls[0];
    assert.equal(headers[0]?.tool_calls?.[0]?.id, call?.id);
    assert.match(call?.id ?? "", /^call_[A-Za-z0-9]{24}$/);
    assert.equal(headers[0]?.tool_calls?.[0]?.function.name, "get_weather");
    const fragments = deltas.map((delta) => delta.tool_calls?.[0]?.function.arguments ?? "").join("");
    assert.equal(fragments, '{"city":"Paris"}');
    assert.equal(call?.function.arguments, '{"city":"Paris"}');
    assert.equal(deltas.map((delta) => delta.content ?? "").join(""), "Let me check.");
    assert.equal(output.result.content, "Let me check.");
    assert.equal(output.finishReason("stop"), "tool_calls");
    assert.equal(output.finishReason("length"), "length");
  }
});

test("text without calls is content, and the finish reason stays", () => {
  const output = new ToolCallOutput(HERMES_SYNTAX, ["get_weather"]);
  const deltas = run(output, ["Hello ", "<tool", " there"]);
  assert.equal(deltas.map((delta) => delta.content ?? "").join(""), "Hello <tool there");
  assert.deepEqual(output.result, {
    content: "Hello <tool there",
    toolCalls: [],
    isComplete: true,
    parseFailure: null,
  });
  assert.equal(output.finishReason("stop"), "stop");
});

test("a call cut short after its name is returned with the arguments written so far, streamed or not", () => {
  const output = new ToolCallOutput(GENERIC_SYNTAX, ["get_weather"]);
  const whole = '{"name": "get_weather", "arguments": {"city": "Oslo"}}';
  const deltas = run(output, [`{"tool_calls": [${whole}, {"name": "get_weather", "arguments": {"ci`]);
  const calls = output.result.toolCalls;
  assert.deepEqual(
    calls.map((call) => call.function.arguments),
    ['{"city":"Oslo"}', '{"ci'],
  );
  assert.equal(output.result.content, null);
  assert.equal(output.result.isComplete, false);
  assert.equal(output.finishReason("length"), "length");
  assert.equal(output.finishReason("stop"), "stop");
  for (const [index, call] of calls.entries()) {
    const streamed = deltas.map((delta) => delta.tool_calls?.find((entry) => entry.index === index));
    assert.equal(streamed.map((entry) => entry?.function.arguments ?? "").join(""), call.function.arguments);
    assert.equal(streamed.find((entry) => entry?.id !== undefined)?.id, call.id);
  }
  assert.equal(deltas.map((delta) => delta.content ?? "").join(""), "");
});

test("output cut before any call's name is all content, streamed or not", () => {
  const output = new ToolCallOutput(GENERIC_SYNTAX, ["get_weather"]);
  const text = '{"tool_calls": [{"na';
  const deltas = run(output, [text]);
  assert.equal(output.result.toolCalls.length, 0);
  assert.equal(output.result.content, text);
  assert.notEqual(output.result.parseFailure, null);
  assert.equal(deltas.map((delta) => delta.content ?? "").join(""), text);
});

test("a call to a tool that was not offered is a parse failure, returned as content", () => {
  const output = new ToolCallOutput(HERMES_SYNTAX, ["get_weather"]);
  run(output, ['<tool_call>\n{"name": "rm_rf", "arguments": {}}\n</tool_call>']);
  assert.equal(output.result.toolCalls.length, 0);
  assert.match(output.result.content ?? "", /rm_rf/);
  assert.notEqual(output.result.parseFailure, null);
});
