import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { HERMES_SYNTAX, LLAMA3_SYNTAX } from "../../../src/tools/call-syntax.ts";
import { ToolCallParser } from "../../../src/tools/tool-call-parser.ts";
import { mulberry32 } from "../../helpers/mulberry32.ts";
import { mergeEvents, runParser, splitAt } from "./parser-harness.ts";
import { RECORDED_OUTPUTS } from "./recorded-outputs.ts";

for (const recorded of RECORDED_OUTPUTS) {
  const options = recorded.toolNames === undefined ? {} : { toolNames: recorded.toolNames };

  test(`${recorded.title} parses to the recorded calls, content and failure`, () => {
    const { result } = runParser(recorded.syntax, [recorded.output], options);
    assert.equal(result.content, recorded.content);
    assert.deepEqual(result.calls, recorded.calls);
    if (recorded.failure === null) assert.equal(result.parseFailure, null);
    else assert.match(result.parseFailure ?? "", recorded.failure);
  });

  test(`${recorded.title} gives the same events and result split at every boundary`, () => {
    const whole = runParser(recorded.syntax, [recorded.output], options);
    const text = recorded.output;
    const splits: string[][] = [Array.from(text.split(""))];
    for (let at = 0; at <= text.length; at++) splits.push(splitAt(text, at));
    const random = mulberry32(text.length);
    for (let round = 0; round < 40; round++) {
      const boundaries = Array.from({ length: 1 + Math.floor(random() * 6) }, () =>
        Math.floor(random() * (text.length + 1)),
      );
      splits.push(splitAt(text, ...boundaries));
    }
    for (const deltas of splits) {
      const run = runParser(recorded.syntax, deltas, options);
      assert.deepEqual(run.events, whole.events, `split ${JSON.stringify(deltas)}`);
      assert.deepEqual(run.result, whole.result, `split ${JSON.stringify(deltas)}`);
    }
  });
}

test("a whole call in one delta yields its start and all of its arguments, once", () => {
  const parser = new ToolCallParser(HERMES_SYNTAX);
  const events = parser.push('<tool_call>\n{"name": "f", "arguments": {"a": [1, {"b": "c"}]}}\n</tool_call>');
  assert.deepEqual(events, [
    { type: "callStart", index: 0, name: "f" },
    { type: "argumentsDelta", index: 0, text: '{"a":[1,{"b":"c"}]}' },
  ]);
  assert.deepEqual(parser.finish().events, []);
});

test("a delta carrying the name and the first arguments emits both, and the rest follows without overlap", () => {
  const parser = new ToolCallParser(HERMES_SYNTAX);
  assert.deepEqual(parser.push("<tool_call>\n"), []);
  assert.deepEqual(parser.push('{"name": "get_weather", "arguments": {"lo'), [
    { type: "callStart", index: 0, name: "get_weather" },
    { type: "argumentsDelta", index: 0, text: '{"lo' },
  ]);
  assert.deepEqual(parser.push('cation": "Paris"}}\n</tool'), [
    { type: "argumentsDelta", index: 0, text: 'cation":"Paris"}' },
  ]);
  assert.deepEqual(parser.push("_call>"), []);
  assert.deepEqual(parser.finish().result.calls, [{ name: "get_weather", arguments: '{"location":"Paris"}' }]);
});

test("content is held back only while it could still begin a trigger", () => {
  const parser = new ToolCallParser(HERMES_SYNTAX);
  assert.deepEqual(parser.push("Hello <tool_"), [{ type: "content", text: "Hello" }]);
  assert.deepEqual(parser.push("box> there"), [{ type: "content", text: " <tool_box> there" }]);
  assert.deepEqual(parser.push("\n\n"), []);
  assert.deepEqual(parser.push("and more"), [{ type: "content", text: "\n\nand more" }]);
  assert.deepEqual(parser.finish().result, {
    content: "Hello <tool_box> there\n\nand more",
    calls: [],
    parseFailure: null,
  });
});

test("a Llama output starting with a brace is held back until its first key decides", () => {
  const parser = new ToolCallParser(LLAMA3_SYNTAX);
  assert.deepEqual(parser.push('{"na'), []);
  assert.deepEqual(parser.push('me": "f", "parameters": {}}'), [
    { type: "callStart", index: 0, name: "f" },
    { type: "argumentsDelta", index: 0, text: "{}" },
  ]);
  const answer = new ToolCallParser(LLAMA3_SYNTAX);
  assert.deepEqual(answer.push('{"result'), []);
  assert.deepEqual(answer.push('": 1}'), [{ type: "content", text: '{"result": 1}' }]);
});

test("a high surrogate ending a delta waits for its pair", () => {
  const parser = new ToolCallParser(HERMES_SYNTAX);
  assert.deepEqual(parser.push("sun \ud83c"), [{ type: "content", text: "sun" }]);
  assert.deepEqual(parser.push("\udf1e!"), [{ type: "content", text: " \ud83c\udf1e!" }]);
});

test("pushing after finish is a bug and throws", () => {
  const parser = new ToolCallParser(HERMES_SYNTAX);
  parser.finish();
  assert.throws(() => parser.push("x"), /after finish/);
});

test("any JSON object as arguments streams back as compact text that parses to the same value", () => {
  fc.assert(
    fc.property(fc.dictionary(fc.string(), fc.jsonValue()), fc.array(fc.nat(), { maxLength: 8 }), (args, cuts) => {
      const output = `<tool_call>\n{"name": "f", "arguments": ${JSON.stringify(args, null, 1)}}\n</tool_call>`;
      const run = runParser(HERMES_SYNTAX, splitAt(output, ...cuts.map((cut) => cut % (output.length + 1))));
      assert.equal(run.result.parseFailure, null);
      assert.deepEqual(JSON.parse(run.result.calls[0]!.arguments), JSON.parse(JSON.stringify(args)));
      assert.deepEqual(mergeEvents(run.events).length, 2);
    }),
    { seed: 42, numRuns: 300 },
  );
});
