/**
 * Model outputs as the families' chat templates write them (by hand, after real transcripts), with what the
 * parser must make of each.
 */
import { GENERIC_SYNTAX, HERMES_SYNTAX, LLAMA3_SYNTAX, type ToolCallSyntax } from "../../../src/tools/call-syntax.ts";
import type { ParsedToolCall } from "../../../src/tools/tool-call-parser.ts";

export interface RecordedOutput {
  readonly title: string;
  readonly syntax: ToolCallSyntax;
  readonly output: string;
  readonly content: string | null;
  readonly calls: readonly ParsedToolCall[];
  /** A pattern the failure must match; null when parsing must succeed. */
  readonly failure: RegExp | null;
  readonly toolNames?: readonly string[];
}

export const RECORDED_OUTPUTS: readonly RecordedOutput[] = [
  {
    title: "a Qwen2.5 single call",
    syntax: HERMES_SYNTAX,
    output:
      '<tool_call>\n{"name": "get_current_weather", "arguments": {"location": "San Francisco, CA", "unit": "fahrenheit"}}\n</tool_call>',
    content: null,
    calls: [{ name: "get_current_weather", arguments: '{"location":"San Francisco, CA","unit":"fahrenheit"}' }],
    failure: null,
  },
  {
    title: "Qwen2.5 content then two parallel calls with non-ASCII arguments",
    syntax: HERMES_SYNTAX,
    output:
      "I'll look up both cities for you — one moment.\n\n<tool_call>\n" +
      '{"name": "get_current_weather", "arguments": {"location": "Paris, France"}}\n</tool_call>\n<tool_call>\n' +
      '{"name": "get_current_weather", "arguments": {"location": "Tōkyō 東京 🗼", "unit": "celsius"}}\n</tool_call>',
    content: "I'll look up both cities for you — one moment.",
    calls: [
      { name: "get_current_weather", arguments: '{"location":"Paris, France"}' },
      { name: "get_current_weather", arguments: '{"location":"Tōkyō 東京 🗼","unit":"celsius"}' },
    ],
    failure: null,
  },
  {
    title: "a Hermes 2 Pro call with arguments before the name",
    syntax: HERMES_SYNTAX,
    output:
      '<tool_call>\n{"arguments": {"symbol": "TSLA", "period": "1y"}, "name": "get_stock_fundamentals"}\n</tool_call>',
    content: null,
    calls: [{ name: "get_stock_fundamentals", arguments: '{"symbol":"TSLA","period":"1y"}' }],
    failure: null,
  },
  {
    title: "a Hermes call with nested arguments, escapes, numbers and a missing close tag",
    syntax: HERMES_SYNTAX,
    output:
      '<tool_call>\n{"name": "run_sql", "arguments": {\n  "query": "SELECT * FROM \\"users\\" WHERE bio = \'a\\\\tb\' -- caf\\u00e9",\n' +
      '  "limit": 10, "opts": {"dry_run": false, "tags": ["a", "b"], "owner": null}, "ratio": -0.5e-3}}\n',
    content: null,
    calls: [
      {
        name: "run_sql",
        arguments:
          '{"query":"SELECT * FROM \\"users\\" WHERE bio = \'a\\\\tb\' -- caf\\u00e9","limit":10,' +
          '"opts":{"dry_run":false,"tags":["a","b"],"owner":null},"ratio":-0.5e-3}',
      },
    ],
    failure: null,
  },
  {
    title: "Hermes plain text that only looks like the start of a tag",
    syntax: HERMES_SYNTAX,
    output: "Use <tool> tags, or write a < b and <tool_cal without closing.\n",
    content: "Use <tool> tags, or write a < b and <tool_cal without closing.\n",
    calls: [],
    failure: null,
  },
  {
    title: "Hermes text after the last call",
    syntax: HERMES_SYNTAX,
    output: '<tool_call>\n{"name": "ping", "arguments": {}}\n</tool_call>\n\nDone.',
    content: "Done.",
    calls: [{ name: "ping", arguments: "{}" }],
    failure: null,
  },
  {
    title: "a Hermes call whose JSON is cut short before the close tag",
    syntax: HERMES_SYNTAX,
    output: 'Checking.\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}\n</tool_call>',
    content: "Checking.",
    calls: [],
    failure: /call 0 is not valid JSON: expected "," or "}", found "<"/,
  },
  {
    title: "a Hermes call in Python syntax",
    syntax: HERMES_SYNTAX,
    output: '<tool_call>\nget_weather(city="Paris")\n</tool_call>',
    content: null,
    calls: [],
    failure: /expected "\{" after "<tool_call>"/,
  },
  {
    title: "Hermes arguments written as a JSON string",
    syntax: HERMES_SYNTAX,
    output: '<tool_call>\n{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}\n</tool_call>',
    content: null,
    calls: [],
    failure: /the arguments of call 0 are not a JSON object/,
  },
  {
    title: "a second Hermes call that runs out of tokens",
    syntax: HERMES_SYNTAX,
    output:
      '<tool_call>\n{"name": "a", "arguments": {"x": 1}}\n</tool_call>\n<tool_call>\n{"name": "b", "arguments": {"y": [1, 2',
    content: null,
    calls: [{ name: "a", arguments: '{"x":1}' }],
    failure: /the output ended inside call 1/,
  },
  {
    title: "a Hermes call to a function that was not offered",
    syntax: HERMES_SYNTAX,
    output: '<tool_call>\n{"name": "delete_everything", "arguments": {}}\n</tool_call>',
    content: null,
    calls: [],
    failure: /call 0 names an unknown function "delete_everything"/,
    toolNames: ["get_weather"],
  },
  {
    title: "a Llama 3.1 JSON call",
    syntax: LLAMA3_SYNTAX,
    output: '{"name": "get_current_conditions", "parameters": {"location": "San Francisco, CA", "unit": "Fahrenheit"}}',
    content: null,
    calls: [{ name: "get_current_conditions", arguments: '{"location":"San Francisco, CA","unit":"Fahrenheit"}' }],
    failure: null,
  },
  {
    title: "a Llama 3.1 call after <|python_tag|>",
    syntax: LLAMA3_SYNTAX,
    output: '<|python_tag|>{"name": "spotify_trending_songs", "parameters": {"n": "5"}}',
    content: null,
    calls: [{ name: "spotify_trending_songs", arguments: '{"n":"5"}' }],
    failure: null,
  },
  {
    title: "a Llama 3.2 call with a type key and leading blank line",
    syntax: LLAMA3_SYNTAX,
    output: '\n{"type": "function", "name": "get_weather", "parameters": {"city": "Oslo", "days": 3}}',
    content: null,
    calls: [{ name: "get_weather", arguments: '{"city":"Oslo","days":3}' }],
    failure: null,
  },
  {
    title: "a Llama JSON answer that is not a call",
    syntax: LLAMA3_SYNTAX,
    output: ' {"answer": "42", "confidence": 0.9}',
    content: ' {"answer": "42", "confidence": 0.9}',
    calls: [],
    failure: null,
  },
  {
    title: "a Llama plain answer",
    syntax: LLAMA3_SYNTAX,
    output: "The weather in Paris is sunny, 24°C {as of noon}.",
    content: "The weather in Paris is sunny, 24°C {as of noon}.",
    calls: [],
    failure: null,
  },
  {
    title: "a Llama call with no parameters key",
    syntax: LLAMA3_SYNTAX,
    output: '{"name": "get_time"}',
    content: null,
    calls: [{ name: "get_time", arguments: "{}" }],
    failure: null,
  },
  {
    title: "a Llama call without a name",
    syntax: LLAMA3_SYNTAX,
    output: '{"type": "function", "parameters": {"q": "x"}}',
    content: null,
    calls: [],
    failure: /call 0 has no "name"/,
  },
  {
    title: "generic parallel calls",
    syntax: GENERIC_SYNTAX,
    output:
      '{"tool_calls": [{"name": "get_weather", "arguments": {"city": "Lyon"}}, {"name": "get_time", "arguments": {}}]}',
    content: null,
    calls: [
      { name: "get_weather", arguments: '{"city":"Lyon"}' },
      { name: "get_time", arguments: "{}" },
    ],
    failure: null,
  },
  {
    title: "a generic wrapper with a stray key",
    syntax: GENERIC_SYNTAX,
    output: '{"tool_calls": [{"name": "a", "arguments": {}}], "note": "x"}',
    content: null,
    calls: [{ name: "a", arguments: "{}" }],
    failure: /unexpected key "note" in the tool_calls object/,
  },
];
